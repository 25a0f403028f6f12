"""HALF_OPEN probes, FORCED_OPEN, DISABLED and reset()."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from engined import CircuitBreaker, CircuitBreakerMetrics, CircuitBreakerOpenError, CircuitState
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]


class Boom(Exception):
    """The recorded failure."""


def _raise(exc: BaseException) -> None:
    raise exc


def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise, Boom())


def _rejected(breaker: CircuitBreaker) -> CircuitBreakerOpenError:
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(lambda: None)
    return info.value


@pytest.fixture
def half_open(make_breaker: Factory, clock: FakeClock) -> Callable[..., CircuitBreaker]:
    """Build a breaker and drive it into HALF_OPEN with one failure and recovery_timeout=10."""

    def make(**config: Any) -> CircuitBreaker:
        config.setdefault("failure_threshold", 1)
        breaker = make_breaker(recovery_timeout=10.0, **config)
        for _ in range(config["failure_threshold"] or 1):
            _fail(breaker)
        clock.advance(10.0)
        assert breaker.state is CircuitState.HALF_OPEN
        return breaker

    return make


@pytest.mark.parametrize("max_calls", [1, 2, 5])
def test_half_open_admits_exactly_max_calls_in_flight(
    half_open: Callable[..., CircuitBreaker], assert_invariant: Invariant, max_calls: int
) -> None:
    """While half_open_max_calls probes are in flight every further call is rejected."""
    breaker = half_open(half_open_max_calls=max_calls, success_threshold=max_calls)
    with contextlib.ExitStack() as probes:
        for _ in range(max_calls):
            probes.enter_context(breaker.permit())
        for _ in range(3):
            assert _rejected(breaker).state is CircuitState.HALF_OPEN
        assert breaker.state is CircuitState.HALF_OPEN
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert (m.rejected_calls, m.successful_calls) == (3, max_calls)


@pytest.mark.parametrize("threshold", [1, 2, 4])
def test_success_threshold_successes_close(
    half_open: Callable[..., CircuitBreaker], threshold: int
) -> None:
    """Exactly success_threshold probe successes close the breaker; fewer leave it HALF_OPEN."""
    breaker = half_open(success_threshold=threshold)
    for _ in range(threshold - 1):
        breaker.call(lambda: None)
        assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED


def test_closing_starts_a_fresh_window(
    half_open: Callable[..., CircuitBreaker], assert_invariant: Invariant
) -> None:
    """After the probes close it, the old window's failures no longer count towards any rule."""
    breaker = half_open(
        failure_threshold=4, failure_rate_threshold=0.5, window_size=4, minimum_calls=4
    )
    breaker.call(lambda: None)
    m = breaker.metrics
    assert m.state is CircuitState.CLOSED
    assert m.failure_rate is None
    assert m.consecutive_failures == 0
    _fail(breaker)  # with the old window (FFFF + S) this would make the rate 0.75
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert m.consecutive_failures == 1


@pytest.mark.parametrize("successes_before", [0, 1, 2])
def test_any_probe_failure_reopens(
    half_open: Callable[..., CircuitBreaker], successes_before: int
) -> None:
    """A probe failure re-opens the breaker even after some probe successes."""
    breaker = half_open(success_threshold=3)
    for _ in range(successes_before):
        breaker.call(lambda: None)
    _fail(breaker)
    m = breaker.metrics
    assert m.state is CircuitState.OPEN
    assert m.times_opened == 2


def test_probe_successes_do_not_carry_over_a_reopening(
    half_open: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """Probe successes from an earlier HALF_OPEN period do not count in the next one."""
    breaker = half_open(success_threshold=2)
    breaker.call(lambda: None)
    _fail(breaker)
    clock.advance(10.0)
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED


def test_ignored_probe_gives_its_permit_back(
    half_open: Callable[..., CircuitBreaker], assert_invariant: Invariant
) -> None:
    """An ignored probe neither closes nor re-opens the breaker and frees its permit."""
    breaker = half_open(ignore_exceptions=(KeyError,))
    for _ in range(3):
        with pytest.raises(KeyError):
            breaker.call(_raise, KeyError("gone"))
        assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: "ok") == "ok"
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert (m.ignored_calls, m.rejected_calls) == (3, 0)


