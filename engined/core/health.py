"""Health checks and auto-heal (DESIGN.md §5): the public home of the health names.

The values (statuses, results, settings, snapshots and the roll-up) are complete; the
``HealthCheckManager`` that runs checks and heals is the next step of issue 4.
"""

from engined.core._health_model import (
    ComponentHealth,
    ComponentType,
    HealState,
    HealthCheckConfig,
    HealthCheckResult,
    HealthStatus,
    SystemHealth,
    aggregate,
)

__all__ = [
    "ComponentHealth",
    "ComponentType",
    "HealState",
    "HealthCheckConfig",
    "HealthCheckResult",
    "HealthStatus",
    "SystemHealth",
    "aggregate",
]
