"""Static checks of the public API's types: mypy --strict reads this file, nothing runs it.

Each ``assert_type`` fails the type check if a decorator or call loses a signature.
"""

from __future__ import annotations

import random
from collections.abc import Coroutine
from typing import Any, assert_type

import engined
from engined.testing import FakeClock

breaker = engined.CircuitBreaker("db", failure_threshold=3, clock=FakeClock())


@breaker
def lookup(key: str, *, default: int = 0) -> int:
    """A sync function keeps its exact signature through the decorator."""
    return default


@breaker
async def fetch(key: str) -> bytes:
    """An async function stays a coroutine function with its signature."""
    return key.encode()


@engined.circuit_breaker("payments")
def charge(amount: float) -> bool:
    """The registry decorator factory types the same way."""
    return amount > 0


assert_type(lookup("k", default=1), int)
_pending_fetch = assert_type(fetch("k"), Coroutine[Any, Any, bytes])
assert_type(charge(1.0), bool)
assert_type(breaker.call(lookup, "k"), int)
assert_type(breaker.state, engined.CircuitState)
assert_type(breaker.metrics.failure_rate, float | None)
assert_type(engined.default_registry().get("db"), engined.CircuitBreaker | None)


def use_permits() -> None:
    """acquire() and permit() hand out typed permits."""
    permit = breaker.acquire()
    assert_type(permit, engined.Permit)
    assert_type(permit.settled, bool)
    permit.record_exception(ValueError())
    with breaker.permit() as held:
        assert_type(held, engined.Permit)
        held.record_failure()


class AsyncClient:
    """An object whose ``__call__`` is async: the decorator keeps it awaitable."""

    async def __call__(self, key: str) -> int:
        return len(key)


guarded_client = breaker(AsyncClient())
_pending_client = assert_type(guarded_client("k"), Coroutine[Any, Any, int])


async def use_async() -> None:
    """``call_async`` returns the awaited value's type."""
    assert_type(await breaker.call_async(fetch, "k"), bytes)
    async with breaker.permit():
        pass


def bad_calls() -> None:
    """Wrong arguments are type errors; the ignores prove mypy sees them."""
    lookup(1)  # type: ignore[arg-type]
    lookup("k", defualt=1)  # type: ignore[call-arg]
    breaker.call(lookup, 1)  # type: ignore[arg-type]


@engined.fallback(lambda exc, key: -1, on=KeyError)
@engined.retry(on=ConnectionError, attempts=3, budget=engined.RetryBudget())
@engined.bulkhead("db", max_concurrent=4)
def stacked(key: str) -> int:
    """Every decorator keeps the function's signature."""
    return len(key)


@engined.retry(on=lambda exc: isinstance(exc, TimeoutError))
@engined.timeout(1.0)
async def limited(key: str) -> bytes:
    """timeout() accepts async functions and keeps their type."""
    return key.encode()


assert_type(stacked("k"), int)
_pending_limited = assert_type(limited("k"), Coroutine[Any, Any, bytes])
assert_type(engined.Backoff(jitter="none").delay(1, random.Random()), float)


def timeout_refuses_sync_functions() -> None:
    """Decorating a sync function with timeout() is a type error, not only a runtime one."""

    @engined.timeout(1.0)  # type: ignore[type-var]
    def blocking() -> int:
        return 1
