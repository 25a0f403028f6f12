"""Servicer contexts handed to wrapped handlers: they count messages and note the status.

Each forwards every attribute it does not define to grpc's own context, so a handler
uses it as it would grpc's (``abort``, ``set_code``, metadata, ``peer``...). It is not
an instance of ``grpc.aio.ServicerContext``: a handler that type-checks its context at
run time would see the difference.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from engined.metrics._grpc_families import MethodMetrics, cancelled_code, status_code

__all__ = ["AsyncCountingContext", "SyncTrackingContext"]


class AsyncCountingContext:
    """A grpc.aio context that counts what a streaming handler reads and writes itself.

    Messages the handler takes from its request iterator, and responses it yields, are
    counted by the wrapper; these are the ones that go through ``context.read()`` and
    ``context.write()`` (the reader/writer API, grpc/grpc#28728).
    """

    __slots__ = ("_context", "_method")

    def __init__(self, context: Any, method: MethodMetrics) -> None:
        self._context = context
        self._method = method

    async def read(self) -> Any:
        """Read the next request; a message (not EOF) is counted as received."""
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            self._method.received()
        return message

    async def write(self, message: Any) -> None:
        """Send ``message``; counted once grpc has taken it."""
        await self._context.write(message)
        self._method.sent()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class SyncTrackingContext:
    """The context of a sync handler, noting the code it sets, which grpc's cannot report.

    The sync context grpc.aio gives handlers it runs in its thread pool has ``set_code``
    and ``abort`` but no ``code()``.
    """

    __slots__ = ("_code", "_context")

    def __init__(self, context: Any) -> None:
        self._context = context
        self._code: grpc.StatusCode | None = None

    def set_code(self, code: grpc.StatusCode) -> None:
        """Set the call's status code, and note it."""
        self._code = status_code(code)
        self._context.set_code(code)

    def abort(self, code: grpc.StatusCode, details: str = "", *args: Any) -> None:
        """End the call with ``code`` (raises, as grpc's does), noting the code first."""
        self._code = status_code(code)
        self._context.abort(code, details, *args)

    def code(self) -> grpc.StatusCode | None:
        """The code the handler set or aborted with, or ``None``."""
        return self._code

    def code_after(self, error: BaseException) -> grpc.StatusCode:
        """The status grpc answers this handler with, now that it raised ``error``."""
        if isinstance(error, grpc.aio.AbortError | grpc.RpcError) and self._code is not None:
            return self._code
        if isinstance(error, Exception):
            return grpc.StatusCode.UNKNOWN
        return cancelled_code(self._context)  # GeneratorExit: grpc stopped reading

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
