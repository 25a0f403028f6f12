"""Open duration: the exact HALF_OPEN instant, backoff of repeated openings, retry_after."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from engined import CircuitBreaker, CircuitBreakerMetrics, CircuitBreakerOpenError, CircuitState
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]

TINY = 2.0**-10  # exactly representable, so clock sums stay exact


class Boom(Exception):
    """The recorded failure."""


def _raise() -> None:
    raise Boom


def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise)


def _rejection(breaker: CircuitBreaker) -> CircuitBreakerOpenError:
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(lambda: None)
    return info.value


@pytest.mark.parametrize("recovery_timeout", [0.5, 30.0, 3600.0])
def test_half_open_exactly_when_recovery_timeout_elapses(
    make_breaker: Factory, clock: FakeClock, recovery_timeout: float
) -> None:
    """The breaker is OPEN just before recovery_timeout and HALF_OPEN exactly at it."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=recovery_timeout)
    clock.advance(7.0)
    _fail(breaker)
    assert breaker.state is CircuitState.OPEN
    clock.advance(recovery_timeout - TINY)
    assert breaker.state is CircuitState.OPEN
    assert _rejection(breaker).retry_after == pytest.approx(TINY)
    clock.advance(TINY)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: 42) == 42
    assert breaker.state is CircuitState.CLOSED


def test_no_timer_thread_is_started(make_breaker: Factory, clock: FakeClock) -> None:
    """Opening the breaker starts no thread: the OPEN -> HALF_OPEN switch is computed lazily."""
    before = set(threading.enumerate())
    breaker = make_breaker(failure_threshold=1, recovery_timeout=1.0)
    _fail(breaker)
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN
    assert set(threading.enumerate()) - before == set()


@pytest.mark.parametrize(
    ("recovery_timeout", "backoff", "cap", "durations"),
    [
        pytest.param(10.0, 1.0, None, [10.0, 10.0, 10.0], id="no-backoff"),
        pytest.param(10.0, 2.0, None, [10.0, 20.0, 40.0, 80.0], id="doubling"),
        pytest.param(4.0, 1.5, None, [4.0, 6.0, 9.0, 13.5], id="x1.5"),
        pytest.param(10.0, 2.0, 35.0, [10.0, 20.0, 35.0, 35.0], id="capped"),
        pytest.param(10.0, 3.0, 10.0, [10.0, 10.0, 10.0], id="cap-equals-timeout"),
    ],
)
def test_open_duration_backs_off_on_consecutive_openings(
    make_breaker: Factory,
    clock: FakeClock,
    assert_invariant: Invariant,
    recovery_timeout: float,
    backoff: float,
    cap: float | None,
    durations: list[float],
) -> None:
    """The n-th consecutive opening lasts recovery_timeout * recovery_backoff**(n-1), capped."""
    breaker = make_breaker(
        failure_threshold=1,
        recovery_timeout=recovery_timeout,
        recovery_backoff=backoff,
        max_recovery_timeout=cap,
    )
    _fail(breaker)
    for n, duration in enumerate(durations, start=1):
        m = breaker.metrics
        assert_invariant(m)
        assert m.state is CircuitState.OPEN
        assert m.times_opened == n
        assert m.retry_after == pytest.approx(duration)
        clock.advance(duration - TINY)
        assert breaker.state is CircuitState.OPEN, f"opening {n} ended early"
        clock.advance(TINY)
        assert breaker.state is CircuitState.HALF_OPEN, f"opening {n} did not end at {duration}"
        _fail(breaker)  # the probe fails: the next consecutive opening


@pytest.mark.parametrize("how", ["probe-closes", "reset"])
def test_backoff_starts_over_after_closing(
    make_breaker: Factory, clock: FakeClock, how: str
) -> None:
    """Once the breaker closes (probes or reset()) the next opening lasts recovery_timeout again."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0, recovery_backoff=2.0)
    _fail(breaker)
    clock.advance(10.0)
    _fail(breaker)  # second opening: 20 s
    clock.advance(20.0)
    assert breaker.state is CircuitState.HALF_OPEN
    if how == "reset":
        breaker.reset()
    else:
        breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED
    _fail(breaker)
    assert breaker.metrics.retry_after == pytest.approx(10.0)
    clock.advance(10.0)
    assert breaker.state is CircuitState.HALF_OPEN


def test_retry_after_is_the_remaining_open_time(make_breaker: Factory, clock: FakeClock) -> None:
    """In OPEN, retry_after on the error and in metrics is the open time still to run."""
    breaker = make_breaker("payments", failure_threshold=1, recovery_timeout=30.0)
    _fail(breaker)
    err = _rejection(breaker)
    assert err.retry_after == pytest.approx(30.0)
    clock.advance(12.0)
    err = _rejection(breaker)
    assert err.name == "payments"
    assert err.state is CircuitState.OPEN
    assert err.retry_after == pytest.approx(18.0)
    assert breaker.metrics.retry_after == pytest.approx(18.0)


def test_retry_after_is_none_outside_open(make_breaker: Factory, clock: FakeClock) -> None:
    """retry_after is None in CLOSED, HALF_OPEN and FORCED_OPEN, on the error and in metrics."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=5.0)
    assert breaker.metrics.retry_after is None
    _fail(breaker)
    clock.advance(5.0)
    assert breaker.metrics.state is CircuitState.HALF_OPEN
    assert breaker.metrics.retry_after is None
    breaker.force_open()
    assert breaker.metrics.retry_after is None
    err = _rejection(breaker)
    assert err.state is CircuitState.FORCED_OPEN
    assert err.retry_after is None


def test_half_open_full_rejection_has_no_retry_after(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """A caller turned away while every probe permit is taken sees HALF_OPEN and no retry_after."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=5.0)
    _fail(breaker)
    clock.advance(5.0)
    with breaker.permit():  # the only probe permit is held
        err = _rejection(breaker)
    assert err.state is CircuitState.HALF_OPEN
    assert err.retry_after is None
    assert breaker.metrics.rejected_calls == 1
    assert breaker.state is CircuitState.CLOSED


def test_times_opened_counts_entries_into_open_only(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """times_opened counts CLOSED->OPEN and HALF_OPEN->OPEN, never FORCED_OPEN."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=1.0)
    breaker.force_open()
    breaker.reset()
    assert breaker.metrics.times_opened == 0
    _fail(breaker)
    clock.advance(1.0)
    _fail(breaker)
    assert breaker.metrics.times_opened == 2
    breaker.force_open()
    assert breaker.metrics.times_opened == 2


@pytest.mark.parametrize("cap", [60.0, 1e300])
def test_a_thousand_consecutive_openings_never_overflow(
    make_breaker: Factory, clock: FakeClock, cap: float
) -> None:
    """1,100 openings at recovery_backoff=2 keep opening for the capped time, no OverflowError.

    Once ``2.0 ** 1024`` was computed before the cap: callers got OverflowError and the
    breaker never opened again.
    """
    breaker = make_breaker(
        failure_threshold=1, recovery_timeout=1.0, recovery_backoff=2.0, max_recovery_timeout=cap
    )
    for n in range(1, 1101):
        _fail(breaker)
        retry_after = breaker.metrics.retry_after
        assert retry_after == pytest.approx(min(2.0 ** min(n - 1, 1000), cap), rel=1e-9)
        assert _rejection(breaker).state is CircuitState.OPEN
        clock.advance(retry_after)
        assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.metrics.times_opened == 1100
