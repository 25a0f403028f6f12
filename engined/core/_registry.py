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

    __slots__ = ("_breakers", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get_or_create(self, name: str, **config: Any) -> CircuitBreaker:
        """Return the breaker called ``name``, creating it with ``config`` if absent.

        A call for an existing name returns that breaker when ``config`` has the same
        effect as the one it was made with: defaults may be spelled out or left out,
        ``30`` equals ``30.0``, exception classes compare as a set, and two functions
        from the same ``def`` or ``lambda`` with equal captured values are the same
        predicate (so a factory that builds one decorator twice gets one breaker).

        Raises:
            TypeError, ValueError: ``config`` is invalid; the message names the field.
            ValueError: The breaker exists with a configuration of different effect;
                silently keeping either would surprise one of the callers. The message
                names the settings that differ.
        """
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = self._breakers[name] = CircuitBreaker(name, **config)
                return breaker
        if config:  # validate and compare outside the lock: user predicates may be slow
            wanted = CircuitBreaker(name, **config)._effective_config()
            existing = breaker._effective_config()
            differing = sorted(key for key in existing if not _same(existing[key], wanted[key]))
            if differing:
                msg = (
                    f"circuit breaker {name!r} already exists with a different "
                    f"{', '.join(differing)}; use another name, or the same configuration"
                )
                raise ValueError(msg)
        return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        """Return the breaker called ``name``, or ``None``."""
        return self._breakers.get(name)

    def remove(self, name: str) -> CircuitBreaker | None:
        """Forget the breaker called ``name`` and return it, or ``None`` if absent."""
        with self._lock:
            return self._breakers.pop(name, None)

    def clear(self) -> None:
        """Forget every breaker."""
        with self._lock:
            self._breakers.clear()

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


def _same(a: object, b: object) -> bool:
    """Equality that survives captured values whose ``==`` raises or is not a bool."""
    try:
        return bool(a == b)
    except Exception:
        return a is b


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
