"""Give up on an async call that takes too long.

The limit is enforced by the event loop's own timer (``asyncio.timeout``), which is real
time even in tests that use a FakeClock: only the loop can interrupt a running coroutine.
Sync functions are refused: a running sync call cannot be interrupted safely.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from engined.core import _validate as check
from engined.core._callables import is_async_callable
from engined.core.errors import EnginedError

__all__ = ["CallTimeoutError", "timeout"]

AsyncF = TypeVar("AsyncF", bound=Callable[..., Coroutine[Any, Any, Any]])


class CallTimeoutError(EnginedError, TimeoutError):
    """An async call ran past its ``timeout`` and was cancelled.

    A circuit breaker counts it as a failure (it is an ``Exception``); ``retry(on=TimeoutError)``
    retries it.

    Args:
        name: The qualified name of the function that timed out.
        seconds: The limit it ran past.
    """

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(name, seconds)
        self.name = name
        self.seconds = seconds

    def __str__(self) -> str:
        return f"{self.name} timed out after {self.seconds:g}s"


def timeout(seconds: float) -> Callable[[AsyncF], AsyncF]:
    """Cancel the decorated async function after ``seconds`` and raise :class:`CallTimeoutError`.

    A ``TimeoutError`` the function raises by itself propagates unchanged, and a task
    cancelled from outside still sees ``CancelledError``.

    Raises:
        TypeError: At decoration, when the function is not async.
    """
    limit = check.check_positive("seconds", seconds)

    def decorate(fn: AsyncF) -> AsyncF:
        if not is_async_callable(fn):
            msg = (
                f"timeout() needs an async function, got {fn!r}: a running sync call cannot "
                "be interrupted safely. Make it async (for blocking code, an async function "
                "that awaits asyncio.to_thread(...)) and decorate that."
            )
            raise TypeError(msg)
        name = getattr(fn, "__qualname__", repr(fn))

        @functools.wraps(fn)
        async def limited(*args: Any, **kwargs: Any) -> Any:
            scope = asyncio.timeout(limit)
            try:
                async with scope:
                    return await fn(*args, **kwargs)
            except TimeoutError as exc:
                if scope.expired():
                    raise CallTimeoutError(name, limit) from exc
                raise

        return limited  # type: ignore[return-value]

    return decorate
