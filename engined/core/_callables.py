"""What a decorator was handed: an async callable, a sync one, or one it cannot guard.

``inspect.iscoroutinefunction`` alone misses most async callables services pass around:
objects with an ``async def __call__``, ``functools.partial`` of either, and grpc.aio stub
methods, whose ``__call__`` is a plain ``def`` returning an awaitable call object. Routed
down a sync path, such a call "succeeds" the moment it returns its coroutine, so a breaker
counts successes while the dependency fails and a retry never retries.

Generator functions (and streaming-response gRPC stubs) cannot be guarded by wrapping the
call at all: the work happens while the caller iterates, after the call returned. They
are refused at decoration with a ``TypeError`` that says what to do instead.

grpc.aio stubs are recognised by the module and name of their base classes, so this
module never imports grpc (``engined.core`` must stay light).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = [
    "PLAIN_RESULTS",
    "is_async_callable",
    "refuse_awaitable",
    "refuse_unguardable",
    "returns_awaitable",
]

_UNARY_RESPONSE = frozenset({"UnaryUnaryMultiCallable", "StreamUnaryMultiCallable"})
_STREAM_RESPONSE = frozenset({"UnaryStreamMultiCallable", "StreamStreamMultiCallable"})
_GRPC_BASES = frozenset({"grpc", "grpc.aio._base_channel"})

PLAIN_RESULTS: set[type] = {type(None), bool, int, float, str, bytes, dict, list, tuple}
"""Result types seen not to be awaitable: the sync paths test ``type(result) in`` this set
first, so the usual result costs one set lookup. Bounded, since classes made on the fly
must not grow it for ever."""
_PLAIN_RESULTS_MAX = 1024


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _grpc_stub_kind(fn: object) -> str | None:
    """``"unary"`` or ``"stream"`` for a gRPC multi-callable, by its response arity."""
    for klass in type(fn).__mro__:
        if klass.__module__ in _GRPC_BASES:
            if klass.__name__ in _UNARY_RESPONSE:
                return "unary" if klass.__module__ != "grpc" else None
            if klass.__name__ in _STREAM_RESPONSE:
                return "stream"
    return None


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives an awaitable that does the work.

    True for coroutine functions, objects whose ``__call__`` is one, partials of either,
    and grpc.aio unary-response stub methods.
    """
    target = _unwrap(fn)
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(type(target), "__call__", None)  # noqa: B004  # the method, not callable()
    if call is not None and inspect.iscoroutinefunction(call):
        return True
    return _grpc_stub_kind(target) == "unary"


def refuse_unguardable(fn: Callable[..., Any], decorator: str) -> None:
    """Raise ``TypeError`` if ``fn`` does its work after returning (generators, streams).

    Args:
        fn: What was handed to the decorator.
        decorator: How the decorator is named in the message, e.g. ``"@breaker"``.
    """
    what = _unguardable_kind(_unwrap(fn))
    if what is None:
        return
    msg = (
        f"{decorator} cannot guard {fn!r}: it is {what}, so its work happens while the "
        "caller iterates, after the call has returned. Guard the code that consumes it, or "
        "hold a `with breaker.permit():` block inside it (engined.rpc interceptors guard "
        "gRPC streams)."
    )
    raise TypeError(msg)


def _unguardable_kind(fn: Callable[..., Any]) -> str | None:
    call = getattr(type(fn), "__call__", None)  # noqa: B004  # the method, not callable()
    for what, test in (
        ("a generator function", inspect.isgeneratorfunction),
        ("an async generator function", inspect.isasyncgenfunction),
    ):
        if test(fn) or (call is not None and test(call)):
            return what
    if _grpc_stub_kind(fn) == "stream":
        return "a streaming-response gRPC stub method"
    return None


def returns_awaitable(result: object) -> bool:
    """Whether a sync path's ``result`` is awaitable; remembers types that are not."""
    kind = type(result)
    if kind in PLAIN_RESULTS:
        return False
    if inspect.isawaitable(result):
        return True
    # A generator object may be a generator-based coroutine; never vouch for its type.
    if len(PLAIN_RESULTS) < _PLAIN_RESULTS_MAX and kind is not types.GeneratorType:
        PLAIN_RESULTS.add(kind)
    return False


def refuse_awaitable(fn: Callable[..., Any], result: object, what: str) -> NoReturn:
    """Raise ``TypeError`` for a sync path's awaitable ``result``, closing it if unstarted.

    A coroutine that was never started is closed, so no "never awaited" warning follows
    the error; anything else (a task, a gRPC call) is already running and left alone.
    """
    if isinstance(result, types.CoroutineType):
        result.close()
    msg = (
        f"{fn!r} returned {type(result).__name__}, an awaitable, through the sync path of "
        f"{what}: nothing was awaited, so the outcome is unknown. Make it an `async def` "
        "(or give its class an `async def __call__`), or use `await ...call_async(...)`."
    )
    raise TypeError(msg)
