"""Sync checks on the real clock: timeouts count from the start, hung threads starve nobody.

With a fixed pool of 8 threads, 40 passing 0.1 s sync checks under ``timeout=0.3``
reported 16-21 timeouts (time spent queued counted), and 8 hung sync checks made every
other sync check time out without running. Checks here block on threading.Events or
sleep briefly on the system clock; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from engined import SYSTEM_CLOCK, HealthCheckManager, HealthStatus

pytestmark = pytest.mark.integration

INTERVAL = 0.05


def _takes(seconds: float) -> Callable[[], bool]:
    def check() -> bool:
        SYSTEM_CLOCK.sleep(seconds)
        return True

    return check


async def test_forty_slow_sync_checks_in_run_all_never_time_out() -> None:
    """40 sync checks of 0.1 s with timeout=0.3 all pass in one run_all, twice."""
    manager = HealthCheckManager()
    for i in range(40):
        manager.register(f"c{i:02}", _takes(0.1), interval=1.0, timeout=0.3)
    try:
        for _ in range(2):
            system = await manager.run_all()
            errors = [c.last_result.error for c in system.components.values() if c.last_result]
            assert errors == [None] * 40
            assert system.overall_status is HealthStatus.HEALTHY
    finally:
        await manager.stop()


async def test_forty_slow_sync_checks_on_the_scheduler_never_time_out() -> None:
    """Scheduled, the same 40 checks keep passing round after round: no timeout recorded."""
    manager = HealthCheckManager()
    for i in range(40):
        manager.register(f"c{i:02}", _takes(0.1), interval=0.3, timeout=0.3)
    errors: set[str | None] = set()
    async with manager:
        for _ in range(300):
            system = manager.snapshot()
            errors |= {c.last_result.error for c in system.components.values() if c.last_result}
            if all(c.check_count >= 3 for c in system.components.values()):
                break
            await SYSTEM_CLOCK.sleep_async(0.01)
    assert all(c.check_count >= 3 for c in manager.snapshot().components.values())
    assert errors == {None}


async def test_scheduled_sync_neighbours_keep_passing_beside_eight_hung_sync_checks() -> None:
    """Eight sync checks hung in their threads; ten sync neighbours pass on time, untimed-out."""
    release = threading.Event()
    manager = HealthCheckManager()
    for i in range(8):
        manager.register(f"hung-{i}", lambda: release.wait(10.0), interval=INTERVAL, timeout=0.03)
    for i in range(10):
        manager.register(f"fine-{i}", lambda: True, interval=INTERVAL)
    fine_errors: set[str | None] = set()
    try:
        async with manager:
            for _ in range(200):
                system = manager.snapshot()
                fine = [system.components[f"fine-{i}"] for i in range(10)]
                fine_errors |= {c.last_result.error for c in fine if c.last_result}
                if all(c.check_count >= 6 for c in fine):
                    break
                await SYSTEM_CLOCK.sleep_async(0.01)
            hung = [manager.component(f"hung-{i}") for i in range(8)]
    finally:
        release.set()
    assert all(c.check_count >= 6 for c in fine), [c.check_count for c in fine]
    assert fine_errors == {None}
    assert {c.status for c in fine} == {HealthStatus.HEALTHY}
    assert {c.last_result.error for c in hung if c.last_result} <= {"timeout", "stuck"}


def test_the_scheduler_runs_again_in_a_second_asyncio_run() -> None:
    """asyncio.run(start, run a while) twice, never stopped in between: checks go on in both."""
    manager = HealthCheckManager()
    manager.register("sync", lambda: True, interval=INTERVAL)

    async def passing() -> bool:
        return True

    manager.register("async", passing, interval=INTERVAL)

    async def run_a_while() -> int:
        before = manager.component("sync").check_count
        await manager.start()
        for _ in range(200):
            if manager.component("sync").check_count >= before + 3:
                break
            await SYSTEM_CLOCK.sleep_async(0.01)
        return manager.component("sync").check_count - before

    first = asyncio.run(run_a_while())
    second = asyncio.run(run_a_while())
    asyncio.run(manager.stop())
    assert first >= 3
    assert second >= 3
    assert manager.component("async").status is HealthStatus.HEALTHY
