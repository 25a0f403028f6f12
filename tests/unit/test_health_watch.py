"""watch() publication: coalesced, cheap with many watchers, and usable from any loop (§5).

Each recorded result used to rebuild and compare a full snapshot as soon as one reader
watched, so a round of N checks cost O(N²): 1,000 components took seconds per round with
an idle watcher. Now a change is published once per loop iteration at most, for every
watcher, and nothing at all is built while nothing a watcher sees changes. The snapshot
builds are counted through a subclass's ``snapshot()``; every count here is exact or a
small bound far from the N per round of the old code.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from engined import (
    SYSTEM_CLOCK,
    HealState,
    HealthCheckManager,
    HealthCheckResult,
    HealthStatus,
    SystemHealth,
)
from engined.testing import FakeClock

S = HealthStatus
COMPONENTS = 1000


class CountingManager(HealthCheckManager):
    """A manager that counts the snapshots it builds (publication builds them through here)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.snapshots = 0

    def snapshot(self) -> SystemHealth:
        self.snapshots += 1
        return super().snapshot()


class Reader:
    """Collects every value ``manager.watch()`` yields, in a task of its own."""

    def __init__(self, manager: HealthCheckManager) -> None:
        self.seen: list[SystemHealth] = []
        self.task = asyncio.create_task(self._read(manager))

    async def _read(self, manager: HealthCheckManager) -> None:
        async with contextlib.aclosing(manager.watch()) as values:  # type: ignore[type-var]
            async for health in values:
                self.seen.append(health)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _settle(rounds: int = 20) -> None:
    """Let every ready task and callback run; no time passes."""
    for _ in range(rounds):
        await SYSTEM_CLOCK.sleep_async(0)


class Flip:
    """An async check whose verdict the test sets for all components at once."""

    def __init__(self) -> None:
        self.value: object = S.HEALTHY

    async def __call__(self) -> object:
        return self.value


@pytest.fixture
async def readers() -> AsyncIterator[Callable[[HealthCheckManager, int], list[Reader]]]:
    """Start readers on a manager; every one is closed at teardown."""
    made: list[Reader] = []

    def start(manager: HealthCheckManager, count: int) -> list[Reader]:
        new = [Reader(manager) for _ in range(count)]
        made.extend(new)
        return new

    yield start
    for reader in made:
        await reader.close()


async def test_a_round_of_a_thousand_changes_builds_a_few_snapshots_for_ten_watchers(
    clock: FakeClock, readers: Callable[[HealthCheckManager, int], list[Reader]]
) -> None:
    """1,000 components all changing in one run_all: each of 10 watchers gets one new value."""
    manager = CountingManager(clock=clock)
    flip = Flip()
    for i in range(COMPONENTS):
        manager.register(f"c{i:04}", flip)
    await manager.run_all()
    watching = readers(manager, 10)
    await _settle()
    assert [len(r.seen) for r in watching] == [1] * 10
    for value in (S.DEGRADED, S.HEALTHY, S.DEGRADED):
        flip.value = value
        manager.snapshots = 0
        system = await manager.run_all()
        await _settle()
        assert manager.snapshots <= 4, "one per loop iteration with changes, plus run_all's own"
        latest = [r.seen[-1] for r in watching]
        assert all(v.components["c0999"].status is value for v in latest)
        assert system.overall_status is value
    assert [len(r.seen) for r in watching] == [4] * 10


async def test_a_round_that_changes_nothing_builds_no_snapshot_for_watchers(
    clock: FakeClock, readers: Callable[[HealthCheckManager, int], list[Reader]]
) -> None:
    """Steady state: 1,000 passing checks with 10 watchers publish nothing and build nothing."""
    manager = CountingManager(clock=clock)
    for i in range(COMPONENTS):
        manager.register(f"c{i:04}", Flip())
    await manager.run_all()
    watching = readers(manager, 10)
    await _settle()
    manager.snapshots = 0
    for _ in range(3):
        await manager.run_all()
    await _settle()
    assert manager.snapshots == 3  # run_all's own return values, nothing for the watchers
    assert [len(r.seen) for r in watching] == [1] * 10


