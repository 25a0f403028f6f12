"""engined: circuit breakers, retries, health checks and auto-heal for Python services."""

# `engined.testing.FakeClock()` works after a plain `import engined`, as the README writes
# it; the module is light (no grpc, no prometheus_client).
from engined import testing as testing
from engined._clock import SYSTEM_CLOCK, Clock, SystemClock
from engined.core.bulkhead import Bulkhead, BulkheadFullError, bulkhead
from engined.core.circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitBreakerRegistry,
    CircuitState,
    Permit,
    StateChange,
    circuit_breaker,
    default_registry,
)
from engined.core.errors import EnginedError, RejectedError
from engined.core.fallback import fallback
from engined.core.health import (
    ComponentHealth,
    ComponentStats,
    ComponentType,
    HealState,
    HealthCheckConfig,
    HealthCheckManager,
    HealthCheckResult,
    HealthEvent,
    HealthStatus,
    SystemHealth,
    breaker_health_check,
)
from engined.core.retry import Backoff, RetryBudget, RetryStats, retry, retry_stats
from engined.core.timeout import CallTimeoutError, timeout

__all__ = [
    "Backoff",
    "Bulkhead",
    "BulkheadFullError",
    "CallTimeoutError",
    "CircuitBreaker",
    "CircuitBreakerMetrics",
    "CircuitBreakerOpenError",
    "CircuitBreakerRegistry",
    "CircuitState",
    "Clock",
    "ComponentHealth",
    "ComponentStats",
    "ComponentType",
    "EnginedError",
    "HealState",
    "HealthCheckConfig",
    "HealthCheckManager",
    "HealthCheckResult",
    "HealthEvent",
    "HealthStatus",
    "Permit",
    "RejectedError",
    "RetryBudget",
    "RetryStats",
    "SYSTEM_CLOCK",
    "StateChange",
    "SystemClock",
    "SystemHealth",
    "__version__",
    "breaker_health_check",
    "bulkhead",
    "circuit_breaker",
    "default_registry",
    "fallback",
    "retry",
    "retry_stats",
    "timeout",
]


def __getattr__(name: str) -> str:
    # The version lives in pyproject.toml only; read it from the installed metadata.
    if name == "__version__":
        from importlib.metadata import version

        return version("engined")
    msg = f"module 'engined' has no attribute {name!r}"
    raise AttributeError(msg)
