"""Sync checks and heals never starve each other behind stuck worker threads (DESIGN.md §5).

The pool used to be 8 fixed threads shared by every sync check and heal, and time queued
counted against a check's timeout: 8 hung checks turned every other sync check into an
UNHEALTHY "timeout" that never ran, and spent heal attempts. Now the pool grows past stuck
threads, up to ``max_check_threads`` for checks and as many again for heals; at the cap a
check is UNKNOWN with error "no worker thread" (neutral) and one WARNING names the cap.
Hung checks block on threading.Events released in ``finally``; nothing sleeps. Timeouts
are the event loop's real timers, kept short where a test must wait one out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from engined import ComponentHealth, HealState, HealthCheckManager, HealthCheckResult, HealthStatus
from engined.testing import FakeClock

S = HealthStatus


class Hung:
    """Sync checks (or heals) that block until released; counts how many are blocked."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.entered = 0
        self.all_in = threading.Event()
        self.expected = 0

    def __call__(self, *_: object) -> bool:
        with self._lock:
            self.entered += 1
            if self.entered >= self.expected:
                self.all_in.set()
        self.release.wait(10.0)
        return True

    def expect(self, count: int) -> None:
        self.expected = count


@pytest.fixture
def hung() -> Iterator[Hung]:
    """A Hung released at teardown, so no worker thread outlives the test for long."""
    made = Hung()
    yield made
    made.release.set()


@pytest.fixture
async def make_manager(clock: FakeClock) -> AsyncIterator[Callable[..., HealthCheckManager]]:
    """Managers on the fake clock, stopped at teardown."""
    made: list[HealthCheckManager] = []

    def make(**options: Any) -> HealthCheckManager:
        options.setdefault("clock", clock)
        manager = HealthCheckManager(**options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.stop()


def _error(component: ComponentHealth) -> str | None:
    assert component.last_result is not None
    return component.last_result.error


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("engined-health")}


async def test_eight_hung_sync_checks_do_not_time_out_a_healthy_sync_check(
    hung: Hung, make_manager: Callable[..., HealthCheckManager]
) -> None:
    """With 8 sync checks hung in their threads, a healthy sync check still runs and passes."""
    manager = make_manager()
    hung.expect(8)
    for i in range(8):
        manager.register(f"hung-{i}", hung, timeout=0.05)
    heals: list[str] = []
    manager.register("fine", lambda: True)
    manager.register("broken", lambda: False, heal=lambda t: heals.append(t.component))
    system = await manager.run_all()
    assert hung.all_in.is_set()
    fine = system.components["fine"]
    assert fine.last_result is not None
    assert (fine.status, fine.last_result.error) == (S.HEALTHY, None)
    broken = system.components["broken"]
    assert (broken.heal_attempts, broken.last_heal_error, heals) == (1, None, ["broken"])
    errors = {_error(system.components[f"hung-{i}"]) for i in range(8)}
    assert errors == {"timeout"}