async def test_registration_and_unregistration_are_published(
    clock: FakeClock, readers: Callable[[HealthCheckManager, int], list[Reader]]
) -> None:
    """Adding and removing a component each yields a value with the new set of components."""
    manager = HealthCheckManager(clock=clock)
    manager.register("a", Flip())
    (reader,) = readers(manager, 1)
    await _settle()
    manager.register("b", Flip())
    await _settle()
    manager.unregister("a")
    await _settle()
    assert [sorted(v.components) for v in reader.seen] == [["a"], ["a", "b"], ["b"]]


async def test_a_parent_turning_unhealthy_publishes_its_childs_suppression(
    clock: FakeClock, readers: Callable[[HealthCheckManager, int], list[Reader]]
) -> None:
    """The child's heal state SUPPRESSED is in the value published for its parent's change."""
    manager = HealthCheckManager(clock=clock)
    parent = Flip()

    async def heal(trigger: HealthCheckResult) -> None:
        return None

    async def failing() -> bool:
        return False

    manager.register("parent", parent)
    manager.register("child", failing, heal=heal, depends_on=("parent",))
    await manager.run_all()
    (reader,) = readers(manager, 1)
    await _settle()
    assert reader.seen[-1].components["child"].heal_state is HealState.BACKOFF
    parent.value = S.UNHEALTHY
    await manager.run_check("parent")
    await _settle()
    latest = reader.seen[-1].components
    assert latest["parent"].status is S.UNHEALTHY
    assert latest["child"].heal_state is HealState.SUPPRESSED


async def test_a_watcher_on_another_loop_in_another_thread_gets_the_changes(
    clock: FakeClock,
) -> None:
    """A reader running its own event loop in a thread sees changes made on the main loop."""
    manager = HealthCheckManager(clock=clock)
    flip = Flip()
    manager.register("db", flip)
    await manager.run_check("db")
    seen: list[HealthStatus] = []
    subscribed = threading.Event()
    got_change = threading.Event()

    async def read() -> None:
        async with contextlib.aclosing(manager.watch()) as values:  # type: ignore[type-var]
            async for health in values:
                seen.append(health.components["db"].status)
                subscribed.set()
                if health.components["db"].status is S.UNHEALTHY:
                    got_change.set()
                    return

    thread = threading.Thread(target=asyncio.run, args=(read(),))
    thread.start()
    try:
        assert await asyncio.to_thread(subscribed.wait, 5.0)
        flip.value = S.UNHEALTHY
        await manager.run_check("db")
        assert await asyncio.to_thread(got_change.wait, 5.0)
    finally:
        await asyncio.to_thread(thread.join, 5.0)
    assert seen == [S.HEALTHY, S.UNHEALTHY]


async def test_a_watcher_whose_loop_closed_is_dropped_quietly(clock: FakeClock) -> None:
    """A reader abandoned with its loop does not break publication to the others."""
    manager = HealthCheckManager(clock=clock)
    flip = Flip()
    manager.register("db", flip)

    async def read_one() -> None:
        values = manager.watch()
        await anext(values)  # subscribed; never closed, then its loop goes away

    def abandon() -> None:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(read_one())
        loop.close()

    await asyncio.to_thread(abandon)
    values = manager.watch()
    try:
        assert (await anext(values)).components["db"].status is S.UNKNOWN
        flip.value = S.UNHEALTHY
        await manager.run_check("db")
        latest = await asyncio.wait_for(anext(values), 5.0)
    finally:
        await values.aclose()  # type: ignore[attr-defined]
    assert latest.components["db"].status is S.UNHEALTHY


async def test_watch_from_a_second_asyncio_run_gets_changes(clock: FakeClock) -> None:
    """Successive loops each with their own reader: both see the change made on their loop."""
    manager = HealthCheckManager(clock=clock)
    flip = Flip()
    manager.register("db", flip)

    async def change_and_read(value: HealthStatus) -> HealthStatus:
        values = manager.watch()
        try:
            await anext(values)
            flip.value = value
            await manager.run_check("db")
            return (await asyncio.wait_for(anext(values), 5.0)).components["db"].status
        finally:
            await values.aclose()  # type: ignore[attr-defined]

    first = await asyncio.to_thread(asyncio.run, change_and_read(S.UNHEALTHY))
    second = await asyncio.to_thread(asyncio.run, change_and_read(S.DEGRADED))
    assert (first, second) == (S.UNHEALTHY, S.DEGRADED)
