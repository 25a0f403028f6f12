"""A manager driven from successive event loops, and stopped mid-heal, leaves nothing HEALING.

DESIGN.md §5: nothing the manager holds is tied to the first loop, and ``stop()`` leaves no
component HEALING without a heal running. The heal limiter used to be an
``asyncio.Semaphore`` made on first use: the second ``asyncio.run(m.run_all())`` failed
every heal that had to wait for a slot, and a ``stop()`` during that wait left the
component HEALING for ever. Each test here builds its own loops with ``asyncio.run`` or
``new_event_loop`` (so they are plain functions), on a FakeClock.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engined import (
    SYSTEM_CLOCK,
    HealState,
    HealthCheckConfig,
    HealthCheckManager,
    HealthCheckResult,
    HealthEvent,
    HealthStatus,
)
from engined.testing import FakeClock

H = HealState
NAMES = ["a", "b", "c"]


@pytest.fixture
def loops() -> Iterator[Callable[[], asyncio.AbstractEventLoop]]:
    """Hand out fresh event loops; every one is closed at teardown."""
    made: list[asyncio.AbstractEventLoop] = []

    def make() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        made.append(loop)
        return loop

    yield make
    for loop in made:
        if not loop.is_closed():
            loop.close()


class YieldingHeal:
    """An async heal that yields to the loop a few times, so heals really queue for slots."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = self.peak = 0

    async def __call__(self, trigger: HealthCheckResult) -> None:
        self.calls.append(trigger.component)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            for _ in range(3):
                await SYSTEM_CLOCK.sleep_async(0)
        finally:
            self.running -= 1


def test_run_all_in_successive_asyncio_runs_heals_every_component_each_time() -> None:
    """Two asyncio.run(m.run_all()) with one heal slot: three heals each run, none HEALING."""
    clock = FakeClock()
    manager = HealthCheckManager(clock=clock, max_concurrent_heals=1)
    heal = YieldingHeal()
    for name in NAMES:
        manager.register(name, lambda: False, heal=heal)
    for attempt in (1, 2):
        system = asyncio.run(manager.run_all())
        for name in NAMES:
            component = system.components[name]
            assert (component.heal_attempts, component.last_heal_error) == (attempt, None), name
            assert component.heal_state is H.BACKOFF, name
        clock.advance(10.0)  # past any backoff
    assert sorted(heal.calls) == sorted(NAMES * 2)
    assert heal.peak == 1


