"""Which path a decorator takes: async callables that are not ``async def``, and generators.

Hardening issue items 2 and 3: objects with ``async def __call__``, grpc.aio stub methods
and lambdas returning coroutines went down the sync path of ``@breaker``, ``@retry`` and
``@bulkhead`` (10 ConnectionErrors with threshold 3 left the breaker CLOSED with 10
successes; retry made 1 attempt; a bulkhead of 1 let 5 through), and generator functions
were accepted although errors while iterating were never counted or retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest

import engined
from engined import (
    Backoff,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
)
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]


async def _yield() -> None:
    """Let the other tasks run once (a FakeClock sleep of zero yields to the loop)."""
    await FakeClock().sleep_async(0)


class Flaky:
    """A dependency whose calls are an ``async def __call__``: counts calls, always fails."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        await _yield()
        raise ConnectionError("down")


class Slow:
    """An object with an async ``__call__`` that waits on an event."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.running = 0

    async def __call__(self) -> str:
        self.running += 1
        await self.gate.wait()
        return "ok"


async def _failing() -> int:
    raise ConnectionError("down")


# ------------------------------------------------------------------------- item 2


async def test_breaker_counts_failures_of_an_async_call_object(make_breaker: Factory) -> None:
    """10 calls of a failing async __call__ object with threshold 3: 3 failures, 7 rejections."""
    breaker = make_breaker(failure_threshold=3)
    flaky = Flaky()
    guarded = breaker(flaky)
    outcomes = []
    for _ in range(10):
        try:
            await guarded()
        except (ConnectionError, CircuitBreakerOpenError) as exc:
            outcomes.append(type(exc))
    m = breaker.metrics
    assert m.state is CircuitState.OPEN
    assert (m.failed_calls, m.successful_calls, m.rejected_calls) == (3, 0, 7)
    assert flaky.calls == 3
    assert outcomes == [ConnectionError] * 3 + [CircuitBreakerOpenError] * 7


async def test_call_async_awaits_what_a_plain_lambda_returns(make_breaker: Factory) -> None:
    """call_async(lambda: coro()) awaits the coroutine and counts its failure."""
    breaker = make_breaker(failure_threshold=3)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call_async(lambda: _failing())
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.failed_calls == 3


async def test_call_async_accepts_a_sync_callable(make_breaker: Factory) -> None:
    """call_async(fn) with a plain sync function returns its value."""
    breaker = make_breaker()
    assert await breaker.call_async(lambda: 41 + 1) == 42
    assert breaker.metrics.successful_calls == 1


async def test_partial_of_an_async_function_is_async(make_breaker: Factory) -> None:
    """A functools.partial of a coroutine function is decorated as async."""

    async def add(a: int, b: int) -> int:
        return a + b

    guarded = make_breaker()(functools.partial(add, 1))
    assert await guarded(2) == 3


async def test_bound_async_method_is_async(make_breaker: Factory) -> None:
    """A bound ``async def`` method is decorated as async and counted when it fails."""
    breaker = make_breaker(failure_threshold=1)

    class Client:
        async def get(self) -> int:
            raise ConnectionError

    guarded = breaker(Client().get)
    with pytest.raises(ConnectionError):
        await guarded()
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize("via", ["decorator", "call"])
async def test_sync_path_refuses_a_returned_coroutine_loudly(
    make_breaker: Factory, via: str
) -> None:
    """A lambda around a coroutine function is a TypeError on the sync path, not a success.

    The coroutine is closed, so no "never awaited" warning follows (warnings are errors in
    this suite), and the call is not counted.
    """
    breaker = make_breaker()

    def run() -> object:
        if via == "call":
            return breaker.call(lambda: _failing())
        return breaker(lambda: _failing())()

    with pytest.raises(TypeError, match="awaitable"):
        run()
    gc.collect()
    m = breaker.metrics
    assert (m.total_calls, m.successful_calls) == (0, 0)


def test_sync_path_refusal_gives_a_half_open_probe_back(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """The refused awaitable does not keep the probe slot: the next call is the probe."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=1.0)
    with contextlib.suppress(ValueError):
        breaker.call(_raise_value_error)
    clock.advance(1.0)
    with pytest.raises(TypeError):
        breaker.call(lambda: _failing())
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED


def _raise_value_error() -> None:
    raise ValueError


