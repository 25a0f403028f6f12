"""Timeout: expiry cancels the call and raises CallTimeoutError; everything else passes through.

These tests run on the event loop's real timer (DESIGN.md §2), so every limit is tiny.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest

from engined import CallTimeoutError, CircuitBreaker, timeout
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]

LIMIT = 0.01


async def _yield() -> None:
    """Let other ready tasks run once, without a real sleep."""
    await FakeClock().sleep_async(0)


def test_call_timeout_error_is_a_timeout_error() -> None:
    """CallTimeoutError is a TimeoutError, hence an Exception."""
    assert issubclass(CallTimeoutError, TimeoutError)
    assert issubclass(CallTimeoutError, Exception)


async def test_expiry_raises_call_timeout_error_with_seconds_and_name() -> None:
    """A call still running at the limit raises CallTimeoutError carrying the limit and the name."""

    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError) as info:
        await timeout(LIMIT)(hang)()
    err = info.value
    assert isinstance(err, TimeoutError)
    assert err.seconds == LIMIT
    assert err.name == hang.__qualname__
    assert isinstance(err.__cause__, TimeoutError)
    assert not isinstance(err.__cause__, CallTimeoutError)


async def test_expiry_cancels_the_inner_coroutine() -> None:
    """At the limit the running coroutine sees CancelledError and its finally block runs."""
    seen: list[str] = []

    @timeout(LIMIT)
    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    with pytest.raises(CallTimeoutError):
        await hang()
    assert seen == ["cancelled", "finally"]


async def test_each_call_gets_its_own_limit() -> None:
    """Two calls in a row both time out, and a fast call alongside a hanging one returns."""

    @timeout(LIMIT)
    async def work(hang: bool) -> str:
        if hang:
            await asyncio.Event().wait()
        return "done"

    with pytest.raises(CallTimeoutError):
        await work(True)
    results = await asyncio.gather(work(True), work(False), return_exceptions=True)
    assert isinstance(results[0], CallTimeoutError)
    assert results[1] == "done"


async def test_a_call_finishing_in_time_returns_its_value() -> None:
    """A call that finishes before the limit returns its value, given its arguments."""

    @timeout(1.0)
    async def add(a: int, b: int, *, c: int = 0) -> int:
        await _yield()
        return a + b + c

    assert await add(1, 2, c=3) == 6


@pytest.mark.parametrize(
    "exc",
    [TimeoutError("mine"), ValueError("v"), KeyError("k")],
    ids=["timeout-error", "value-error", "key-error"],
)
async def test_an_exception_the_function_raises_itself_propagates_unchanged(
    exc: Exception,
) -> None:
    """An exception raised by the function before the limit, TimeoutError included, is untouched."""

    @timeout(1.0)
    async def fail() -> None:
        raise exc

    with pytest.raises(type(exc)) as info:
        await fail()
    assert info.value is exc
    assert not isinstance(info.value, CallTimeoutError)


async def test_an_inner_timeout_of_the_function_is_not_reported_as_the_call_timing_out() -> None:
    """A TimeoutError from the function's own asyncio.timeout propagates, not CallTimeoutError."""

    @timeout(1.0)
    async def inner_limit() -> None:
        async with asyncio.timeout(0.001):
            await asyncio.Event().wait()

    with pytest.raises(TimeoutError) as info:
        await inner_limit()
    assert not isinstance(info.value, CallTimeoutError)


async def test_outer_cancellation_gives_cancelled_error_not_call_timeout_error() -> None:
    """A task cancelled from outside before the limit gets CancelledError."""
    started = asyncio.Event()
    seen: list[str] = []

    @timeout(5.0)
    async def hang() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            seen.append("finally")

    task = asyncio.ensure_future(hang())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert seen == ["finally"]


async def test_outer_cancellation_during_the_timeouts_own_cleanup_still_wins() -> None:
    """A task cancelled from outside while the expired call cleans up gets CancelledError."""
    cleaning = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaning.set()
            await asyncio.Event().wait()  # a cleanup that only the outer cancel interrupts

    task = asyncio.ensure_future(timeout(LIMIT)(hang)())
    await asyncio.wait_for(cleaning.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


@pytest.mark.parametrize(
    "fn",
    [lambda: None, len, FakeClock().monotonic],
    ids=["lambda", "builtin", "method"],
)
def test_decorating_a_sync_function_is_a_type_error_saying_async(fn: Callable[..., Any]) -> None:
    """@timeout refuses a sync function at decoration time and points to an async wrapper."""
    with pytest.raises(TypeError, match="async"):
        timeout(1.0)(fn)


def test_decorator_preserves_metadata_and_stays_a_coroutine_function() -> None:
    """The wrapper keeps __name__, __qualname__, __doc__, __wrapped__ and stays async."""

    async def fetch() -> str:
        """Fetch the thing."""
        return "x"

    wrapped = timeout(1.0)(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__qualname__ == fetch.__qualname__
    assert wrapped.__doc__ == "Fetch the thing."
    assert wrapped.__wrapped__ is fetch
    assert inspect.iscoroutinefunction(wrapped)


async def test_a_breaker_counts_a_timed_out_call_as_a_failure(make_breaker: Factory) -> None:
    """@circuit_breaker over @timeout records the CallTimeoutError as one failed call."""
    breaker = make_breaker(failure_threshold=5)

    @breaker
    @timeout(LIMIT)
    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError):
        await hang()
    m = breaker.metrics
    assert (m.total_calls, m.failed_calls, m.successful_calls) == (1, 1, 0)


@pytest.mark.parametrize(
    "seconds",
    [0, 0.0, -1, -0.01, math.nan, math.inf, -math.inf, "1", None, True, [1.0]],
)
def test_refuses_bad_seconds_naming_it(seconds: Any) -> None:
    """A non-number, non-finite or non-positive limit is refused with an error naming seconds."""

    async def fn() -> None:
        return None

    with pytest.raises((TypeError, ValueError), match=r"\bseconds\b"):
        timeout(seconds)(fn)


@pytest.mark.parametrize("seconds", [1, 0.001, 2.5, 3600])
def test_accepts_positive_finite_seconds(seconds: float) -> None:
    """Any positive finite number, int or float, is a valid limit."""

    async def fn() -> None:
        return None

    assert inspect.iscoroutinefunction(timeout(seconds)(fn))
