"""The circuit breaker's state machine: transitions, admission and the books of outcomes.

::

    CLOSED --a rule fires--> OPEN --open duration elapsed--> HALF_OPEN
       ^                      ^                                  |
       |                      +------- a probe fails ------------+
       +-------------- success_threshold probes succeed ---------+

    force_open() -> FORCED_OPEN, disable() -> DISABLED, reset() -> CLOSED (from anywhere)

Every stay in a state is a fresh :class:`~engined.core._phase.Phase`. A call is admitted
into a phase and reports back to it; a report to a phase that is no longer current (a
late result) only updates the cumulative counters, so it can never move a newer state.
Code that cannot be one call or block (streams, interceptors) holds a
:class:`~engined.core._permit.Permit`, which carries its phase, so it never depends on
the thread or context that settles it.

Admission in CLOSED reads one attribute and takes no lock, and so does a refusal in OPEN
or FORCED_OPEN. A plain breaker's CLOSED outcomes are recorded without the lock too (see
``_phase``). Everything else is a few integer updates under one short
``threading.Lock``; user code never runs under it, and listeners run after it is
released. The OPEN -> HALF_OPEN switch is made lazily by whoever looks next, so there is
no timer thread.

:class:`BreakerMachine` declares the state; :class:`~engined.core._breaker.
CircuitBreaker` builds it from validated settings; this module is the part that moves.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from engined.core._breaker_types import CircuitBreakerOpenError, CircuitState, StateChange
from engined.core._classify import FAILURE, IGNORED, SUCCESS
from engined.core._guard import NO_RESULT, Guard
from engined.core._listeners import Listeners
from engined.core._phase import Phase
from engined.core._rules import TripRules

__all__ = ["BreakerMachine"]

_log = logging.getLogger("engined.circuit_breaker")

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
DISABLED = CircuitState.DISABLED


class BreakerMachine(Guard):
    """Transitions, admission and outcome recording of a circuit breaker.

    It declares every slot of the breaker (with the types the machine relies on);
    :class:`~engined.core._breaker.CircuitBreaker` fills them in from validated settings.
    Methods in the "lock held" section expect the caller to hold ``_lock``; the others
    take it themselves, briefly, and never call user code or listeners while holding it.
    """

    __slots__ = (
        "_acquire",
        "_books",
        "_classify",
        "_dropped",
        "_failed",
        "_failure_tick",
        "_fast",
        "_fast_failures",
        "_fast_successes",
        "_half_open_max_calls",
        "_ignore",
        "_ignored",
        "_listeners",
        "_lock",
        "_max_recovery_timeout",
        "_monotonic",
        "_open_count",
        "_open_refusal",
        "_phase",
        "_plain",
        "_plain_failures",
        "_record",
        "_recovery_backoff",
        "_recovery_timeout",
        "_refusal",
        "_refuse_until",
        "_rejections",
        "_release",
        "_result_is_failure",
        "_rules",
        "_slow",
        "_success_threshold",
        "_successful",
        "_timed",
        "_times_opened",
        "_transitions",
        "_trim_at",
        "_trip_at",
        "_window_size",
        "name",
    )

    name: str
    _acquire: Callable[..., bool]
    _release: Callable[[], None]
    _rules: TripRules
    _listeners: Listeners[StateChange]
    _phase: Phase
    _books: Phase
    _dropped: deque[Phase]
    _open_refusal: Callable[[float], CircuitBreakerOpenError]
    _transitions: dict[tuple[CircuitState, CircuitState], int]
    _classify: Callable[[Exception], int] | None
    _result_is_failure: Callable[[Any], bool] | None
    _failure_tick: Callable[[], int]
    _recovery_timeout: float
    _recovery_backoff: float
    _max_recovery_timeout: float
    _half_open_max_calls: int
    _success_threshold: int
    _open_count: int
    _times_opened: int
    _successful: int
    _failed: int
    _ignored: int
    _slow: int
    _trip_at: int
    _trim_at: int
    _window_size: int

    # ----------------------------------------------------------- transitions (lock held)

    def _enter(self, state: CircuitState, now: float) -> StateChange:
        previous = self._phase.state
        phase = self._phase = Phase(state, plain=self._plain)
        self._fast = phase if state is CLOSED else None
        if phase.fails is not None:
            self._books = phase
        if state is FORCED_OPEN:
            self._refuse_until = math.inf
            self._refusal = self._forced_refusal
        else:
            self._refusal = self._open_refusal
        if state is not OPEN and state is not FORCED_OPEN:
            self._refuse_until = -math.inf  # OPEN sets its own deadline in _trip
        key = (previous, state)
        self._transitions[key] = self._transitions.get(key, 0) + 1
        return StateChange(self.name, previous, state, now)

    def _trip(self) -> StateChange:
        now = self._monotonic()
        self._open_count += 1
        try:
            grown = self._recovery_timeout * self._recovery_backoff ** (self._open_count - 1)
        except OverflowError:  # past ~1,024 openings at a factor of 2: capped anyway
            grown = math.inf
        duration = min(grown, self._max_recovery_timeout)
        self._times_opened += 1
        event = self._enter(OPEN, now)
        self._refuse_until = now + duration
        return event

    def _half_open_if_due(self, now: float) -> StateChange | None:
        if self._phase.state is OPEN and now >= self._refuse_until:
            return self._enter(HALF_OPEN, now)
        return None

    # ------------------------------------------------------------------ admission

    def _admit(self) -> Phase:
        """Admit a call that found no fast permit, or raise :class:`CircuitBreakerOpenError`.

        The calling conventions already refused OPEN and FORCED_OPEN without the lock;
        this is HALF_OPEN (and the OPEN -> HALF_OPEN switch), DISABLED, and the races.
        """
        now = self._monotonic()
        retry_after = self._refuse_until - now
        if retry_after > 0:
            self._rejected()
            raise self._refusal(retry_after)
        self._acquire()
        try:
            event = self._half_open_if_due(now)
            phase = self._phase
            state = phase.state
            dropped = self._dropped
            while dropped:  # permits collected unsettled give their probe slots back
                if dropped.popleft() is phase and state is HALF_OPEN:
                    phase.probes -= 1
            admitted = state is CLOSED or state is DISABLED
            if state is HALF_OPEN and phase.probes < self._half_open_max_calls:
                phase.probes += 1
                admitted = True
            retry_after = self._refuse_until - now
        finally:
            self._release()
        if event is not None:
            self._listeners.emit(event)
        if admitted:
            return phase
        self._rejected()
        if state is HALF_OPEN:
            raise CircuitBreakerOpenError(self.name, state, None)
        raise self._refusal(retry_after)

    def _forced_refusal(self, retry_after: float) -> CircuitBreakerOpenError:
        """The error for a call refused while FORCED_OPEN: no end is known."""
        return CircuitBreakerOpenError(self.name, FORCED_OPEN, None)

    # ------------------------------------------------------------------ outcomes

    def _on_result(self, phase: Phase, result: object, start: float) -> None:
        """Record a call that returned ``result`` (``NO_RESULT`` for a ``with`` block)."""
        outcome = SUCCESS
        predicate = self._result_is_failure
        if predicate is not None and result is not NO_RESULT:
            try:
                if predicate(result):
                    outcome = FAILURE
            except Exception:
                _log.exception("result_is_failure of circuit breaker %r failed", self.name)
        self._settle(phase, outcome, start)

    def _on_exception(self, phase: Phase, exc: BaseException, start: float) -> None:
        """Record a call that raised ``exc``; cancellation only gives the permit back."""
        if not isinstance(exc, Exception):
            self._give_back(phase)
            return
        classify = self._classify
        self._settle(phase, FAILURE if classify is None else classify(exc), start)

    def _give_back(self, phase: Phase) -> None:
        """Return a permit uncounted: only a HALF_OPEN probe slot needs giving back."""
        if phase.state is not HALF_OPEN:
            return
        self._acquire()
        try:
            if phase is self._phase:
                phase.probes -= 1
        finally:
            self._release()

    def _settle(self, phase: Phase, outcome: int, start: float) -> None:
        """Count one finished call and apply the rules of the phase it was admitted in."""
        if phase.fails is not None and outcome != IGNORED:  # plain CLOSED books, no lock
            if outcome == FAILURE:
                self._fail_plain(phase)
            else:
                phase.tally()  # type: ignore[misc]  # plain books have a tally
                self._succeeded()
            return
        if self._timed:
            now = self._monotonic()
            slow = now - start > self._rules.slow_call_duration
        else:
            now, slow = 0.0, False
        event: StateChange | None = None
        self._acquire()
        try:
            if outcome == FAILURE:
                self._failed += 1
            elif outcome == SUCCESS:
                self._successful += 1
            else:
                self._ignored += 1
            if slow:
                self._slow += 1
            state = phase.state
            if phase is not self._phase:
                pass  # a late result: counted, but it cannot move a newer state
            elif state is CLOSED:
                if outcome != IGNORED and self._rules.record(outcome == FAILURE, slow, now):
                    event = self._trip()
            elif state is HALF_OPEN:
                phase.probes -= 1
                if outcome != IGNORED:
                    event = self._settle_probe(phase, outcome == FAILURE, slow)
            # DISABLED only counts.
        finally:
            self._release()
        if event is not None:
            self._listeners.emit(event)

    def _fail_plain(self, phase: Phase) -> None:
        """Record a failure in plain CLOSED books, without the lock (see ``_phase``)."""
        ticket = phase.tally()  # type: ignore[misc]  # plain books have a tally
        fails = phase.fails
        fails.append(ticket)  # type: ignore[union-attr]  # plain books have fails
        self._failure_tick()
        run = phase.run = phase.run + 1 if ticket == phase.seen else 1
        phase.seen = ticket + 1
        if run >= self._trip_at or len(fails) > self._trim_at:  # type: ignore[arg-type]
            self._after_plain_failure(phase, ticket)

    def _after_plain_failure(self, phase: Phase, ticket: int) -> None:
        """Trip on a long enough run, or trim the failure tickets to the window."""
        self._acquire()
        try:
            event = None
            if phase.run >= self._trip_at and phase is self._phase:
                self._rules.consecutive_failures = phase.run
                event = self._trip()
            else:
                phase.trim(self._window_size, ticket)
        finally:
            self._release()
        if event is not None:
            self._listeners.emit(event)

    def _settle_probe(self, phase: Phase, failed: bool, slow: bool) -> StateChange | None:
        rules = self._rules
        if failed or (slow and rules.slow_probe_fails):
            if failed:
                rules.consecutive_failures += 1
            return self._trip()
        rules.consecutive_failures = 0
        phase.probe_successes += 1
        if phase.probe_successes < self._success_threshold:
            return None
        rules.clear()
        self._open_count = 0
        return self._enter(CLOSED, self._monotonic())
