"""Property-based tests: the breaker against small sequential reference models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from engined import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from engined.testing import FakeClock

S = CircuitState
RECOVERY = 8.0
TINY = 2.0**-10  # dyadic, so every clock sum stays exact
CAP = 40.0


class Boom(Exception):
    """The recorded failure."""


def _raise(exc: BaseException) -> None:
    raise exc


@dataclass
class Model:
    """Sequential reference: consecutive failures, backoff, one probe, success_threshold."""

    failure_threshold: int
    success_threshold: int
    backoff: float
    now: float = 0.0
    state: CircuitState = S.CLOSED
    opened_at: float = 0.0
    openings: int = 0
    consecutive: int = 0
    probe_successes: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("total", "successful", "failed", "ignored", "rejected", "times_opened"), 0
        )
    )

    def duration(self) -> float:
        return min(RECOVERY * self.backoff ** (self.openings - 1), CAP)

    def current(self) -> CircuitState:
        if self.state is S.OPEN and self.now - self.opened_at >= self.duration():
            self.state = S.HALF_OPEN
            self.probe_successes = 0
        return self.state

    def retry_after(self) -> float | None:
        if self.current() is not S.OPEN:
            return None
        return self.opened_at + self.duration() - self.now

    def open(self) -> None:
        self.state = S.OPEN
        self.opened_at = self.now
        self.openings += 1
        self.counts["times_opened"] += 1

    def close(self) -> None:
        self.state = S.CLOSED
        self.consecutive = 0
        self.openings = 0

    def call(self, outcome: str) -> bool:
        """Apply one call; return whether it was admitted."""
        state = self.current()
        if state in (S.OPEN, S.FORCED_OPEN):
            self.counts["rejected"] += 1
            return False
        if outcome == "cancel":
            return True
        self.counts["total"] += 1
        if outcome == "ignored":
            self.counts["ignored"] += 1
        elif outcome in ("success", "other"):
            self.counts["successful"] += 1
            if state is S.CLOSED:
                self.consecutive = 0
            elif state is S.HALF_OPEN:
                self.probe_successes += 1
                if self.probe_successes >= self.success_threshold:
                    self.close()
        else:
            self.counts["failed"] += 1
            if state is S.CLOSED:
                self.consecutive += 1
                if self.consecutive >= self.failure_threshold:
                    self.open()
            elif state is S.HALF_OPEN:
                self.open()
        return True


OUTCOMES: dict[str, Callable[[], BaseException] | None] = {
    "success": None,
    "failure": lambda: Boom("down"),
    "ignored": lambda: KeyError("missing"),
    "other": lambda: ValueError("bad input"),
    "cancel": asyncio.CancelledError,
}


class BreakerMachine(RuleBasedStateMachine):
    """Drive a real breaker and the model with the same operations and compare them."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.model: Model
        self.breaker: CircuitBreaker

    @initialize(
        failure_threshold=st.integers(1, 4),
        success_threshold=st.integers(1, 3),
        backoff=st.sampled_from([1.0, 2.0]),
    )
    def setup(self, failure_threshold: int, success_threshold: int, backoff: float) -> None:
        self.model = Model(failure_threshold, success_threshold, backoff)
        self.breaker = CircuitBreaker(
            "model",
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
            recovery_timeout=RECOVERY,
            recovery_backoff=backoff,
            max_recovery_timeout=CAP,
            half_open_max_calls=1,
            record_exceptions=(Boom,),
            ignore_exceptions=(KeyError,),
            clock=self.clock,
        )

    @rule(outcome=st.sampled_from(sorted(OUTCOMES)))
    def call(self, outcome: str) -> None:
        admitted = self.model.call(outcome)
        make_exc = OUTCOMES[outcome]
        if not admitted:
            with pytest.raises(CircuitBreakerOpenError):
                self.breaker.call(lambda: None)
        elif make_exc is None:
            assert self.breaker.call(lambda: outcome) == outcome
        else:
            exc = make_exc()
            with pytest.raises(type(exc)) as info:
                self.breaker.call(_raise, exc)
            assert info.value is exc

    @rule(dt=st.sampled_from([0.0, TINY, 1.0, RECOVERY - TINY, RECOVERY, 2 * RECOVERY]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)
        self.model.now += dt

    @rule()
    def force_open(self) -> None:
        self.model.current()
        self.breaker.force_open()
        self.model.state = S.FORCED_OPEN

    @rule()
    def disable(self) -> None:
        self.model.current()
        self.breaker.disable()
        self.model.state = S.DISABLED

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.close()

    @invariant()
    def matches_model(self) -> None:
        m = self.breaker.metrics
        model = self.model
        assert m.state is model.current()
        assert self.breaker.state is m.state
        actual = {
            "total": m.total_calls,
            "successful": m.successful_calls,
            "failed": m.failed_calls,
            "ignored": m.ignored_calls,
            "rejected": m.rejected_calls,
            "times_opened": m.times_opened,
        }
        assert actual == model.counts
        assert m.total_calls == m.successful_calls + m.failed_calls + m.ignored_calls
        if m.state is S.CLOSED:
            assert m.consecutive_failures == model.consecutive
        expected_retry = model.retry_after()
        if expected_retry is None:
            assert m.retry_after is None
        else:
            assert m.retry_after == pytest.approx(expected_retry)


def test_breaker_matches_the_sequential_reference_model() -> None:
    """Random calls, clock advances and manual transitions keep the breaker equal to the model."""
    run_state_machine_as_test(
        BreakerMachine,
        settings=settings(
            max_examples=80,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def _reference_open_index(
    steps: list[str], threshold: float, window_size: int, minimum_calls: int
) -> int | None:
    window: list[str] = []
    effective_min = min(minimum_calls, window_size)
    for index, step in enumerate(steps):
        if step == "I":
            continue
        window = [*window, step][-window_size:]
        if len(window) >= effective_min and window.count("F") / len(window) >= threshold:
            return index
    return None


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.sampled_from("SFI"), max_size=60),
    threshold=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
    window_size=st.integers(1, 12),
    minimum_calls=st.integers(1, 15),
)
def test_count_window_rate_rule_matches_a_sliding_window_model(
    steps: list[str], threshold: float, window_size: int, minimum_calls: int
) -> None:
    """The failure-rate rule opens at exactly the call a naive sliding-window model predicts."""
    breaker = CircuitBreaker(
        "rate",
        failure_threshold=None,
        failure_rate_threshold=threshold,
        window_size=window_size,
        minimum_calls=minimum_calls,
        ignore_exceptions=(KeyError,),
        clock=FakeClock(),
    )
    expected = _reference_open_index(steps, threshold, window_size, minimum_calls)
    for index, step in enumerate(steps):
        if step == "S":
            breaker.call(lambda: None)
        elif step == "F":
            with pytest.raises(Boom):
                breaker.call(_raise, Boom())
        else:
            with pytest.raises(KeyError):
                breaker.call(_raise, KeyError("k"))
        should_be_open = expected is not None and index == expected
        assert (breaker.state is S.OPEN) == should_be_open, (index, expected)
        if should_be_open:
            break
