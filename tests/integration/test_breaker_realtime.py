"""The circuit breaker on the real clock: parallel calls and real-time recovery."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engined import CircuitBreaker, CircuitState

pytestmark = pytest.mark.integration

SLEEP = 0.050


def test_threads_run_through_one_breaker_in_parallel() -> None:
    """Four threads each sleeping 50 ms through one breaker finish in well under 4 x 50 ms.

    Guards against pybreaker#55 (a lock held around the call serializes callers).
    """
    breaker = CircuitBreaker("realtime", failure_threshold=None)
    start = threading.Barrier(5, timeout=5)
    done: list[float] = []

    def worker() -> None:
        start.wait()
        breaker.call(time.sleep, SLEEP)  # noqa: TID251 - real time on purpose
        done.append(time.perf_counter())  # noqa: TID251

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()  # noqa: TID251
    for t in threads:
        t.join(timeout=5)
    total = max(done) - began
    assert len(done) == 4
    assert total < 0.150, f"4 x 50 ms calls took {total * 1000:.1f} ms: calls were serialized"
    assert breaker.metrics.successful_calls == 4


async def test_tasks_run_through_one_breaker_concurrently() -> None:
    """Four tasks each awaiting 50 ms through one breaker finish in well under 4 x 50 ms."""
    breaker = CircuitBreaker("realtime-async", failure_threshold=None)
    began = time.perf_counter()  # noqa: TID251
    naps = (breaker.call_async(asyncio.sleep, SLEEP) for _ in range(4))  # noqa: TID251
    await asyncio.gather(*naps)
    total = time.perf_counter() - began  # noqa: TID251
    assert total < 0.150, f"4 x 50 ms awaits took {total * 1000:.1f} ms: awaits were serialized"
    assert breaker.metrics.successful_calls == 4


def test_recovery_timeout_elapses_on_the_system_clock() -> None:
    """On the default clock the breaker turns HALF_OPEN once recovery_timeout has really passed."""
    breaker = CircuitBreaker("realtime-recovery", failure_threshold=1, recovery_timeout=0.05)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker.state is CircuitState.OPEN
    time.sleep(0.08)  # noqa: TID251 - real time on purpose
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: "up") == "up"
    assert breaker.state is CircuitState.CLOSED
