"""A health check made from a circuit breaker: its state says how the dependency is doing."""

from __future__ import annotations

from collections.abc import Callable

from engined.core._breaker import CircuitBreaker
from engined.core._breaker_types import CircuitState
from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = ["breaker_health_check"]

_STATUS = {
    CircuitState.CLOSED: HealthStatus.HEALTHY,
    CircuitState.DISABLED: HealthStatus.HEALTHY,
    CircuitState.HALF_OPEN: HealthStatus.DEGRADED,
    CircuitState.OPEN: HealthStatus.UNHEALTHY,
    CircuitState.FORCED_OPEN: HealthStatus.UNHEALTHY,
}


def breaker_health_check(breaker: CircuitBreaker) -> Callable[[], HealthCheckResult]:
    """Return a check of ``breaker``: CLOSED/DISABLED healthy, HALF_OPEN degraded, else unhealthy.

    The breaker's metrics go into ``details``; reading them never calls the dependency.
    """
    if not isinstance(breaker, CircuitBreaker):
        msg = f"breaker must be a CircuitBreaker, got {type(breaker).__name__}"
        raise TypeError(msg)

    def check() -> HealthCheckResult:
        metrics = breaker.metrics
        return HealthCheckResult(
            breaker.name,
            ComponentType.CIRCUIT_BREAKER,
            _STATUS[metrics.state],
            message=f"circuit {metrics.state.value}",
            details={
                "state": metrics.state.value,
                "total_calls": metrics.total_calls,
                "failed_calls": metrics.failed_calls,
                "rejected_calls": metrics.rejected_calls,
                "failure_rate": metrics.failure_rate,
                "times_opened": metrics.times_opened,
                "retry_after": metrics.retry_after,
            },
        )

    check.__qualname__ = f"breaker_health_check({breaker.name!r})"
    return check