async def test_the_pool_grows_past_stuck_threads_up_to_the_cap(
    hung: Hung, make_manager: Callable[..., HealthCheckManager], caplog: pytest.LogCaptureFixture
) -> None:
    """70 hung sync checks, cap 64: 64 run, 6 are UNKNOWN 'no worker thread', one WARNING."""
    manager = make_manager()
    before = _workers()
    hung.expect(64)

    async def heal(trigger: HealthCheckResult) -> None:
        return None

    for i in range(70):
        manager.register(f"hung-{i:02}", hung, timeout=0.05, heal=heal)
    with caplog.at_level(logging.WARNING, logger="engined.health"):
        system = await manager.run_all()
    assert hung.all_in.is_set()
    assert hung.entered == 64
    assert len(_workers() - before) == 64
    errors = [c.last_result.error for c in system.components.values() if c.last_result]
    assert (errors.count("timeout"), errors.count("no worker thread")) == (64, 6)
    for component in system.components.values():
        assert component.last_result is not None
        if component.last_result.error == "no worker thread":
            assert component.last_result.status is S.UNKNOWN
            assert (component.status, component.heal_attempts) == (S.UNKNOWN, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    capped = [m for m in warnings if "max_check_threads" in m]
    assert len(capped) == 1, warnings
    assert "64" in capped[0]


async def test_a_check_refused_a_thread_runs_once_a_thread_comes_free(
    hung: Hung, make_manager: Callable[..., HealthCheckManager]
) -> None:
    """At a cap of 2 the third check is refused; once the hung ones return it passes."""
    manager = make_manager(max_check_threads=2)
    hung.expect(2)
    manager.register("hung-a", hung, timeout=0.05)
    manager.register("hung-b", hung, timeout=0.05)
    manager.register("late", lambda: True)
    assert _error(await manager.run_check("hung-a")) == "timeout"
    assert _error(await manager.run_check("hung-b")) == "timeout"
    refused = await manager.run_check("late")
    assert (refused.status, _error(refused)) == (S.UNKNOWN, "no worker thread")
    hung.release.set()
    for _ in range(1000):  # until a thread is back in the pool: bounded, no sleep
        if (await manager.run_check("late")).status is S.HEALTHY:
            break
        await asyncio.to_thread(lambda: None)
    late = manager.component("late")
    assert (late.status, _error(late)) == (S.HEALTHY, None)


async def test_checks_at_their_cap_do_not_starve_a_sync_heal(
    hung: Hung, make_manager: Callable[..., HealthCheckManager]
) -> None:
    """Heals have a thread budget of their own: a hung check at a cap of 1 leaves heals running."""
    manager = make_manager(max_check_threads=1)
    hung.expect(1)
    healed = threading.Event()

    async def failing() -> bool:
        return False

    manager.register("hung", hung, timeout=0.05)
    manager.register("sync-check", lambda: True)
    manager.register("broken", failing, heal=lambda t: healed.set())
    assert _error(await manager.run_check("hung")) == "timeout"
    assert _error(await manager.run_check("sync-check")) == "no worker thread"  # checks' cap
    health = await manager.run_check("broken")
    assert healed.is_set()
    assert (health.heal_attempts, health.last_heal_error) == (1, None)


async def test_hung_sync_heals_do_not_starve_checks(
    hung: Hung, make_manager: Callable[..., HealthCheckManager]
) -> None:
    """Heals stuck in their threads past heal_timeout leave the check budget untouched."""
    manager = make_manager(max_check_threads=2)
    hung.expect(2)

    async def failing() -> bool:
        return False

    for name in ("a", "b"):
        manager.register(name, failing, heal=hung, heal_timeout=0.05)
    system = await manager.run_all()
    assert hung.all_in.is_set()
    assert {c.last_heal_error for c in system.components.values()} == {"timeout"}
    manager.register("sync-check", lambda: True)
    health = await manager.run_check("sync-check")
    assert (health.status, _error(health)) == (S.HEALTHY, None)


async def test_a_sync_heal_refused_a_thread_is_not_an_attempt(
    hung: Hung, make_manager: Callable[..., HealthCheckManager], caplog: pytest.LogCaptureFixture
) -> None:
    """At the heal budget's cap a due heal never starts: no attempt spent, a WARNING told."""
    manager = make_manager(max_check_threads=1)
    hung.expect(1)

    async def failing() -> bool:
        return False

    manager.register("a", failing, heal=hung, heal_timeout=0.05)
    manager.register("b", failing, heal=lambda t: None)
    assert (await manager.run_check("a")).last_heal_error == "timeout"
    with caplog.at_level(logging.WARNING, logger="engined.health"):
        b = await manager.run_check("b")
    assert (b.heal_attempts, b.last_heal_error, b.heal_state) == (0, None, HealState.IDLE)
    assert any("sync heal" in r.getMessage() for r in caplog.records)


async def test_sequential_sync_checks_reuse_one_thread(
    make_manager: Callable[..., HealthCheckManager],
) -> None:
    """A thousand sync checks one after another use one worker thread, not a thousand."""
    manager = make_manager()
    manager.register("db", lambda: True)
    before = _workers()
    for _ in range(1000):
        await manager.run_check("db")
    assert len(_workers() - before) == 1
    assert manager.component("db").check_count == 1000


async def test_stop_lets_idle_threads_go(make_manager: Callable[..., HealthCheckManager]) -> None:
    """After stop() the idle worker threads end; a later check makes a new one."""
    manager = make_manager()
    manager.register("db", lambda: True)
    before = _workers()
    await manager.run_check("db")
    workers = _workers() - before
    assert len(workers) == 1
    await manager.stop()
    for thread in workers:
        await asyncio.to_thread(thread.join, 5.0)
        assert not thread.is_alive()
    assert (await manager.run_check("db")).status is S.HEALTHY


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (True, TypeError), (1.5, TypeError), ("8", TypeError)],
)
def test_max_check_threads_is_validated_naming_it(value: object, error: type[Exception]) -> None:
    """max_check_threads must be an int >= 1; the error names the parameter."""
    with pytest.raises(error, match="max_check_threads"):
        HealthCheckManager(max_check_threads=value)  # type: ignore[arg-type]


def test_heal_trigger_is_passed_to_a_sync_heal_in_its_thread() -> None:
    """A sync heal runs in a worker thread, not the loop's, and gets the triggering result."""
    seen: list[tuple[str, bool]] = []

    def heal(trigger: HealthCheckResult) -> None:
        seen.append((trigger.component, threading.current_thread() is threading.main_thread()))

    manager = HealthCheckManager(clock=FakeClock())
    manager.register("db", lambda: False, heal=heal)
    asyncio.run(manager.run_check("db"))
    assert seen == [("db", False)]
