"""Trip rules: consecutive failures, failure rate, slow-call rate, count and time windows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engined import (
    CircuitBreaker,
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitState,
)
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]


class Boom(Exception):
    """The failure every test records."""


def _raise(exc: BaseException) -> None:
    raise exc


def _step(breaker: CircuitBreaker, clock: FakeClock, step: str) -> None:
    """Make one call: S success, F failure, W slow success, X slow failure, I ignored (KeyError)."""
    if step == "S":
        assert breaker.call(lambda: "ok") == "ok"
    elif step == "W":
        breaker.call(clock.advance, 2.0)
    elif step == "F":
        with pytest.raises(Boom):
            breaker.call(_raise, Boom())
    elif step == "X":
        with pytest.raises(Boom):
            breaker.call(lambda: (clock.advance(2.0), _raise(Boom())))
    elif step == "I":
        with pytest.raises(KeyError):
            breaker.call(_raise, KeyError("k"))
    else:  # pragma: no cover - a typo in a table
        raise AssertionError(step)


RATE = {"failure_threshold": None, "failure_rate_threshold": 0.5, "window_size": 4}
SLOW = {
    "failure_threshold": None,
    "slow_call_duration": 1.0,
    "slow_call_rate_threshold": 0.5,
    "window_size": 4,
    "minimum_calls": 4,
}


@pytest.mark.parametrize(
    ("config", "steps", "open_at"),
    [
        pytest.param({}, "FFFFF", 4, id="default-5-consecutive"),
        pytest.param({"failure_threshold": 1}, "F", 0, id="consecutive-1"),
        pytest.param({"failure_threshold": 3}, "FFF", 2, id="consecutive-3"),
        pytest.param({"failure_threshold": 3}, "FFSFFSFFF", 8, id="success-resets-count"),
        pytest.param(
            {"failure_threshold": 3, "ignore_exceptions": (KeyError,)},
            "FFIF",
            3,
            id="ignored-does-not-reset-count",
        ),
        pytest.param({"failure_threshold": None}, "F" * 200, None, id="consecutive-off"),
        pytest.param({**RATE, "minimum_calls": 4}, "FFFS", 3, id="rate-min-reached-by-success"),
        pytest.param({**RATE, "minimum_calls": 4}, "SSFF", 3, id="rate-equal-threshold"),
        pytest.param({**RATE, "minimum_calls": 4}, "SSSFSSSF", None, id="rate-below-threshold"),
        pytest.param({**RATE, "minimum_calls": 4}, "FSSSSFF", 6, id="count-window-evicts"),
        pytest.param(
            {**RATE, "window_size": 3, "minimum_calls": 10}, "FFF", 2, id="min-capped-by-window"
        ),
        pytest.param(
            {**RATE, "minimum_calls": 4, "ignore_exceptions": (KeyError,)},
            "FFIIISS",
            6,
            id="ignored-not-in-window",
        ),
        pytest.param(
            {**RATE, "failure_rate_threshold": 1.0, "minimum_calls": 4},
            "FFFSFFFF",
            7,
            id="rate-1.0-needs-all-failures",
        ),
        pytest.param(
            {**RATE, "failure_threshold": 10, "minimum_calls": 4},
            "SFSF",
            3,
            id="rate-fires-before-consecutive",
        ),
        pytest.param(
            {"failure_threshold": 3, "failure_rate_threshold": 0.9, "minimum_calls": 50},
            "FFF",
            2,
            id="consecutive-fires-below-minimum",
        ),
        pytest.param(SLOW, "WSSW", 3, id="slow-rate-equal-threshold"),
        pytest.param(SLOW, "WSSSWSS", None, id="slow-rate-below-threshold"),
        pytest.param({**SLOW, "window_size": 2, "minimum_calls": 2}, "SX", 1, id="slow-failure"),
    ],
)
def test_breaker_opens_on_the_exact_call(
    make_breaker: Factory,
    clock: FakeClock,
    assert_invariant: Invariant,
    config: dict[str, Any],
    steps: str,
    open_at: int | None,
) -> None:
    """The breaker stays CLOSED until the call at which a rule fires, and opens exactly there."""
    breaker = make_breaker(**config)
    for index, step in enumerate(steps):
        _step(breaker, clock, step)
        m = breaker.metrics
        assert_invariant(m)
        expected = CircuitState.OPEN if index == open_at else CircuitState.CLOSED
        assert breaker.state is expected, f"after call {index} of {steps!r}"
        assert m.state is expected
        assert m.times_opened == (1 if index == open_at else 0)
        assert m.total_calls == index + 1


@pytest.mark.parametrize("threshold", [1, 2, 7])
def test_consecutive_failures_counted_in_metrics(
    make_breaker: Factory, clock: FakeClock, threshold: int
) -> None:
    """consecutive_failures counts up to the threshold and a success sets it back to zero."""
    breaker = make_breaker(failure_threshold=threshold + 1)
    for expected in range(1, threshold + 1):
        _step(breaker, clock, "F")
        assert breaker.metrics.consecutive_failures == expected
    _step(breaker, clock, "S")
    assert breaker.metrics.consecutive_failures == 0


def test_failure_rate_is_none_below_minimum_calls(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant
) -> None:
    """failure_rate reads None until the window holds minimum_calls calls, then the ratio."""
    breaker = make_breaker(failure_threshold=None, failure_rate_threshold=0.9, minimum_calls=4)
    for step in "SFS":
        _step(breaker, clock, step)
        assert breaker.metrics.failure_rate is None
    _step(breaker, clock, "S")
    m = breaker.metrics
    assert_invariant(m)
    assert m.failure_rate == pytest.approx(0.25)
    assert m.state is CircuitState.CLOSED


def test_failure_rate_tracks_the_count_window(make_breaker: Factory, clock: FakeClock) -> None:
    """failure_rate is the share of failures among the last window_size recorded calls."""
    breaker = make_breaker(
        failure_threshold=None, failure_rate_threshold=0.9, window_size=4, minimum_calls=4
    )
    for step in "FFSS":
        _step(breaker, clock, step)
    assert breaker.metrics.failure_rate == pytest.approx(0.5)
    _step(breaker, clock, "S")  # evicts the first F
    assert breaker.metrics.failure_rate == pytest.approx(0.25)
    _step(breaker, clock, "S")  # evicts the second F
    assert breaker.metrics.failure_rate == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        pytest.param(0.0, CircuitState.CLOSED, id="same-instant"),
        pytest.param(8.5, CircuitState.CLOSED, id="before-0.9x-still-counted"),
        pytest.param(10.0, CircuitState.OPEN, id="after-1.0x-aged-out"),
        pytest.param(25.0, CircuitState.OPEN, id="long-idle-aged-out"),
    ],
)
def test_time_window_successes_age_out(
    make_breaker: Factory, clock: FakeClock, gap: float, expected: CircuitState
) -> None:
    """Calls older than window_duration leave the window; later failures alone decide the rate."""
    breaker = make_breaker(
        failure_threshold=None, failure_rate_threshold=0.5, window_duration=10.0, minimum_calls=2
    )
    for step in "SSS":
        _step(breaker, clock, step)
    clock.advance(gap)
    _step(breaker, clock, "F")
    assert breaker.state is CircuitState.CLOSED
    _step(breaker, clock, "F")
    assert breaker.state is expected


def test_time_window_failure_rate_decays_to_none(make_breaker: Factory, clock: FakeClock) -> None:
    """Once every call has aged out of the time window the failure rate is None again."""
    breaker = make_breaker(
        failure_threshold=None, failure_rate_threshold=0.75, window_duration=10.0, minimum_calls=2
    )
    _step(breaker, clock, "S")
    _step(breaker, clock, "F")
    assert breaker.metrics.failure_rate == pytest.approx(0.5)
    clock.advance(10.0)
    m = breaker.metrics
    assert m.failure_rate is None
    assert m.failed_calls == 1  # cumulative counters do not age
    assert m.state is CircuitState.CLOSED


def test_time_window_trips_on_failures_spread_within_the_duration(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """Failures a few seconds apart inside window_duration add up to trip the rate rule."""
    breaker = make_breaker(
        failure_threshold=None, failure_rate_threshold=0.6, window_duration=10.0, minimum_calls=2
    )
    _step(breaker, clock, "F")
    _step(breaker, clock, "S")
    assert breaker.state is CircuitState.CLOSED  # 1/2 < 0.6
    clock.advance(4.0)
    _step(breaker, clock, "F")
    assert breaker.state is CircuitState.OPEN  # 2/3 >= 0.6


def test_time_window_ignores_window_size(make_breaker: Factory, clock: FakeClock) -> None:
    """With window_duration set, calls beyond window_size still count while inside the duration."""
    breaker = make_breaker(
        failure_threshold=None,
        failure_rate_threshold=0.5,
        window_size=2,
        window_duration=60.0,
        minimum_calls=2,
    )
    for step in "SSSSSS":
        _step(breaker, clock, step)
    for _ in range(5):
        _step(breaker, clock, "F")
    assert breaker.state is CircuitState.CLOSED  # 5/11 < 0.5; a 2-call window would have opened
    _step(breaker, clock, "F")
    assert breaker.state is CircuitState.OPEN  # 6/12


@pytest.mark.parametrize(
    ("elapsed", "slow"),
    [(0.0, 0), (0.5, 0), (1.0, 0), (1.0 + 2**-20, 1), (5.0, 1)],
)
def test_slow_call_is_strictly_longer_than_slow_call_duration(
    make_breaker: Factory, clock: FakeClock, elapsed: float, slow: int
) -> None:
    """A call counts as slow only when it runs strictly longer than slow_call_duration."""
    breaker = make_breaker(slow_call_duration=1.0)
    breaker.call(clock.advance, elapsed)
    m = breaker.metrics
    assert m.slow_calls == slow
    assert m.successful_calls == 1


def test_slow_calls_counted_without_a_rate_rule(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant
) -> None:
    """slow_call_duration alone counts slow calls but never opens the breaker."""
    breaker = make_breaker(slow_call_duration=1.0, minimum_calls=1, window_size=5)
    for _ in range(20):
        _step(breaker, clock, "W")
    m = breaker.metrics
    assert_invariant(m)
    assert m.slow_calls == 20
    assert m.successful_calls == 20
    assert m.state is CircuitState.CLOSED


def test_slow_failure_counts_as_failed_and_slow(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant
) -> None:
    """A failure that is also slow is counted in both failed_calls and slow_calls."""
    breaker = make_breaker(slow_call_duration=1.0)
    _step(breaker, clock, "X")
    m = breaker.metrics
    assert_invariant(m)
    assert (m.failed_calls, m.slow_calls, m.successful_calls) == (1, 1, 0)


def test_slow_call_rate_reported(make_breaker: Factory, clock: FakeClock) -> None:
    """slow_call_rate is the share of slow calls in the window."""
    breaker = make_breaker(**SLOW)
    for step in "WSSS":
        _step(breaker, clock, step)
    m = breaker.metrics
    assert m.slow_call_rate == pytest.approx(0.25)
    assert m.state is CircuitState.CLOSED


def test_open_breaker_rejects_without_calling(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant
) -> None:
    """An OPEN breaker raises CircuitBreakerOpenError and never runs the function."""
    breaker = make_breaker(failure_threshold=1)
    _step(breaker, clock, "F")
    ran: list[int] = []
    for _ in range(3):
        with pytest.raises(CircuitBreakerOpenError):
            breaker.call(ran.append, 1)
    m = breaker.metrics
    assert_invariant(m)
    assert ran == []
    assert (m.total_calls, m.rejected_calls, m.failed_calls) == (1, 3, 1)
