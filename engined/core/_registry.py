"""Named circuit breakers shared by a process: what the daemon and the metrics read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from engined.core._breaker import CircuitBreaker

__all__ = ["CircuitBreakerRegistry", "circuit_breaker", "default_registry"]


class CircuitBreakerRegistry:
    """A thread-safe map of breaker names to breakers.

    ``get_or_create`` is how code that runs in many places (decorators at import time,
    gRPC interceptors per target) ends up sharing one breaker per name.
    """

    __slots__ = ("_breakers", "_configs", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    def get_or_create(self, name: str, **config: Any) -> CircuitBreaker:
        """Return the breaker called ``name``, creating it with ``config`` if absent.

        Raises:
            ValueError: ``config`` is given and differs from the one the breaker was
                created with; silently keeping either would surprise one of the callers.
        """
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(name, **config)
                self._breakers[name] = breaker
                self._configs[name] = config
            elif config and config != self._configs[name]:
                msg = (
                    f"circuit breaker {name!r} already exists with config "
                    f"{self._configs[name]!r}, not {config!r}"
                )
                raise ValueError(msg)
            return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """Return the breaker called ``name``, or ``None``."""
        return self._breakers.get(name)

    def remove(self, name: str) -> CircuitBreaker | None:
        """Forget the breaker called ``name`` and return it, or ``None`` if absent."""
        with self._lock:
            self._configs.pop(name, None)
            return self._breakers.pop(name, None)

    def clear(self) -> None:
        """Forget every breaker."""
        with self._lock:
            self._breakers.clear()
            self._configs.clear()

    def __len__(self) -> int:
        return len(self._breakers)

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            breakers = list(self._breakers.values())
        return iter(breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __repr__(self) -> str:
        return f"CircuitBreakerRegistry({sorted(self._breakers)!r})"


_DEFAULT = CircuitBreakerRegistry()


def default_registry() -> CircuitBreakerRegistry:
    """Return the process-wide registry that the daemon and the metrics read."""
    return _DEFAULT


def circuit_breaker(
    name: str, *, registry: CircuitBreakerRegistry | None = None, **config: Any
) -> CircuitBreaker:
    """Get or create the breaker ``name`` in ``registry`` (default: :func:`default_registry`).

    The breaker is itself a decorator, so this reads as ``@circuit_breaker("db")``; every
    function decorated with the same name shares one breaker.
    """
    return (registry if registry is not None else _DEFAULT).get_or_create(name, **config)
