"""The ``engined_health_*`` and ``engined_heal_*`` families, from one manager snapshot.

One ``manager.snapshot()`` per scrape: the manager hands out each component's cached
view, so a scrape of 1,000 components rebuilds nothing that did not change, and every
family of one scrape agrees with the others. No check runs for a scrape.

- ``engined_health_overall_status{status}`` and
  ``engined_health_status{component,component_type,status}``: one-hot over the four
  statuses (healthy, degraded, unhealthy, unknown), every status always listed.
- ``engined_health_checks_total{component,result}``: recorded check results by their own
  status (``ComponentStats``), all four listed from the start.
- ``engined_health_check_duration_seconds{component}``: how long the last check took;
  absent before the first check.
- ``engined_heal_attempts_total{component,result}``: finished heal attempts by outcome
  (success, failure, timeout, cancelled), and ``engined_heal_exhausted{component}`` (1 while
  heals are used up): only for components with a heal registered.
"""

from __future__ import annotations

from engined.core._health_model import ComponentType, HealState, HealthStatus, SystemHealth
from engined.core._health_stats import HEAL_OUTCOMES
from engined.metrics._family import Family

__all__ = ["health_families"]

_STATUS_TEXT = {status: status.value for status in HealthStatus}  # dict reads beat .value
_TYPE_TEXT = {kind: kind.value for kind in ComponentType}
_STATUSES = tuple(_STATUS_TEXT.values())
_ONE_HOT = {
    status: tuple(int(other is status) for other in HealthStatus) for status in HealthStatus
}
_EXHAUSTED = HealState.EXHAUSTED


def health_families(health: SystemHealth | None) -> list[Family]:
    """The six health families for ``health`` (none at all without a manager)."""
    if health is None:
        return []
    overall = Family(
        "engined_health_overall_status",
        "Overall health: 1 for the current status, 0 for the others.",
        "gauge",
        ("status",),
    )
    status = Family(
        "engined_health_status",
        "Component health: 1 for the current status, 0 for the others.",
        "gauge",
        ("component", "component_type", "status"),
    )
    checks = Family(
        "engined_health_checks",
        "Health check results recorded, by the status each result reported.",
        "counter",
        ("component", "result"),
    )
    duration = Family(
        "engined_health_check_duration_seconds",
        "Duration of the component's last health check.",
        "gauge",
        ("component",),
    )
    heals = Family(
        "engined_heal_attempts",
        "Finished heal attempts by outcome.",
        "counter",
        ("component", "result"),
    )
    exhausted = Family(
        "engined_heal_exhausted",
        "1 while the component's heal attempts are used up (EXHAUSTED), else 0.",
        "gauge",
        ("component",),
    )
    overall.add_rows(((), _STATUSES, _ONE_HOT[health.overall_status]))
    add_status, add_checks, add_heals = status.add_rows, checks.add_rows, heals.add_rows
    timed: list[str] = []
    seconds: list[float] = []
    healable: list[str] = []
    used_up: list[int] = []
    for name, component in health.components.items():
        lead = (name,)
        typed = (name, _TYPE_TEXT[component.component_type])
        add_status((typed, _STATUSES, _ONE_HOT[component.status]))
        stats = component.stats
        add_checks(
            (
                lead,
                _STATUSES,
                (
                    stats.checks_healthy,
                    stats.checks_degraded,
                    stats.checks_unhealthy,
                    stats.checks_unknown,
                ),
            )
        )
        last = component.last_result
        if last is not None and last.duration is not None:
            timed.append(name)
            seconds.append(last.duration)
        if component.has_heal:
            add_heals(
                (
                    lead,
                    HEAL_OUTCOMES,
                    (
                        stats.heals_succeeded,
                        stats.heals_failed,
                        stats.heals_timed_out,
                        stats.heals_cancelled,
                    ),
                )
            )
            healable.append(name)
            used_up.append(int(component.heal_state is _EXHAUSTED))
    duration.add_rows(((), tuple(timed), tuple(seconds)))
    exhausted.add_rows(((), tuple(healable), tuple(used_up)))
    return [overall, status, checks, duration, heals, exhausted]
