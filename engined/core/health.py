"""Health checks and auto-heal (DESIGN.md §5): the public home of the health names.

Values (statuses, results, settings, snapshots, the roll-up) live in ``_health_model``,
one component's thresholds and heal bookkeeping in ``_health_state``, and the manager in
``_health_manager``, whose docstring maps the parts it is built from (scheduler, check
runs, worker threads, heals, publication, dependency graph, results).
"""

from engined.core._breaker_check import breaker_health_check
from engined.core._health_manager import HealthCheckManager
from engined.core._health_model import (
    ComponentHealth,
    ComponentType,
    HealState,
    HealthCheckConfig,
    HealthCheckResult,
    HealthEvent,
    HealthStatus,
    SystemHealth,
    aggregate,
)
from engined.core._health_stats import ComponentStats

__all__ = [
    "ComponentHealth",
    "ComponentStats",
    "ComponentType",
    "HealState",
    "HealthCheckConfig",
    "HealthCheckManager",
    "HealthCheckResult",
    "HealthEvent",
    "HealthStatus",
    "SystemHealth",
    "aggregate",
    "breaker_health_check",
]
