"""HealthCheckManager.overall_status: the cached roll-up always equals a fresh snapshot's.

Probes ask for the whole system far more often than anything changes (grpc.health.v1
Check of ``""``, ``/readyz``), so the manager keeps the roll-up until a status changes
instead of building a snapshot of every component per request. These tests drive random
registrations, unregistrations and results and compare after every step.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from engined import HealthCheckManager, HealthStatus
from engined.core._health_state import ComponentState
from engined.testing import FakeClock

S = HealthStatus


class Switch:
    """A check whose verdict the test sets: a status, or an exception."""

    def __init__(self) -> None:
        self.verdict: object = S.HEALTHY

    def __call__(self) -> object:
        if self.verdict == "raise":
            raise ConnectionError("down")
        return self.verdict


@pytest.fixture
async def manager(clock: FakeClock) -> AsyncIterator[HealthCheckManager]:
    """A manager on the fake clock, stopped at teardown."""
    made = HealthCheckManager(clock=clock)
    yield made
    await made.stop()


async def test_overall_status_of_no_components_is_healthy(manager: HealthCheckManager) -> None:
    """An empty manager rolls up to HEALTHY, as its snapshot does."""
    assert manager.overall_status() is S.HEALTHY is manager.snapshot().overall_status


async def test_overall_status_follows_each_transition_registration_and_removal(
    manager: HealthCheckManager,
) -> None:
    """A new component is UNKNOWN, a failure turns it UNHEALTHY, removing it clears the roll-up."""
    db = Switch()
    manager.register("db", db, failure_threshold=1)
    assert manager.overall_status() is S.UNKNOWN
    await manager.run_check("db")
    assert manager.overall_status() is S.HEALTHY
    db.verdict = "raise"
    await manager.run_check("db")
    assert manager.overall_status() is S.UNHEALTHY
    manager.register("cache", Switch(), critical=False)
    assert manager.overall_status() is S.UNHEALTHY
    manager.unregister("db")
    assert manager.overall_status() is S.HEALTHY  # a non-critical UNKNOWN is ignored
    assert manager.overall_status() is manager.snapshot().overall_status


async def test_overall_status_equals_the_snapshot_after_every_random_step(
    manager: HealthCheckManager,
) -> None:
    """600 random steps over 12 names: the cached roll-up never differs from a snapshot's."""
    rng = random.Random(20261203)
    checks: dict[str, Switch] = {}
    verdicts: list[object] = [S.HEALTHY, S.DEGRADED, S.UNHEALTHY, "raise", True, False]
    for _ in range(600):
        name = f"c{rng.randrange(12)}"
        action = rng.random()
        if name not in checks:
            checks[name] = Switch()
            manager.register(
                name,
                checks[name],
                critical=rng.random() < 0.6,
                failure_threshold=rng.randint(1, 3),
                success_threshold=rng.randint(1, 2),
            )
        elif action < 0.1:
            manager.unregister(name)
            del checks[name]
        else:
            checks[name].verdict = rng.choice(verdicts)
            await manager.run_check(name)
        assert manager.overall_status() is manager.snapshot().overall_status


async def test_overall_status_builds_no_component_snapshot(
    manager: HealthCheckManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking for the roll-up never builds the per-component views a snapshot needs."""
    for i in range(50):
        manager.register(f"c{i}", Switch())
    await manager.run_all()

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("overall_status built a component snapshot")

    monkeypatch.setattr(ComponentState, "snapshot", refuse)
    assert manager.overall_status() is S.HEALTHY
