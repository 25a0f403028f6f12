"""How the server's handlers fail: a refusal with a status, or INTERNAL, never UNKNOWN.

A handler refuses a request by raising :class:`Refusal` (NOT_FOUND, INVALID_ARGUMENT,
UNAUTHENTICATED...). Every handler is wrapped by :func:`unary` or :func:`streaming`,
the one boundary that turns a refusal into ``context.abort`` and anything unexpected into
INTERNAL with a short generic detail, after logging it with its traceback. Left alone,
grpc.aio would answer UNKNOWN with the exception's text as the detail, and that text is
neither redacted nor meant for clients (DESIGN.md §9).

Cancellation (the client went away, the server stops) and ``grpc.aio.AbortError`` pass
through untouched: they are how grpc.aio ends a call, not faults.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
import grpc.aio  # type: ignore[import-untyped, unused-ignore]

__all__ = ["INTERNAL_DETAIL", "Refusal", "abort", "shown", "streaming", "unary"]

_log = logging.getLogger("engined.rpc")

INTERNAL_DETAIL = "internal error in the engined server; its log has the details"

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


class Refusal(Exception):
    """A request the server refuses: becomes the call's status and details.

    Args:
        code: The gRPC status code.
        details: A short message for the client; it must carry no secret.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


def shown(name: str) -> str:
    """A client-given name for a status detail: quoted, and cut to 80 characters."""
    return repr(name if len(name) <= 80 else name[:79] + "…")


async def abort(
    context: grpc.aio.ServicerContext[Req, Resp], code: grpc.StatusCode, details: str
) -> NoReturn:
    """End the call with ``code``; ``context.abort`` raises ``AbortError`` to unwind the handler."""
    await context.abort(code, details)
    msg = "context.abort returned"  # grpc.aio always raises
    raise AssertionError(msg)


async def _fault(
    name: str, context: grpc.aio.ServicerContext[Req, Resp], exc: Exception
) -> NoReturn:
    if isinstance(exc, Refusal):
        await abort(context, exc.code, exc.details)
    _log.error("engined rpc %s failed", name, exc_info=exc)
    await abort(context, grpc.StatusCode.INTERNAL, INTERNAL_DETAIL)


def unary(
    handler: Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """Wrap a unary-response handler in the error boundary (see the module docstring)."""
    name = handler.__qualname__

    @functools.wraps(handler)
    async def guarded(self: S, request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # the boundary: nothing may become UNKNOWN
            await _fault(name, context, exc)

    return guarded


def streaming(
    handler: Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncGenerator[Resp, None]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncGenerator[Resp, None]]:
    """Wrap a server-streaming handler (an async generator) in the error boundary.

    The inner generator is closed as soon as the wrapper ends, also when the client
    cancels, so its ``finally`` blocks (unsubscribing from the health feed) run at once.
    """
    name = handler.__qualname__

    @functools.wraps(handler)
    async def guarded(
        self: S, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncGenerator[Resp, None]:
        try:
            async with contextlib.aclosing(handler(self, request, context)) as responses:
                async for response in responses:
                    yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # the boundary: nothing may become UNKNOWN
            await _fault(name, context, exc)

    return guarded