def test_sync_checks_and_heals_work_from_successive_loops(
    loops: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """The worker threads serve every loop: five loops in turn each record a sync check."""
    clock = FakeClock()
    manager = HealthCheckManager(clock=clock)
    healed: list[str] = []
    manager.register(
        "db",
        lambda: False,
        heal=lambda trigger: healed.append(trigger.component),
        heal_max_attempts=10,
    )
    for n in range(1, 6):
        loop = loops()
        health = loop.run_until_complete(manager.run_check("db"))
        loop.run_until_complete(manager.stop())
        loop.close()
        assert (health.check_count, health.heal_attempts, health.heal_state) == (n, n, H.BACKOFF)
        clock.advance(100.0)
    assert healed == ["db"] * 5


async def _queue_three_heals(
    manager: HealthCheckManager, gate: asyncio.Event
) -> tuple[asyncio.Task[Any], list[str]]:
    """Start run_all with three failing components; the first heal holds the only slot."""
    started: list[str] = []

    async def heal(trigger: HealthCheckResult) -> None:
        started.append(trigger.component)
        await gate.wait()

    async def failing() -> bool:
        return False

    for name in NAMES:
        manager.register(name, failing, heal=heal, heal_max_attempts=1)
    run = asyncio.create_task(manager.run_all())
    for _ in range(100):  # until the first heal runs and the other two wait for its slot
        states = {c.heal_state for c in manager.snapshot().components.values()}
        if started and states == {H.HEALING}:
            break
        await SYSTEM_CLOCK.sleep_async(0)
    assert len(started) == 1
    return run, started


async def test_stop_while_heals_wait_for_a_slot_leaves_nothing_healing(clock: FakeClock) -> None:
    """stop() with one heal running and two queued: none HEALING, queued ones cost no attempt."""
    manager = HealthCheckManager(clock=clock, max_concurrent_heals=1)
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    run, started = await _queue_three_heals(manager, asyncio.Event())
    before = manager.snapshot().components
    assert {before[n].heal_state for n in NAMES} == {H.HEALING}
    await manager.stop()
    after = manager.snapshot().components
    assert all(after[n].heal_state is not H.HEALING for n in NAMES)
    (running,) = started
    assert (after[running].heal_attempts, after[running].last_heal_error) == (1, "cancelled")
    for name in set(NAMES) - {running}:  # never started: the attempt is given back
        assert (after[name].heal_attempts, after[name].last_heal_error) == (0, None), name
        assert after[name].heal_state is H.IDLE, name  # heal_max_attempts=1: not EXHAUSTED
    kinds = [(e.kind, e.component, e.error) for e in events if e.kind.startswith("heal")]
    assert kinds == [("heal_started", running, None), ("heal_finished", running, "cancelled")]
    await asyncio.wait({run}, timeout=2.0)
    assert run.done()


async def test_heals_given_back_by_stop_run_on_the_next_check(clock: FakeClock) -> None:
    """A heal abandoned in the queue is due at once afterwards, as the same attempt 1."""
    manager = HealthCheckManager(clock=clock, max_concurrent_heals=1)
    gate = asyncio.Event()
    run, started = await _queue_three_heals(manager, gate)
    await manager.stop()
    await asyncio.wait({run}, timeout=2.0)
    gate.set()
    (running,) = started
    waiting = sorted(set(NAMES) - {running})
    for name in waiting:
        health = await manager.run_check(name)
        assert (health.heal_attempts, health.last_heal_error) == (1, None), name
    assert started == [running, *waiting]


def test_heal_task_of_a_loop_closed_under_it_is_not_healing_for_ever(
    loops: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    """A loop closed with a heal pending (never cancelled): the next loop sees it ended."""
    clock = FakeClock()
    manager = HealthCheckManager(clock=clock)
    started = threading.Event()
    calls = 0

    async def heal(trigger: HealthCheckResult) -> None:
        nonlocal calls
        calls += 1
        started.set()
        if calls == 1:
            await asyncio.Event().wait()  # until its loop dies

    manager.register("db", lambda: False, heal=heal)
    first = loops()
    pending = first.create_task(manager.run_check("db"))
    while not started.is_set():
        first.run_until_complete(SYSTEM_CLOCK.sleep_async(0))
    assert manager.component("db").heal_state is H.HEALING
    first.close()  # the run_check and heal tasks stay pending for ever
    second = loops()
    health = second.run_until_complete(manager.run_check("db"))
    assert (health.heal_attempts, health.last_heal_error) == (1, "cancelled")
    assert health.heal_state is H.BACKOFF
    clock.advance(1.0)  # the backoff after attempt 1
    health = second.run_until_complete(manager.run_check("db"))
    second.run_until_complete(manager.stop())
    assert (calls, health.heal_attempts, health.last_heal_error) == (2, 2, None)
    assert health.heal_state is H.BACKOFF
    with caplog.at_level(logging.CRITICAL, logger="asyncio"):  # "Task was destroyed..."
        del pending
        gc.collect()


def test_a_manager_started_in_a_closed_loop_can_start_again(
    loops: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    """start() on a new loop schedules checks when the old loop was closed without stop()."""
    manager = HealthCheckManager(clock=FakeClock())
    calls = 0

    async def check() -> bool:
        nonlocal calls
        calls += 1
        return True

    manager.register("db", check, config=HealthCheckConfig(interval=3600.0))
    first = loops()
    first.run_until_complete(manager.start())
    first.close()
    assert calls == 0

    async def until_checked() -> None:
        for _ in range(100):
            if calls:
                return
            await SYSTEM_CLOCK.sleep_async(0)

    second = loops()
    second.run_until_complete(manager.start())
    second.run_until_complete(until_checked())
    second.run_until_complete(manager.stop())
    assert calls >= 1
    assert manager.component("db").status is HealthStatus.HEALTHY
    with caplog.at_level(logging.CRITICAL, logger="asyncio"):  # the first loop's task
        gc.collect()


async def test_start_on_a_second_running_loop_is_refused(clock: FakeClock) -> None:
    """A scheduler running on another loop that is still open refuses a second start()."""
    manager = HealthCheckManager(clock=clock)
    other = asyncio.new_event_loop()
    ready = threading.Event()
    done = threading.Event()

    def serve() -> None:
        other.run_until_complete(manager.start())
        ready.set()
        other.run_until_complete(asyncio.to_thread(done.wait, 5.0))
        other.run_until_complete(manager.stop())
        other.run_until_complete(other.shutdown_default_executor())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, 5.0)
        with pytest.raises(RuntimeError, match="another event loop"):
            await manager.start()
    finally:
        done.set()
        await asyncio.to_thread(thread.join, 5.0)
        other.close()
