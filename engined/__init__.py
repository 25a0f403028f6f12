"""engined: circuit breakers, retries, health checks and auto-heal for Python services."""

from engined._clock import SYSTEM_CLOCK, Clock, SystemClock
from engined.core.circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitBreakerRegistry,
    CircuitState,
    StateChange,
    circuit_breaker,
    default_registry,
)

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerMetrics",
    "CircuitBreakerOpenError",
    "CircuitBreakerRegistry",
    "CircuitState",
    "Clock",
    "SYSTEM_CLOCK",
    "StateChange",
    "SystemClock",
    "__version__",
    "circuit_breaker",
    "default_registry",
]


def __getattr__(name: str) -> str:
    # The version lives in pyproject.toml only; read it from the installed metadata.
    if name == "__version__":
        from importlib.metadata import version

        return version("engined")
    msg = f"module 'engined' has no attribute {name!r}"
    raise AttributeError(msg)
