"""Fallback: which failures the handler answers, what it receives, sync/async pairing, stacking."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from engined import (
    Backoff,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerOpenError,
    fallback,
    retry,
    timeout,
)
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]

MODES = ["sync", "async"]


class Boom(Exception):
    """The handled failure."""


class Recorder:
    """A sync handler that records every call and answers ``answer``."""

    def __init__(self, answer: Any = "fallback") -> None:
        self.answer = answer
        self.calls: list[tuple[BaseException, tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, exc: BaseException, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((exc, args, kwargs))
        return self.answer


def _raising(mode: str, exc: BaseException | None, value: Any = "value") -> Callable[..., Any]:
    """Return a sync or async function that raises ``exc`` (or returns ``value``)."""

    def body(*args: Any, **kwargs: Any) -> Any:
        if exc is not None:
            raise exc
        return value

    if mode == "sync":
        return body

    async def abody(*args: Any, **kwargs: Any) -> Any:
        return body(*args, **kwargs)

    return abody


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a sync or an async function and return its result."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


# --- What the handler answers ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_handler_receives_the_exception_and_the_call_arguments_exactly(mode: str) -> None:
    """The handler is called once with (exc, *args, **kwargs) and its return value is the result."""
    exc = Boom("down")
    handler = Recorder()
    fn = fallback(handler, on=Boom)(_raising(mode, exc))
    assert await _call(fn, 1, "two", three=3, four=None) == "fallback"
    assert len(handler.calls) == 1
    got_exc, args, kwargs = handler.calls[0]
    assert got_exc is exc
    assert args == (1, "two")
    assert kwargs == {"three": 3, "four": None}


@pytest.mark.parametrize("mode", MODES)
async def test_success_returns_the_value_without_calling_the_handler(mode: str) -> None:
    """A call that returns is not touched: its value comes back and the handler is not called."""
    handler = Recorder()
    fn = fallback(handler, on=Exception)(_raising(mode, None, value=42))
    assert await _call(fn) == 42
    assert handler.calls == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("on", "exc", "handled"),
    [
        pytest.param(Boom, Boom(), True, id="class"),
        pytest.param(Boom, KeyError("k"), False, id="class-other"),
        pytest.param((KeyError, Boom), Boom(), True, id="tuple"),
        pytest.param((KeyError, ValueError), Boom(), False, id="tuple-other"),
        pytest.param(LookupError, KeyError("k"), True, id="subclass"),
        pytest.param(lambda e: "soft" in str(e), Boom("soft"), True, id="predicate-true"),
        pytest.param(lambda e: "soft" in str(e), Boom("hard"), False, id="predicate-false"),
    ],
)
async def test_only_exceptions_on_matches_are_handled(
    mode: str, on: Any, exc: Exception, handled: bool
) -> None:
    """A matching exception is answered by the handler; any other propagates as the same object."""
    handler = Recorder()
    fn = fallback(handler, on=on)(_raising(mode, exc))
    if handled:
        assert await _call(fn) == "fallback"
        assert [c[0] for c in handler.calls] == [exc]
    else:
        with pytest.raises(type(exc)) as info:
            await _call(fn)
        assert info.value is exc
        assert handler.calls == []


@pytest.mark.parametrize("mode", MODES)
async def test_predicate_on_sees_the_exception(mode: str) -> None:
    """A predicate `on` is given the raised exception itself."""
    seen: list[BaseException] = []

    def soft(exc: BaseException) -> bool:
        seen.append(exc)
        return True

    exc = Boom()
    fn = fallback(Recorder(), on=soft)(_raising(mode, exc))
    assert await _call(fn) == "fallback"
    assert seen == [exc]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "on", [BaseException, (BaseException,), lambda exc: True], ids=["base", "tuple", "predicate"]
)
@pytest.mark.parametrize(
    "exc_type", [asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit]
)
async def test_cancellation_and_exits_are_never_handled(
    mode: str, on: Any, exc_type: type[BaseException]
) -> None:
    """Cancellation and interpreter exits propagate untouched, even with on=BaseException."""
    exc = exc_type()
    handler = Recorder()
    fn = fallback(handler, on=on)(_raising(mode, exc))
    with pytest.raises(exc_type) as info:
        await _call(fn)
    assert info.value is exc
    assert handler.calls == []


async def test_a_cancelled_task_is_not_answered_by_the_handler() -> None:
    """A task cancelled inside a call with on=BaseException gets CancelledError, not the handler."""
    started = asyncio.Event()
    handler = Recorder()

    @fallback(handler, on=BaseException)
    async def hang() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.ensure_future(hang())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert handler.calls == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_raising_handler_propagates_chained_to_the_original(mode: str) -> None:
    """An exception from the handler propagates, with the original as its __context__."""
    original = Boom("first")
    replacement = ValueError("handler failed")

    def handler(exc: BaseException, *args: Any, **kwargs: Any) -> Any:
        raise replacement

    fn = fallback(handler, on=Boom)(_raising(mode, original))
    with pytest.raises(ValueError, match="handler failed") as info:
        await _call(fn)
    assert info.value is replacement
    assert info.value.__context__ is original


# --- Sync and async pairing -----------------------------------------------------------------------


async def test_async_function_with_async_handler_awaits_the_handler() -> None:
    """An async handler on an async function is awaited; the caller gets its value."""
    seen: list[tuple[Any, ...]] = []

    async def handler(exc: BaseException, *args: Any, **kwargs: Any) -> str:
        await FakeClock().sleep_async(0)
        seen.append((exc, args, kwargs))
        return "from async handler"

    exc = Boom()
    fn = fallback(handler, on=Boom)(_raising("async", exc))
    assert inspect.iscoroutinefunction(fn)
    result = await fn(1, k=2)
    assert result == "from async handler"
    assert seen == [(exc, (1,), {"k": 2})]


async def test_async_function_with_sync_handler_uses_its_value_as_is() -> None:
    """A sync handler on an async function is called, and its return value is the result."""
    marker = object()
    handler = Recorder(answer=marker)
    fn = fallback(handler, on=Boom)(_raising("async", Boom()))
    assert inspect.iscoroutinefunction(fn)
    assert await fn() is marker
    assert len(handler.calls) == 1


def test_sync_function_with_async_handler_is_refused_at_decoration() -> None:
    """An async handler cannot answer a sync call: TypeError when decorating."""

    async def handler(exc: BaseException) -> str:
        return "never"

    def fn() -> str:
        return "value"

    with pytest.raises(TypeError, match="async"):
        fallback(handler, on=Boom)(fn)


@pytest.mark.parametrize("mode", MODES)
def test_decorator_preserves_metadata_and_kind(mode: str) -> None:
    """The wrapper keeps __name__, __qualname__, __doc__, __wrapped__ and the sync/async kind."""
    fn = _raising(mode, None)
    fn.__doc__ = "Fetch the thing."
    wrapped = fallback(Recorder(), on=Boom)(fn)
    assert wrapped.__name__ == fn.__name__
    assert wrapped.__qualname__ == fn.__qualname__
    assert wrapped.__doc__ == "Fetch the thing."
    assert wrapped.__wrapped__ is fn
    assert inspect.iscoroutinefunction(wrapped) is (mode == "async")


# --- Validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("handler", [None, 42, "handler", Boom()])
def test_refuses_a_handler_that_is_not_callable(handler: Any) -> None:
    """A non-callable handler is a TypeError naming handler."""
    with pytest.raises(TypeError, match=r"\bhandler\b"):
        fallback(handler, on=Boom)(_raising("sync", None))


@pytest.mark.parametrize("on", ["Boom", 42, None, 1.5, [Boom], int, (Boom, "KeyError")])
def test_refuses_an_on_of_the_wrong_kind(on: Any) -> None:
    """An `on` that is neither exception class(es) nor a predicate is a TypeError naming on."""
    with pytest.raises(TypeError, match=r"\bon\b"):
        fallback(Recorder(), on=on)(_raising("sync", None))


def test_on_is_required_and_keyword_only() -> None:
    """fallback() without `on`, or with `on` passed positionally, is a TypeError."""
    with pytest.raises(TypeError):
        fallback(Recorder())
    with pytest.raises(TypeError):
        fallback(Recorder(), Boom)


# --- Stacking: fallback > retry > circuit_breaker > timeout ---------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_stack_stops_retrying_at_an_open_breaker_and_falls_back(
    clock: FakeClock, make_breaker: Factory, mode: str
) -> None:
    """Retries stop at the breaker's first rejection and the fallback answers with that error."""
    breaker = make_breaker(failure_threshold=2)
    calls = 0

    def fail(arg: str) -> None:
        nonlocal calls
        calls += 1
        raise Boom(arg)

    async def afail(arg: str) -> None:
        fail(arg)

    handler = Recorder()
    backoff = Backoff(initial=0.1, multiplier=2.0, max=1.0, jitter="none")
    fn = fallback(handler, on=Exception)(
        retry(on=Exception, attempts=6, backoff=backoff, clock=clock)(
            breaker(fail if mode == "sync" else afail)
        )
    )
    assert await _call(fn, "arg") == "fallback"
    assert calls == 2
    assert clock.sleeps == [0.1, 0.2]
    ((exc, args, _),) = handler.calls
    assert isinstance(exc, CircuitBreakerOpenError)
    assert args == ("arg",)
    assert breaker.metrics.rejected_calls == 1
    # Once open, a call is refused at once: no attempt reaches the function, no sleep.
    assert await _call(fn, "again") == "fallback"
    assert calls == 2
    assert clock.sleeps == [0.1, 0.2]
    assert isinstance(handler.calls[1][0], CircuitBreakerOpenError)


async def test_full_async_stack_answers_timeouts_with_the_fallback(
    clock: FakeClock, make_breaker: Factory
) -> None:
    """Timed-out attempts are breaker failures, retried until the breaker opens, then answered."""
    breaker = make_breaker(failure_threshold=2)
    handler = Recorder()
    backoff = Backoff(initial=0.1, multiplier=1.0, max=0.1, jitter="none")
    calls = 0

    @fallback(handler, on=Exception)
    @retry(on=CallTimeoutError, attempts=5, backoff=backoff, clock=clock)
    @breaker
    @timeout(0.01)
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    assert await hang() == "fallback"
    assert calls == 2
    m = breaker.metrics
    assert (m.failed_calls, m.rejected_calls) == (2, 1)
    assert isinstance(handler.calls[0][0], CircuitBreakerOpenError)
    assert clock.sleeps == [0.1, 0.1]
