"""A grpc.aio response stream that settles its attempt's permit, and retries before it begins.

The interceptor returns one of these in place of grpc's call. grpc.aio hands an object that
is a ``UnaryStreamCall`` (or ``StreamStreamCall``) to the caller as the call itself, so
``cancel()``, ``code()`` and the metadata all reach the current attempt, also after a retry.
The permit is settled by the first of: the iterator ending (OK), failing (its status) or
being cancelled; ``cancel()``; a read of ``code()``; the call finishing, read or not (a
done-callback). Any task may do it: a stream opened in one task and consumed in another
settles its own permit. A stream dropped unread still runs until it ends, its deadline
passes or its channel closes (grpc.aio's channel holds every call it has running), and
is settled then.

Before it has delivered a message, a retryable failure starts a new attempt in the task
that iterates (gRFC A6: a call is committed once its response has begun).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from engined.core._breaker import CircuitBreaker
from engined.core._breaker_types import CircuitBreakerOpenError
from engined.rpc._attempts import Attempts, ClientCore, StreamAttempt

__all__ = ["AioStreamStreamCall", "AioUnaryStreamCall", "finished_code"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED


def finished_code(call: Any) -> grpc.StatusCode | None:
    """The status of a call known to be finished, read without awaiting (in a done-callback)."""
    if call.cancelled():
        return _CANCELLED
    reading = call.code()
    try:
        reading.send(None)  # a finished call's status is ready: the coroutine returns at once
    except StopIteration as done:
        code: grpc.StatusCode = done.value
        return code
    reading.close()
    return None  # not readable without waiting after all: count nothing


def _settle_finished(attempt: StreamAttempt, call: Any) -> None:
    attempt.settle(finished_code(call))


def watch(attempt: StreamAttempt, call: Any) -> StreamAttempt:
    """Settle ``attempt`` from ``call``'s status when it finishes, read or not."""
    call.add_done_callback(functools.partial(_settle_finished, attempt))
    return attempt


class AioUnaryStreamCall(grpc.aio.UnaryStreamCall):  # type: ignore[type-arg]
    """A server-streaming call guarded by a breaker permit; see the module docstring."""

    def __init__(
        self,
        core: ClientCore,
        breaker: CircuitBreaker,
        attempts: Attempts,
        attempt: StreamAttempt,
        call: Any,
        restart: Callable[[Attempts], Awaitable[Any]] | None,
    ) -> None:
        self._core = core
        self._breaker = breaker
        self._attempts = attempts
        self._attempt = attempt
        self._call = call
        self._restart = restart
        self._iterator: Any = None
        self._delivered = False

    def __aiter__(self) -> AioUnaryStreamCall:
        return self

    async def __anext__(self) -> Any:
        while True:
            iterator = self._iterator
            if iterator is None:
                iterator = self._iterator = self._call.__aiter__()
            try:
                message = await iterator.__anext__()
            except StopAsyncIteration:
                self._attempt.settle(_OK)
                raise
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                self._attempt.settle(code)
                if not await self._retry(code, exc):
                    raise
                continue
            except asyncio.CancelledError:
                self._attempt.settle(_CANCELLED)
                raise
            except BaseException:
                self._attempt.settle(None)  # broke on this side: nothing to count
                raise
            self._delivered = True
            return message

    async def _retry(self, code: grpc.StatusCode, error: grpc.aio.AioRpcError) -> bool:
        """Start the next attempt if the stream may still be retried; report whether it did."""
        if self._delivered or self._restart is None:
            return False
        attempts = self._attempts
        delay = attempts.retry_delay(code, error.trailing_metadata())
        if delay is None:
            return False
        await self._core.clock.sleep_async(delay)
        if not attempts.next_attempt():
            return False
        try:
            permit = self._breaker.acquire()
        except CircuitBreakerOpenError:
            return False  # the failure the caller sees is the server's, not the refusal
        try:
            call = await self._restart(attempts)
        except BaseException:
            permit.release()
            raise
        self._call, self._iterator = call, None
        self._attempt = watch(StreamAttempt(self._core, permit), call)
        return True

    async def read(self) -> Any:
        """The next message, or ``grpc.aio.EOF`` once the stream has ended."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            return grpc.aio.EOF

    def cancel(self) -> bool:
        """Cancel the current attempt and give its permit back: the caller gave up."""
        call = self._call
        cancelled: bool = call.cancel()
        if cancelled:
            self._attempt.settle(_CANCELLED)
        return cancelled

    def cancelled(self) -> bool:
        """Whether the current attempt was cancelled."""
        cancelled: bool = self._call.cancelled()
        return cancelled

    def done(self) -> bool:
        """Whether the current attempt has finished."""
        done: bool = self._call.done()
        return done

    def time_remaining(self) -> float | None:
        """Seconds left before the current attempt's deadline, or ``None``."""
        remaining: float | None = self._call.time_remaining()
        return remaining

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(self)`` once the current attempt has finished."""
        self._call.add_done_callback(lambda _call: callback(self))

    async def initial_metadata(self) -> grpc.aio.Metadata:
        """The current attempt's initial metadata."""
        metadata: grpc.aio.Metadata = await self._call.initial_metadata()
        return metadata

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        """The current attempt's trailing metadata, once it has finished."""
        metadata: grpc.aio.Metadata = await self._call.trailing_metadata()
        return metadata

    async def code(self) -> grpc.StatusCode:
        """The current attempt's status, once it has finished; reading it settles the permit."""
        code: grpc.StatusCode = await self._call.code()
        self._attempt.settle(code)
        return code

    async def details(self) -> str:
        """The current attempt's status details, once it has finished."""
        details: str = await self._call.details()
        return details

    async def debug_error_string(self) -> str | None:
        """The current attempt's debug error string, once it has finished."""
        text: str | None = await self._call.debug_error_string()
        return text

    async def wait_for_connection(self) -> None:
        """Wait until the current attempt is connected."""
        await self._call.wait_for_connection()


class AioStreamStreamCall(AioUnaryStreamCall, grpc.aio.StreamStreamCall):  # type: ignore[type-arg]
    """A bidi call guarded by a breaker permit; writes go to the current attempt."""

    async def write(self, request: Any) -> None:
        """Send ``request`` on the current attempt."""
        await self._call.write(request)

    async def done_writing(self) -> None:
        """Tell the server the current attempt sends no more requests."""
        await self._call.done_writing()

    @property
    def _done_writing_flag(self) -> bool:
        # grpc.aio's intercepted call reads this from the call an interceptor returned.
        flag: bool = self._call._done_writing_flag
        return flag
