"""The circuit breakers under test, each behind the same tiny adapter.

An adapter turns a plain function into the same function guarded by a *fresh* breaker whose
consecutive-failure threshold is ``threshold`` and which, once open, stays open for an hour.
``NEVER`` as the threshold keeps a breaker closed however many failures it records; ``1`` makes
the first failure open it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from typing import Any

Decorate = Callable[[Callable[..., Any], int], Callable[..., Any]]

NEVER = 10**9  # a failure threshold no run reaches: every failure is recorded, none opens
OPEN_FOR = 3600.0  # seconds a tripped breaker stays open, far longer than any run
PEERS = ("pybreaker", "circuitbreaker", "aiobreaker", "purgatory")

_serial = itertools.count()


@dataclass(frozen=True, slots=True)
class Library:
    """One library under test and how to guard a function with it."""

    name: str
    version: str
    open_error: type[BaseException]  # what a call rejected by an open breaker raises
    sync: Decorate | None  # None: no sync API
    aio: Decorate | None  # None: no asyncio API
    rejects: bool = True  # False only for the no-breaker baseline


class _NeverRaised(Exception):
    """The baseline has no breaker, so it never rejects."""


def _unique(prefix: str) -> str:
    return f"bench-{prefix}-{next(_serial)}"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "source checkout"


def bare() -> Library:
    """No breaker at all: a plain call or a plain await, for context."""
    return Library("bare", "-", _NeverRaised, lambda fn, _t: fn, lambda fn, _t: fn, rejects=False)


class FloorOpenError(Exception):
    """What the floor raises once its failures reach the threshold."""


def floor() -> Library:
    """The thinnest code that does a breaker's job: count failures in a row, refuse past a limit.

    No lock, no window, no states, no time: a closure with one counter around a
    ``try: return fn() / except BaseException: raise``. Whatever a real breaker costs above
    this is bookkeeping; the ratio engined/floor says how much.
    """

    def guard(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        failures = 0

        def guarded(*args: Any, **kwargs: Any) -> Any:
            nonlocal failures
            if failures >= threshold:
                raise FloorOpenError
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                failures += 1
                raise
            failures = 0
            return result

        return guarded

    def guard_async(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        failures = 0

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            nonlocal failures
            if failures >= threshold:
                raise FloorOpenError
            try:
                result = await fn(*args, **kwargs)
            except BaseException:
                failures += 1
                raise
            failures = 0
            return result

        return guarded

    return Library("floor", "-", FloorOpenError, guard, guard_async)


def _engined() -> Library:
    from engined import CircuitBreaker, CircuitBreakerOpenError

    def guard(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        breaker = CircuitBreaker(
            _unique("engined"), failure_threshold=threshold, recovery_timeout=OPEN_FOR
        )
        return breaker(fn)

    return Library("engined", _version("engined"), CircuitBreakerOpenError, guard, guard)


def _pybreaker() -> Library:
    import pybreaker

    def guard(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        breaker = pybreaker.CircuitBreaker(
            fail_max=threshold, reset_timeout=OPEN_FOR, name=_unique("pybreaker")
        )
        return breaker(fn)

    # Its only async support is Tornado coroutines (`call_async`), not asyncio.
    return Library("pybreaker", _version("pybreaker"), pybreaker.CircuitBreakerError, guard, None)


def _circuitbreaker() -> Library:
    import circuitbreaker

    def guard(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        breaker = circuitbreaker.CircuitBreaker(
            failure_threshold=threshold, recovery_timeout=OPEN_FOR, name=_unique("cb")
        )
        return breaker(fn)

    error = circuitbreaker.CircuitBreakerError
    return Library("circuitbreaker", _version("circuitbreaker"), error, guard, guard)


def _aiobreaker() -> Library:
    import aiobreaker

    def guard(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        breaker = aiobreaker.CircuitBreaker(
            fail_max=threshold, timeout_duration=timedelta(seconds=OPEN_FOR)
        )
        return breaker(fn)

    return Library(
        "aiobreaker", _version("aiobreaker"), aiobreaker.CircuitBreakerError, guard, guard
    )


def _purgatory() -> Library:
    import purgatory
    from purgatory.domain.model import OpenedState  # purgatory raises its OPEN state itself

    def guard_sync(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        factory = purgatory.SyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=OPEN_FOR
        )
        return factory(_unique("purgatory"))(fn)

    def guard_async(fn: Callable[..., Any], threshold: int) -> Callable[..., Any]:
        factory = purgatory.AsyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=OPEN_FOR
        )
        return factory(_unique("purgatory"))(fn)

    return Library("purgatory", _version("purgatory"), OpenedState, guard_sync, guard_async)


_LOADERS: dict[str, Callable[[], Library]] = {
    "engined": _engined,
    "pybreaker": _pybreaker,
    "circuitbreaker": _circuitbreaker,
    "aiobreaker": _aiobreaker,
    "purgatory": _purgatory,
}


def load() -> tuple[list[Library], dict[str, str]]:
    """Import every library that is installed; return them and, by name, why others were skipped."""
    found: list[Library] = []
    skipped: dict[str, str] = {}
    for name, loader in _LOADERS.items():
        try:
            found.append(loader())
        except ImportError as exc:
            skipped[name] = f"not importable ({exc})"
    return found, skipped
