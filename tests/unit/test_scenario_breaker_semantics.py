"""The exact breaker semantics the engine-daemon scenario relies on, on a FakeClock, no network.

tests/integration/test_scenario_engine_resilience.py shows them against real sockets; these
pin each count and instant without real time: the rate rule against the count rule, the
HALF_OPEN probe limit under concurrent tasks, and permits that can never leak a probe slot.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter

import pytest

from engined import CircuitBreaker, CircuitBreakerOpenError, CircuitState, StateChange
from engined.testing import FakeClock, FakeDependency

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def _run(breaker: CircuitBreaker, dep: FakeDependency[str], calls: int) -> list[str]:
    outcomes = []
    for _ in range(calls):
        try:
            breaker.call(dep)
            outcomes.append("ok")
        except ConnectionError:
            outcomes.append("fail")
        except CircuitBreakerOpenError:
            outcomes.append("rejected")
    return outcomes


def test_alternating_failures_open_by_the_rate_rule_exactly_at_minimum_calls() -> None:
    """ok/fail alternating: rate 0.5 over 10 calls opens it at call 10 with 1 failure in a row."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "db",
        failure_threshold=3,
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=10,
        recovery_timeout=30.0,
        clock=clock,
    )
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    dep = FakeDependency("db", result="row", script=["row", ConnectionError] * 5)
    assert _run(breaker, dep, 9) == ["ok", "fail"] * 4 + ["ok"]
    assert (breaker.state, breaker.metrics.failure_rate) == (CLOSED, None)  # 9 < minimum_calls
    assert _run(breaker, dep, 2) == ["fail", "rejected"]
    metrics = breaker.metrics
    assert (metrics.consecutive_failures, metrics.failure_rate, metrics.times_opened) == (1, 0.5, 1)
    assert dep.calls == 10
    assert changes == [StateChange("db", CLOSED, OPEN, 0.0)]


def test_the_count_rule_alone_never_opens_on_alternating_failures() -> None:
    """Without a rate rule, 1,000 alternating calls with failure_threshold=2 leave it CLOSED."""
    breaker = CircuitBreaker("db", failure_threshold=2, clock=FakeClock())
    dep = FakeDependency("db", result="row", script=["row", ConnectionError] * 500)
    assert Counter(_run(breaker, dep, 1_000)) == {"ok": 500, "fail": 500}
    assert (breaker.state, breaker.metrics.times_opened) == (CLOSED, 0)


def test_a_rate_below_the_threshold_never_opens_however_long_it_runs() -> None:
    """One failure in three: any 10 calls in a row hold at most 4 failures, never a 0.5 rate."""
    breaker = CircuitBreaker(
        "db",
        failure_threshold=None,
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=10,
        clock=FakeClock(),
    )
    dep = FakeDependency("db", result="row", script=["row", "row", ConnectionError] * 300)
    assert "rejected" not in _run(breaker, dep, 900)
    assert breaker.metrics.failure_rate == 0.4  # calls 891, 894, 897 and 900 of the last 10


async def test_half_open_admits_exactly_its_probes_among_concurrent_tasks() -> None:
    """In HALF_OPEN, 10 tasks at once: 2 probes reach the dependency, 8 are refused unsent."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "db",
        failure_threshold=1,
        recovery_timeout=30.0,
        half_open_max_calls=2,
        success_threshold=2,
        clock=clock,
    )
    dep = FakeDependency("db", result="row", script=[ConnectionError], latency=0.5, clock=clock)
    with pytest.raises(ConnectionError):
        await breaker.call_async(dep.call_async)
    clock.advance(30.0)

    async def one() -> str:
        try:
            return await breaker.call_async(dep.call_async)
        except CircuitBreakerOpenError:
            return "rejected"

    outcomes = Counter(await asyncio.gather(*(one() for _ in range(10))))
    assert outcomes == {"row": 2, "rejected": 8}
    assert (dep.calls, breaker.state, breaker.metrics.rejected_calls) == (3, CLOSED, 8)


def test_no_probe_slot_leaks_whatever_happens_to_a_permit() -> None:
    """Released, dropped and cancelled-style permits each give their HALF_OPEN slot back."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "db", failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=2, clock=clock
    )
    breaker.acquire().record_failure()
    clock.advance(10.0)
    first, second = breaker.acquire(), breaker.acquire()
    with pytest.raises(CircuitBreakerOpenError):
        breaker.acquire()
    first.release()  # not counted: the slot comes back
    third = breaker.acquire()
    del second  # dropped unsettled: collected, its slot comes back
    gc.collect()
    fourth = breaker.acquire()
    with pytest.raises(CircuitBreakerOpenError):
        breaker.acquire()
    third.record_success()
    fourth.record_success()
    metrics = breaker.metrics
    assert (metrics.state, metrics.failed_calls, metrics.successful_calls) == (CLOSED, 1, 2)
    assert metrics.rejected_calls == 2  # the late success of ``fourth`` counts, as any late result


def test_a_late_failure_admitted_before_opening_does_not_move_the_newer_state() -> None:
    """Permits taken in CLOSED and failed after the breaker opened are counted, not re-opening."""
    clock = FakeClock()
    breaker = CircuitBreaker("db", failure_threshold=2, recovery_timeout=5.0, clock=clock)
    permits = [breaker.acquire() for _ in range(5)]
    for permit in permits:
        permit.record_failure()
    metrics = breaker.metrics
    assert (metrics.state, metrics.failed_calls, metrics.times_opened) == (OPEN, 5, 1)
    assert metrics.retry_after == 5.0
    clock.advance(4.999)
    assert breaker.state is OPEN
    clock.advance(0.001)
    assert breaker.state is HALF_OPEN
