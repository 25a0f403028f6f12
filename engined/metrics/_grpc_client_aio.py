"""``grpc_client_*`` metrics from grpc.aio client interceptors, one per arity.

Placed first in a channel's interceptor list, they see each logical call once, around
whatever the later interceptors do (``engined.rpc``'s retries included), so a call is
started once and handled once, with its final status and whole duration.

``await continuation(...)`` returns a call that has not finished; its end is taken from a
done-callback (its status is ready then), or from the response stream when the caller
reads it: a reader sees the final status, after any retry the stream made. A stream's
done-callback defers to its reader (see :class:`~engined.metrics._grpc_families.Outcome`),
so a retried stream is counted once, with the status the caller got; a failed stream
nobody reads is counted when the caller drops it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from engined.metrics._grpc_families import GrpcFamilies, GrpcType, MethodMetrics, Outcome
from engined.metrics._grpc_requests import counted_requests

__all__ = ["aio_interceptors"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNKNOWN = grpc.StatusCode.UNKNOWN

Continuation = Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]]

_PENDING: set[asyncio.Task[None]] = set()  # status reads that had to wait: kept alive here


def aio_interceptors(families: GrpcFamilies) -> list[grpc.aio.ClientInterceptor]:
    """The four interceptors (grpc.aio files each under the first arity it implements)."""
    return [
        _UnaryUnary(families),
        _UnaryStream(families),
        _StreamUnary(families),
        _StreamStream(families),
    ]


def _finished_code(call: Any) -> grpc.StatusCode | None:
    """The status of a finished call, read without waiting; ``None`` if it must be awaited."""
    if call.cancelled():
        return _CANCELLED
    reading = call.code()
    try:
        reading.send(None)  # a finished call's status is ready: the coroutine returns at once
    except StopIteration as done:
        code: grpc.StatusCode = done.value
        return code
    reading.close()
    return None


async def _finish_later(call: Any, outcome: Outcome) -> None:
    try:
        code = await call.code()
    except asyncio.CancelledError:
        code = _CANCELLED
    outcome.call_done(code)


def _finish(call: Any, outcome: Outcome) -> None:
    code = _finished_code(call)
    if code is not None:
        outcome.call_done(code)
        return
    task = asyncio.ensure_future(_finish_later(call, outcome))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


def _on_done(outcome: Outcome, call: Any) -> None:
    if not outcome.reading:  # a reader waiting on the stream records what it sees
        _finish(call, outcome)


def _stream(call: Any, outcome: Outcome, received: Callable[[], None]) -> AsyncIterator[Any]:
    """The responses handed to the caller; collected unread, they settle a pending status."""
    responses = _responses(call, outcome, received)
    weakref.finalize(responses, outcome.dropped).atexit = False
    return responses


def _watch(call: Any, outcome: Outcome) -> None:
    """Finish ``outcome`` when ``call`` ends (at once if it has)."""
    if call.done():  # also a plain response an inner interceptor returned
        _on_done(outcome, call)
    else:
        call.add_done_callback(lambda done: _on_done(outcome, done))


async def _start(continuation: Continuation, details: Any, request: Any, outcome: Outcome) -> Any:
    """Run the rest of the chain; a refusal raised there (an open breaker) is the end."""
    try:
        return await continuation(details, request)
    except grpc.aio.AioRpcError as error:
        outcome.finish(error.code())
        raise
    except asyncio.CancelledError:
        outcome.finish(_CANCELLED)
        raise
    except BaseException:
        outcome.finish(_UNKNOWN)
        raise


async def _responses(
    call: Any, outcome: Outcome, received: Callable[[], None]
) -> AsyncIterator[Any]:
    """Read ``call``'s responses for the caller, counting them and the status it ends with."""
    iterator = call.__aiter__()
    while True:
        outcome.reading = True
        try:
            message = await iterator.__anext__()
        except StopAsyncIteration:
            outcome.finish(_OK)
            return
        except grpc.aio.AioRpcError as error:
            outcome.finish(error.code())
            raise
        except asyncio.CancelledError:
            outcome.finish(_CANCELLED)
            raise
        except Exception:
            outcome.finish(_UNKNOWN)
            raise
        finally:
            outcome.reading = False
        outcome.delivered = True
        received()
        yield message


class _Base:
    def __init__(self, families: GrpcFamilies) -> None:
        self._families = families

    def _method(self, details: Any, grpc_type: GrpcType) -> MethodMetrics:
        return self._families.method(details.method, grpc_type)


class _UnaryUnary(_Base, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Count the call, its request now, its status and response when it ends."""
        method = self._method(client_call_details, "unary")
        outcome = Outcome(method, self._families.clock, on_ok=method.received)
        method.sent()
        call = await _start(continuation, client_call_details, request, outcome)
        _watch(call, outcome)
        return call


class _StreamUnary(_Base, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Continuation, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Count the call, each request as it is sent, its status and response at its end."""
        method = self._method(client_call_details, "client_stream")
        outcome = Outcome(method, self._families.clock, on_ok=method.received)
        requests = counted_requests(request_iterator, method.sent)
        call = await _start(continuation, client_call_details, requests, outcome)
        _watch(call, outcome)
        return call


class _UnaryStream(_Base, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Count the call and its request; hand back its responses, counted as read."""
        method = self._method(client_call_details, "server_stream")
        outcome = Outcome(method, self._families.clock, stream=True)
        method.sent()
        call = await _start(continuation, client_call_details, request, outcome)
        _watch(call, outcome)
        return _stream(call, outcome, method.received)


class _StreamStream(_Base, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Continuation, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Count the call and each request sent; hand back its responses, counted as read."""
        method = self._method(client_call_details, "bidi_stream")
        outcome = Outcome(method, self._families.clock, stream=True)
        requests = counted_requests(request_iterator, method.sent)
        call = await _start(continuation, client_call_details, requests, outcome)
        _watch(call, outcome)
        return _stream(call, outcome, method.received)
