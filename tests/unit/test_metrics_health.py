"""engined_health_* and engined_heal_* families from a real manager driven by run_check/run_all."""

from __future__ import annotations

import pytest
from metrics_support import MESSAGE_BITS, scrape

from engined import (
    CircuitBreakerRegistry,
    ComponentType,
    HealthCheckManager,
    HealthCheckResult,
    HealthStatus,
)
from engined.metrics import metrics_registry
from engined.testing import FakeClock

S = HealthStatus
STATUSES = ("healthy", "degraded", "unhealthy", "unknown")


class Verdict:
    """A check whose result the test sets; it takes ``cost`` seconds of the fake clock."""

    def __init__(self, clock: FakeClock, value: object = True, cost: float = 0.0) -> None:
        self.clock = clock
        self.value = value
        self.cost = cost

    async def __call__(self) -> object:
        self.clock.advance(self.cost)
        if isinstance(self.value, type):
            raise self.value("password=hunter2 at db.internal: boom")
        return self.value


@pytest.fixture
def manager(clock: FakeClock) -> HealthCheckManager:
    return HealthCheckManager(clock=clock)


def _registry(manager: HealthCheckManager) -> object:
    return metrics_registry(manager=manager, breakers=CircuitBreakerRegistry())


async def test_component_status_is_one_hot_with_its_type(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Each component lists the four statuses, 1 for its effective status, with its type label."""
    manager.register("db", Verdict(clock, S.DEGRADED), component_type=ComponentType.DATABASE)
    manager.register("cache", Verdict(clock, False), component_type="cache")
    manager.register("queue", Verdict(clock), component_type="message_queue")
    await manager.run_check("db")
    await manager.run_check("cache")
    result = scrape(_registry(manager))
    expected = {
        ("db", "database"): "degraded",
        ("cache", "cache"): "unhealthy",
        ("queue", "message_queue"): "unknown",  # never checked
    }
    for (name, kind), status in expected.items():
        for each in STATUSES:
            got = result.value(
                "engined_health_status", component=name, component_type=kind, status=each
            )
            assert got == (1.0 if each == status else 0.0), (name, each)


async def test_overall_status_is_one_hot_and_follows_the_roll_up(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """engined_health_overall_status has 1 on the manager's overall status only."""
    verdict = Verdict(clock)
    manager.register("db", verdict)
    assert scrape(_registry(manager)).value("engined_health_overall_status", status="unknown")
    await manager.run_all()
    result = scrape(_registry(manager))
    assert {
        status: result.value("engined_health_overall_status", status=status) for status in STATUSES
    } == {
        "healthy": 1.0,
        "degraded": 0.0,
        "unhealthy": 0.0,
        "unknown": 0.0,
    }
    verdict.value = False
    await manager.run_all()
    result = scrape(_registry(manager))
    assert result.value("engined_health_overall_status", status="unhealthy") == 1.0
    assert result.value("engined_health_overall_status", status="healthy") == 0.0


async def test_no_components_is_healthy_overall(manager: HealthCheckManager) -> None:
    """An empty manager is HEALTHY (DESIGN §5) and lists no component series."""
    result = scrape(_registry(manager))
    assert result.value("engined_health_overall_status", status="healthy") == 1.0
    assert result.values("engined_health_status") == {}


async def test_checks_total_counts_results_by_their_own_status(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Every recorded result counts under its status, all four listed from the start."""
    verdict = Verdict(clock)
    manager.register("db", verdict, failure_threshold=3)
    result = scrape(_registry(manager))
    assert [
        result.value("engined_health_checks_total", component="db", result=r) for r in STATUSES
    ] == [0.0] * 4
    for value in (True, True, S.DEGRADED, False, ValueError, S.UNKNOWN):
        verdict.value = value
        await manager.run_check("db")
    result = scrape(_registry(manager))
    counts = {
        r: result.value("engined_health_checks_total", component="db", result=r) for r in STATUSES
    }
    assert counts == {"healthy": 2.0, "degraded": 1.0, "unhealthy": 2.0, "unknown": 1.0}
    assert sum(counts.values()) == manager.component("db").check_count


async def test_check_duration_is_the_last_check_in_seconds(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """The gauge is absent before the first check, then the last check's duration on the clock."""
    verdict = Verdict(clock, cost=0.25)
    manager.register("db", verdict)
    assert scrape(_registry(manager)).values("engined_health_check_duration_seconds") == {}
    await manager.run_check("db")
    verdict.cost = 0.0015
    await manager.run_check("db")
    result = scrape(_registry(manager))
    assert result.value("engined_health_check_duration_seconds", component="db") == pytest.approx(
        0.0015
    )


async def test_heal_attempts_count_by_outcome_and_exhaustion_shows(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Failed heals count as failure; the last allowed attempt makes engined_heal_exhausted 1."""
    attempts: list[HealthCheckResult] = []

    async def heal(trigger: HealthCheckResult) -> bool:
        attempts.append(trigger)
        return len(attempts) == 1  # the first "succeeds" without fixing anything

    manager.register(
        "db",
        Verdict(clock, False),
        heal=heal,
        heal_max_attempts=2,
        heal_backoff_initial=1.0,
        heal_backoff_max=1.0,
    )
    manager.register("plain", Verdict(clock))
    await manager.run_check("db")
    result = scrape(_registry(manager))
    assert result.value("engined_heal_exhausted", component="db") == 0.0
    clock.advance(1.0)
    await manager.run_check("db")
    result = scrape(_registry(manager))
    outcomes = {
        r: result.value("engined_heal_attempts_total", component="db", result=r)
        for r in ("success", "failure", "timeout", "cancelled")
    }
    assert outcomes == {"success": 1.0, "failure": 1.0, "timeout": 0.0, "cancelled": 0.0}
    assert result.value("engined_heal_exhausted", component="db") == 1.0
    assert len(attempts) == 2


async def test_heal_families_list_only_components_with_a_heal(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A component without a heal has no heal series at all (no 4,000 pointless zeros)."""
    manager.register("plain", Verdict(clock))
    manager.register("healed", Verdict(clock), heal=lambda trigger: None)
    result = scrape(_registry(manager))
    healed_series = {
        dict(labels)["component"] for labels in result.values("engined_heal_attempts_total")
    }
    assert healed_series == {"healed"}
    assert set(result.values("engined_heal_exhausted")) == {(("component", "healed"),)}


async def test_label_values_carry_no_message_or_error_text(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Failing checks and heals with secret-laden messages leave only names and enums in labels."""

    async def heal(trigger: HealthCheckResult) -> None:
        raise RuntimeError("password=hunter2 boom")

    async def wordy() -> HealthCheckResult:
        return HealthCheckResult(
            "wordy", "service", "unhealthy", message="password=hunter2 at 10.0.0.1 boom"
        )

    manager.register("db", Verdict(clock, ValueError), heal=heal)
    manager.register("wordy", wordy)
    await manager.run_all()
    labels = scrape(_registry(manager)).label_values("engined_he")
    assert not {value for value in labels for bit in MESSAGE_BITS if bit in value}
    assert labels <= {
        "db",
        "wordy",
        "custom",
        "service",
        *STATUSES,
        "success",
        "failure",
        "timeout",
        "cancelled",
    }


async def test_scrape_never_runs_a_check(manager: HealthCheckManager, clock: FakeClock) -> None:
    """Reading the metrics reads the snapshot only: no check runs for a scrape."""
    runs = 0

    async def counted() -> bool:
        nonlocal runs
        runs += 1
        return True

    manager.register("db", counted)
    await manager.run_check("db")
    registry = _registry(manager)
    for _ in range(3):
        scrape(registry)
    assert runs == 1


async def test_collector_without_a_manager_lists_no_health_families() -> None:
    """metrics_registry() without a manager shows breakers, retries and build info only."""
    names = {name for name, _, _ in scrape(metrics_registry()).samples()}
    assert not {name for name in names if name.startswith(("engined_health", "engined_heal"))}
    assert "engined_build_info" in names
