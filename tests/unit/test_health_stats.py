"""Cumulative per-component counts on snapshots: checks by result, heal attempts by outcome."""

from __future__ import annotations

import asyncio

import pytest

from engined import (
    ComponentStats,
    HealthCheckManager,
    HealthCheckResult,
    HealthStatus,
)
from engined.core._health_stats import HEAL_OUTCOMES, heal_outcome
from engined.testing import FakeClock

S = HealthStatus


class Script:
    """A check that returns the next scripted value (raising exception classes afresh)."""

    def __init__(self, *values: object) -> None:
        self.values = list(values)

    async def __call__(self) -> object:
        value = self.values.pop(0)
        if isinstance(value, type) and issubclass(value, BaseException):
            raise value("password=hunter2")
        return value


def _manager() -> HealthCheckManager:
    return HealthCheckManager(clock=FakeClock())


async def test_checks_are_counted_by_the_status_of_each_result() -> None:
    """Each recorded result counts under its own status, and the counts add up to check_count."""
    manager = _manager()
    script = Script(S.HEALTHY, S.DEGRADED, S.UNKNOWN, S.UNHEALTHY, True, ValueError, False)
    manager.register("db", script, failure_threshold=5)
    for _ in range(7):
        health = await manager.run_check("db")
    assert health.stats == ComponentStats(
        checks_healthy=2, checks_degraded=1, checks_unhealthy=3, checks_unknown=1
    )
    assert health.stats.checks == health.check_count == 7
    assert health.stats.checks_with(S.UNHEALTHY) == 3


async def test_counts_follow_results_not_the_effective_status() -> None:
    """A failing result below failure_threshold counts as unhealthy; the status stays healthy."""
    manager = _manager()
    manager.register("db", Script(True, False), failure_threshold=3)
    await manager.run_check("db")
    health = await manager.run_check("db")
    assert health.status is S.HEALTHY
    assert (health.stats.checks_healthy, health.stats.checks_unhealthy) == (1, 1)


async def test_heal_attempts_are_counted_by_outcome() -> None:
    """Heals that succeed, raise and return False count as success, failure and failure."""
    clock = FakeClock()
    manager = HealthCheckManager(clock=clock)
    outcomes: list[object] = [RuntimeError, False, None]

    async def heal(trigger: HealthCheckResult) -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, type):
            raise outcome("boom")
        return outcome

    manager.register(
        "db",
        Script(False, False, False, True),
        heal=heal,
        heal_max_attempts=5,
        heal_backoff_initial=1.0,
        heal_backoff_max=1.0,
    )
    for _ in range(3):
        health = await manager.run_check("db")
        clock.advance(1.0)
    assert health.stats.heals_failed == 2
    assert health.stats.heals_succeeded == 1
    assert health.stats.heals == health.heal_attempts == 3
    health = await manager.run_check("db")  # recovers
    assert health.stats.heals == 3  # recovering counts no heal


async def test_a_heal_past_heal_timeout_counts_as_timed_out() -> None:
    """A hanging async heal ended by heal_timeout (real timer) counts under timeout."""
    manager = _manager()

    async def heal(trigger: HealthCheckResult) -> None:
        await asyncio.Event().wait()

    manager.register("db", Script(False), heal=heal, heal_timeout=0.05)
    health = await manager.run_check("db")
    assert health.stats == ComponentStats(checks_unhealthy=1, heals_timed_out=1)
    assert health.stats.heals_with("timeout") == 1


async def test_a_heal_cut_short_by_stop_counts_as_cancelled() -> None:
    """stop() ending a running heal counts one cancelled attempt."""
    manager = _manager()
    started = asyncio.Event()

    async def heal(trigger: HealthCheckResult) -> None:
        started.set()
        await asyncio.Event().wait()

    manager.register("db", Script(False), heal=heal)
    run = asyncio.ensure_future(manager.run_check("db"))
    await asyncio.wait_for(started.wait(), 1.0)
    await manager.stop()
    await asyncio.gather(run, return_exceptions=True)
    stats = manager.component("db").stats
    assert stats.heals_cancelled == 1
    assert stats.heals == 1


async def test_reset_heal_keeps_the_cumulative_counts() -> None:
    """reset_heal() re-arms attempts to zero but never lowers a counter."""
    manager = _manager()
    manager.register("db", Script(False), heal=lambda trigger: None)
    await manager.run_check("db")
    manager.reset_heal("db")
    health = manager.component("db")
    assert health.heal_attempts == 0
    assert health.stats == ComponentStats(checks_unhealthy=1, heals_succeeded=1)


async def test_has_heal_tells_whether_a_heal_is_registered() -> None:
    """has_heal is False for a bare check and True once a heal is registered or attached."""
    manager = _manager()
    manager.register("plain", Script())
    manager.register("healed", Script(), heal=lambda trigger: None)
    manager.register("later", Script())
    manager.healer("later")(lambda trigger: None)
    components = manager.snapshot().components
    assert not components["plain"].has_heal
    assert components["healed"].has_heal
    assert components["later"].has_heal


def test_new_component_starts_with_zero_counts() -> None:
    """A registered component that never ran has all-zero stats, equal to the default."""
    manager = _manager()
    manager.register("db", Script())
    stats = manager.component("db").stats
    assert stats == ComponentStats()
    assert (stats.checks, stats.heals) == (0, 0)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "success"),
        ("timeout", "timeout"),
        ("cancelled", "cancelled"),
        ("RuntimeError", "failure"),
        ("returned False", "failure"),
    ],
)
def test_heal_errors_map_to_a_bounded_set_of_outcomes(error: str | None, outcome: str) -> None:
    """Every recorded heal error lands in one of four outcomes, never its own text."""
    assert heal_outcome(error) == outcome
    assert outcome in HEAL_OUTCOMES
