"""Answer with a replacement when a call fails in a way the caller can live with."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from engined.core import _validate as check
from engined.core._callables import (
    PLAIN_RESULTS,
    is_async_callable,
    refuse_awaitable,
    refuse_unguardable,
    returns_awaitable,
)

__all__ = ["fallback"]

F = TypeVar("F", bound=Callable[..., Any])


def fallback(
    handler: Callable[..., Any],
    *,
    on: type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool],
) -> Callable[[F], F]:
    """Return ``handler(exc, *args, **kwargs)`` when the decorated call raises what ``on`` matches.

    Cancellation and interpreter exits are never handled, whatever ``on`` says. With an
    async function the handler may be async (it is awaited) or sync (its value is used);
    a sync function needs a sync handler.

    Args:
        handler: Receives the exception and the call's arguments; returns the result.
        on: What to handle: an exception class, a tuple of them, or a predicate.

    Raises:
        TypeError: At decoration, for an async handler on a sync function or a generator
            function (its errors surface while the caller iterates, out of reach).
    """
    check.check_callable("handler", handler)
    matches = check.check_matcher("on", on)
    async_handler = is_async_callable(handler)

    def decorate(fn: F) -> F:
        check.check_callable("the decorated object", fn)
        refuse_unguardable(fn, "fallback()")
        if is_async_callable(fn):

            @functools.wraps(fn)
            async def answered_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    if not matches(exc):
                        raise
                    result = handler(exc, *args, **kwargs)
                    return await result if async_handler else result

            return cast(F, answered_async)
        if async_handler:
            msg = f"fallback handler {handler!r} is async, so it needs an async function"
            raise TypeError(msg)

        @functools.wraps(fn)
        def answered(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if not matches(exc):
                    raise
                return handler(exc, *args, **kwargs)
            if type(result) not in PLAIN_RESULTS and returns_awaitable(result):
                refuse_awaitable(fn, result, "fallback()")
            return result

        return cast(F, answered)

    return decorate
