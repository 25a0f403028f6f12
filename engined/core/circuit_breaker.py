"""Circuit breaker: stop calling a dependency that keeps failing (DESIGN.md §3).

The public home of :class:`CircuitBreaker` and its companions; the implementation lives
in private modules of :mod:`engined.core` to keep each one about one thing.
"""

from engined.core._breaker import CircuitBreaker
from engined.core._breaker_types import (
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitState,
    StateChange,
)
from engined.core._permit import Permit
from engined.core._registry import CircuitBreakerRegistry, circuit_breaker, default_registry

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerMetrics",
    "CircuitBreakerOpenError",
    "CircuitBreakerRegistry",
    "CircuitState",
    "Permit",
    "StateChange",
    "circuit_breaker",
    "default_registry",
]