async def test_a_future_returned_on_the_sync_path_is_refused(make_breaker: Factory) -> None:
    """Any awaitable counts, not only coroutines: a Future is refused and left alone."""
    breaker = make_breaker()
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(TypeError, match="Future"):
        breaker.call(lambda: future)
    assert not future.cancelled()


async def test_retry_retries_an_async_call_object(clock: FakeClock) -> None:
    """@retry on an async __call__ object makes every attempt, sleeping on the clock."""
    flaky = Flaky()
    guarded = engined.retry(
        on=ConnectionError, attempts=3, backoff=Backoff(initial=0.5, jitter="none"), clock=clock
    )(flaky)
    with pytest.raises(ConnectionError):
        await guarded()
    assert flaky.calls == 3
    assert clock.sleeps == [0.5, 1.0]


def test_retry_refuses_a_returned_coroutine_on_the_sync_path() -> None:
    """@retry on a lambda around a coroutine function fails loudly and tries only once."""
    calls = 0

    def make() -> Coroutine[Any, Any, int]:
        nonlocal calls
        calls += 1
        return _failing()

    guarded = engined.retry(on=ConnectionError, attempts=3)(make)
    with pytest.raises(TypeError, match="awaitable"):
        guarded()
    assert calls == 1


async def test_bulkhead_of_one_admits_one_async_call_object() -> None:
    """A bulkhead of 1 around an async __call__ object lets 1 of 5 concurrent calls in."""
    slow = Slow()
    guarded = Bulkhead("one", max_concurrent=1)(slow)
    tasks = [asyncio.create_task(guarded()) for _ in range(5)]
    await _yield()
    await _yield()
    assert slow.running == 1
    slow.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == 1
    assert sum(isinstance(r, BulkheadFullError) for r in results) == 4


async def test_bulkhead_sync_path_refusal_frees_the_slot() -> None:
    """A refused awaitable on the bulkhead's sync path gives its slot back."""
    bh = Bulkhead("one", max_concurrent=1)
    with pytest.raises(TypeError):
        bh.call(lambda: _failing())
    assert bh.active == 0


async def test_timeout_accepts_an_async_call_object() -> None:
    """@timeout takes an object with an async __call__ and limits it."""
    slow = Slow()
    guarded = engined.timeout(0.01)(slow)
    with pytest.raises(engined.CallTimeoutError):
        await guarded()


async def test_fallback_answers_for_an_async_call_object() -> None:
    """@fallback on an async __call__ object awaits it and answers its failure."""
    guarded = engined.fallback(lambda exc: "cached", on=ConnectionError)(Flaky())
    assert await guarded() == "cached"


def test_fallback_refuses_a_returned_coroutine_on_the_sync_path() -> None:
    """@fallback cannot catch what an unawaited coroutine raises later: a TypeError instead."""
    guarded = engined.fallback(lambda exc: "cached", on=ConnectionError)(lambda: _failing())
    with pytest.raises(TypeError, match="awaitable"):
        guarded()


# ------------------------------------------------------------------------- item 3


def _gen() -> Iterator[int]:
    yield 1


async def _agen() -> AsyncIterator[int]:
    yield 1


class GenCall:
    def __call__(self) -> Iterator[int]:
        yield 1


DECORATORS: list[tuple[str, Callable[[], Callable[[Any], Any]]]] = [
    ("breaker", lambda: CircuitBreaker("gen")),
    ("retry", lambda: engined.retry(on=ConnectionError)),
    ("bulkhead", lambda: Bulkhead("gen")),
    ("fallback", lambda: engined.fallback(lambda exc: None, on=ConnectionError)),
]


@pytest.mark.parametrize("fn", [_gen, _agen, GenCall(), functools.partial(_gen)])
@pytest.mark.parametrize(("name", "make"), DECORATORS)
def test_generator_functions_are_refused_at_decoration(
    name: str, make: Callable[[], Callable[[Any], Any]], fn: Any
) -> None:
    """Generator and async-generator functions are a TypeError saying what to do instead."""
    with pytest.raises(TypeError, match=r"generator.*consumes it.*permit\(\)"):
        make()(fn)


def test_a_function_returning_a_generator_object_is_still_a_plain_function(
    make_breaker: Factory,
) -> None:
    """A plain function that returns an iterator is guarded as a sync call, unlike generators."""
    breaker = make_breaker()
    guarded = breaker(lambda: iter([1, 2]))
    assert list(guarded()) == [1, 2]
    assert breaker.metrics.successful_calls == 1