def test_probe_raising_an_unrecorded_exception_counts_as_success(
    half_open: Callable[..., CircuitBreaker],
) -> None:
    """A probe raising an exception outside record_exceptions closes the breaker and propagates."""
    breaker = half_open(record_exceptions=(Boom,))
    err = ValueError("bad request")
    with pytest.raises(ValueError, match="bad request") as info:
        breaker.call(_raise, err)
    assert info.value is err
    assert breaker.state is CircuitState.CLOSED


def test_slow_probe_reopens_when_the_slow_rate_rule_is_on(
    half_open: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """With slow_call_rate_threshold set, a slow successful probe counts as a probe failure."""
    breaker = half_open(slow_call_duration=1.0, slow_call_rate_threshold=0.5)
    assert breaker.call(clock.advance, 2.0) is None
    assert breaker.state is CircuitState.OPEN


def test_slow_probe_closes_without_the_slow_rate_rule(
    half_open: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """With only slow_call_duration set, a slow successful probe is still a success."""
    breaker = half_open(slow_call_duration=1.0)
    breaker.call(clock.advance, 2.0)
    m = breaker.metrics
    assert m.state is CircuitState.CLOSED
    assert m.slow_calls == 1


@pytest.mark.parametrize("start", ["closed", "open", "half_open", "disabled"])
def test_force_open_rejects_everything_until_reset(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant, start: str
) -> None:
    """FORCED_OPEN rejects every call however long it lasts, and reset() returns to CLOSED."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0)
    if start in ("open", "half_open"):
        _fail(breaker)
    if start == "half_open":
        clock.advance(10.0)
    if start == "disabled":
        breaker.disable()
    breaker.force_open()
    calls_before = breaker.metrics.total_calls
    ran: list[int] = []
    for _ in range(4):
        with pytest.raises(CircuitBreakerOpenError) as info:
            breaker.call(ran.append, 1)
        assert info.value.state is CircuitState.FORCED_OPEN
        clock.advance(1000.0)
        assert breaker.state is CircuitState.FORCED_OPEN
    m = breaker.metrics
    assert_invariant(m)
    assert ran == []
    assert m.total_calls == calls_before
    assert m.rejected_calls == 4
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(lambda: "back") == "back"


def test_disabled_lets_everything_through_and_counts(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """DISABLED never rejects, never opens, and still counts every outcome."""
    breaker = make_breaker(failure_threshold=1, failure_rate_threshold=0.1, minimum_calls=1)
    breaker.disable()
    for _ in range(50):
        _fail(breaker)
    breaker.call(lambda: None)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.DISABLED
    assert (m.failed_calls, m.successful_calls, m.rejected_calls, m.times_opened) == (50, 1, 0, 0)


@pytest.mark.parametrize("start", ["closed", "open", "half_open", "forced_open", "disabled"])
def test_reset_returns_to_closed_with_an_empty_window(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant, start: str
) -> None:
    """reset() gives CLOSED, no consecutive failures and an empty window from any state."""
    breaker = make_breaker(
        failure_threshold=3,
        failure_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
        recovery_timeout=10.0,
    )
    failures = 2 if start == "closed" else 3
    for _ in range(failures):
        _fail(breaker)
    if start == "half_open":
        clock.advance(10.0)
    elif start == "forced_open":
        breaker.force_open()
    elif start == "disabled":
        breaker.disable()
    breaker.reset()
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert m.consecutive_failures == 0
    assert m.failure_rate is None
    assert m.failed_calls == failures  # cumulative counters are never reset
    _fail(breaker)
    _fail(breaker)
    assert breaker.state is CircuitState.CLOSED  # two fresh failures trip no rule
    _fail(breaker)
    assert breaker.state is CircuitState.OPEN
