"""The circuit breaker: its public face, construction, metrics and manual controls.

The state machine that moves (transitions, admission, recording outcomes) is
:class:`~engined.core._breaker_machine.BreakerMachine`; the per-state books are
:class:`~engined.core._phase.Phase`. This class declares every slot (the breaker has
more attributes than CPython 3.11 shares dict keys for, and slots keep its failure path
cheap) and builds the machine from validated settings.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core import _validate as check
from engined.core._breaker_machine import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    OPEN,
    BreakerMachine,
)
from engined.core._breaker_types import (
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitState,
    StateChange,
)
from engined.core._classify import (
    Matcher,
    callable_key,
    exception_classifier,
    matcher_key,
)
from engined.core._counter import AtomicCounter
from engined.core._listeners import Listeners
from engined.core._permit import Permit, PermitBlock
from engined.core._phase import Phase
from engined.core._rules import TripRules

__all__ = ["CircuitBreaker"]


class CircuitBreaker(BreakerMachine):
    """Stop calling a dependency that keeps failing, and probe it until it recovers.

    Use it as a decorator on sync or async callables, through :meth:`call` and
    :meth:`call_async`, around a block with ``with breaker.permit():`` (or ``async with``),
    or hold a :class:`Permit` from :meth:`acquire` where a call cannot be one block.
    Outcomes are classified in this order: a ``BaseException`` that is not an
    ``Exception`` (cancellation, ``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``)
    is never counted and gives its permit back; ``ignore_exceptions`` beat
    ``record_exceptions``; a recorded exception is a failure; any other exception is a
    success (the dependency answered); a return value for which ``result_is_failure`` is
    true is a failure.

    A function decorated with ``@breaker`` and then called through ``breaker.call`` goes
    through the breaker twice, so it is counted twice: use one or the other.

    Args:
        name: Names the breaker in errors, events, the registry and metric labels.
        failure_threshold: Consecutive failures that open the breaker; ``None`` turns the
            rule off.
        failure_rate_threshold: Failed share of the window, in (0, 1], that opens it.
        slow_call_duration: Seconds above which a call counts as slow.
        slow_call_rate_threshold: Slow share of the window, in (0, 1], that opens it.
            With it set, a slow probe in HALF_OPEN counts as a failed probe.
        window_size: The window is the last ``window_size`` calls ...
        window_duration: ... or, when set, the calls of the last ``window_duration`` seconds.
        minimum_calls: Calls the window must hold before a rate rule can fire. For a count
            window the effective value is ``min(minimum_calls, window_size)``.
        recovery_timeout: Seconds the first opening lasts before probes are let through.
        recovery_backoff: Growth factor of the open duration for each consecutive opening.
        max_recovery_timeout: Cap on the open duration; ``None`` means no cap.
        half_open_max_calls: Probes allowed in flight at once in HALF_OPEN.
        success_threshold: Successful probes that close the breaker again.
        record_exceptions: Exception classes counted as failures, or a predicate on the
            exception (to carve a subclass out of a recorded base).
        ignore_exceptions: Exception classes (or a predicate) counted as neither success
            nor failure.
        result_is_failure: Predicate on a return value that marks it a failure.
        clock: Time source; tests pass :class:`engined.testing.FakeClock`.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.
    """

    __slots__ = ()  # every slot is declared by BreakerMachine, which owns the state

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int | None = 5,
        failure_rate_threshold: float | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float | None = None,
        window_size: int = 100,
        window_duration: float | None = None,
        minimum_calls: int = 10,
        recovery_timeout: float = 30.0,
        recovery_backoff: float = 1.0,
        max_recovery_timeout: float | None = None,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        record_exceptions: Matcher = (Exception,),
        ignore_exceptions: Matcher = (),
        result_is_failure: Callable[[Any], bool] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = check.check_name("name", name)
        super().__init__(f"circuit breaker {self.name!r}")
        self._rules = TripRules(
            failure_threshold=failure_threshold,
            failure_rate_threshold=failure_rate_threshold,
            slow_call_duration=slow_call_duration,
            slow_call_rate_threshold=slow_call_rate_threshold,
            window_size=window_size,
            window_duration=window_duration,
            minimum_calls=minimum_calls,
        )
        self._recovery_timeout = check.check_positive("recovery_timeout", recovery_timeout)
        self._recovery_backoff = check.check_positive(
            "recovery_backoff", recovery_backoff, minimum=1.0, inclusive=True
        )
        self._max_recovery_timeout = (
            math.inf
            if max_recovery_timeout is None
            else check.check_positive(
                "max_recovery_timeout",
                max_recovery_timeout,
                minimum=self._recovery_timeout,
                inclusive=True,
            )
        )
        self._half_open_max_calls = check.check_int(
            "half_open_max_calls", half_open_max_calls, minimum=1
        )
        self._success_threshold = check.check_int("success_threshold", success_threshold, minimum=1)
        self._classify, self._record, self._ignore = exception_classifier(
            self.name, record_exceptions, ignore_exceptions
        )
        self._result_is_failure = (
            None
            if result_is_failure is None
            else check.check_callable("result_is_failure", result_is_failure)
        )
        self._monotonic = check.check_clock("clock", clock).monotonic
        self._timed = self._rules.timed
        # Plain: only the consecutive-failure rule can fire, and nothing needs timing or
        # judging, so a CLOSED phase keeps its books without the lock (see _phase).
        self._plain = not self._timed and self._result_is_failure is None
        self._plain = self._plain and not self._rules.has_rates
        self._plain_failures = self._plain and self._classify is None
        self._trip_at = self._rules.failure_threshold or sys.maxsize
        self._window_size = self._rules.window_size
        self._trim_at = 2 * self._window_size

        self._lock = threading.Lock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._fast_successes = AtomicCounter()  # plain CLOSED successes, bumped lock-free
        self._succeeded = self._fast_successes.increment
        self._fast_failures = AtomicCounter()  # plain CLOSED failures, bumped lock-free
        self._failure_tick = self._fast_failures.increment
        self._phase = self._books = Phase(CLOSED, plain=self._plain)
        self._fast: Phase | None = self._phase
        self._refuse_until = -math.inf
        self._dropped: deque[Phase] = deque()  # phases of permits collected unsettled
        # What a refused call raises: built in C for OPEN (the outage path), by a method
        # for FORCED_OPEN, whose retry_after is unknown.
        self._open_refusal = functools.partial(CircuitBreakerOpenError, self.name, OPEN)
        self._refusal: Callable[[float], CircuitBreakerOpenError] = self._open_refusal
        self._open_count = 0
        self._successful = self._failed = self._ignored = 0
        self._slow = self._times_opened = 0
        self._rejections = AtomicCounter()  # bumped without the lock
        self._rejected = self._rejections.increment
        self._transitions: dict[tuple[CircuitState, CircuitState], int] = {}
        self._listeners: Listeners[StateChange] = Listeners(f"circuit breaker {name!r}")

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, state={self._phase.state.value!r}, "
            f"{self._rules!r}, recovery_timeout={self._recovery_timeout!r})"
        )

    # ----------------------------------------------------------------------- permits

    def acquire(self) -> Permit:
        """Admit one call and return its :class:`Permit`, for code that cannot be one block.

        Raises:
            CircuitBreakerOpenError: The breaker refuses calls now.
        """
        phase = self._fast
        if phase is None:
            retry_after = self._refuse_until - self._monotonic()
            if retry_after > 0:
                self._rejected()
                raise self._refusal(retry_after)
            phase = self._admit()
        return Permit(self, phase, self._monotonic() if self._timed else 0.0)

    def permit(self) -> PermitBlock:
        """Return a fresh, single-use block: ``with breaker.permit() as permit:``.

        The permit is acquired on entry (which may raise
        :class:`CircuitBreakerOpenError`) and settled by the block's outcome on exit.
        """
        return PermitBlock(self)

    def __enter__(self) -> NoReturn:
        raise TypeError(_NOT_A_BLOCK)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise TypeError(_NOT_A_BLOCK)

    async def __aenter__(self) -> NoReturn:
        raise TypeError(_NOT_A_BLOCK)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise TypeError(_NOT_A_BLOCK)

    def _effective_config(self) -> dict[str, object]:
        """What this breaker does, for comparing with a configuration asked for by name."""
        return {
            **self._rules.settings(),
            "recovery_timeout": self._recovery_timeout,
            "recovery_backoff": self._recovery_backoff,
            "max_recovery_timeout": self._max_recovery_timeout,
            "half_open_max_calls": self._half_open_max_calls,
            "success_threshold": self._success_threshold,
            "record_exceptions": matcher_key(self._record),
            "ignore_exceptions": matcher_key(self._ignore),
            "result_is_failure": callable_key(self._result_is_failure),
            "clock": self._monotonic,
        }

    # ----------------------------------------------------------------- state and metrics

    @property
    def state(self) -> CircuitState:
        """The current state; an OPEN breaker whose time is up turns HALF_OPEN here."""
        phase = self._phase
        if phase.state is OPEN and self._monotonic() >= self._refuse_until:
            self._acquire()
            try:
                event = self._half_open_if_due(self._monotonic())
            finally:
                self._release()
            if event is not None:
                self._listeners.emit(event)
        return self._phase.state

    @property
    def metrics(self) -> CircuitBreakerMetrics:
        """A consistent snapshot of the counters and the window."""
        now = self._monotonic()
        self._acquire()
        try:
            event = self._half_open_if_due(now)
            rules, books, state = self._rules, self._books, self._phase.state
            consecutive = rules.consecutive_failures
            if self._plain:
                failure_rate, slow_call_rate = rules.rates_of(*books.window(self._window_size))
                if books is self._phase:
                    consecutive = books.consecutive_failures()
            else:
                failure_rate, slow_call_rate = rules.rates(now)
            successful = self._successful + self._fast_successes.value
            failed = self._failed + self._fast_failures.value
            snapshot = CircuitBreakerMetrics(
                name=self.name,
                state=state,
                total_calls=successful + failed + self._ignored,
                successful_calls=successful,
                failed_calls=failed,
                ignored_calls=self._ignored,
                rejected_calls=self._rejections.value,
                slow_calls=self._slow,
                consecutive_failures=consecutive,
                failure_rate=failure_rate,
                slow_call_rate=slow_call_rate,
                times_opened=self._times_opened,
                retry_after=max(self._refuse_until - now, 0.0) if state is OPEN else None,
                transitions=dict(self._transitions),
            )
        finally:
            self._release()
        if event is not None:
            self._listeners.emit(event)
        return snapshot

    def force_open(self) -> None:
        """Reject every call until :meth:`reset`."""
        self._set_state(FORCED_OPEN)

    def disable(self) -> None:
        """Let every call through, counting outcomes but never opening, until :meth:`reset`."""
        self._set_state(DISABLED)

    def reset(self) -> None:
        """Return to CLOSED with an empty window and no open-duration backoff."""
        self._set_state(CLOSED)

    def _set_state(self, state: CircuitState) -> None:
        now = self._monotonic()
        self._acquire()
        try:
            event = None
            if self._phase.state is not state:
                event = self._enter(state, now)
            elif state is CLOSED:
                # Not a transition, but still a fresh start: calls admitted before the
                # reset are late now, like after any other state change.
                self._phase = self._fast = self._books = Phase(CLOSED, plain=self._plain)
            if state is CLOSED:
                self._rules.clear()
                self._open_count = 0
        finally:
            self._release()
        if event is not None:
            self._listeners.emit(event)

    # ----------------------------------------------------------------------- listeners

    def add_listener(self, listener: Callable[[StateChange], object]) -> None:
        """Call ``listener(event)`` on every state change.

        Listeners run in the thread that caused the change, after the breaker's lock is
        released. One that raises is logged and never reaches the caller.
        """
        self._listeners.add(listener)

    def remove_listener(self, listener: Callable[[StateChange], object]) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        self._listeners.remove(listener)


_NOT_A_BLOCK = (
    "a circuit breaker is not a context manager: its permit would belong to whichever "
    "thread, task or generator ended the block. Use `with breaker.permit():` (or "
    "`async with breaker.permit():`), which holds a permit of its own."
)
