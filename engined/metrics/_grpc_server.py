"""``grpc_server_*`` metrics from a grpc.aio server interceptor, for all four arities.

A server interceptor cannot see a call's status; it wraps the method handler and reads it
when the handler ends (grpc/grpc#9576). The wrapper keeps the arity and the kind of the
handler grpc.aio inspects: a coroutine function stays one, an async generator function
stays one, a context.write-style streaming coroutine stays a coroutine (grpc/grpc#28728),
and a sync handler stays sync, so grpc still runs it in its thread pool.

The status, per grpc.aio 1.85 (research (a)9): ``context.code()`` is ``None`` when the
handler neither set a code nor aborted (OK); after ``abort()`` the handler raises
``AbortError`` and the code is the aborted one; any other exception is UNKNOWN, as grpc
answers it; a cancelled handler (the client went away, a deadline, server shutdown) is
CANCELLED, or DEADLINE_EXCEEDED when its deadline has run out. Sync handlers get a
context without ``code()``, so the wrapper passes them one that notes ``set_code`` and
``abort``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
import grpc.aio

from engined._clock import SYSTEM_CLOCK, Clock
from engined.metrics._grpc_context import AsyncCountingContext, SyncTrackingContext
from engined.metrics._grpc_families import (
    GrpcFamilies,
    GrpcType,
    MethodMetrics,
    Outcome,
    cancelled_code,
    status_code,
)

__all__ = ["GrpcServerMetrics"]

_OK = grpc.StatusCode.OK
_UNKNOWN = grpc.StatusCode.UNKNOWN
_UNKNOWN_METHOD = "/unknown/unknown"

Behavior = Callable[..., Any]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]  # generic in the stubs only
else:
    Handler = grpc.RpcMethodHandler
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class GrpcServerMetrics(GrpcFamilies):
    """go-grpc-prometheus ``grpc_server_*`` metrics for a grpc.aio server.

    Install :meth:`interceptor` on the server, and expose this object through a registry::

        metrics = GrpcServerMetrics()
        server = grpc.aio.server(interceptors=[metrics.interceptor()])
        registry = engined.metrics.metrics_registry(manager=manager, grpc_server=metrics)

    Args:
        registry: A ``prometheus_client.CollectorRegistry`` to register the families in
            now; ``None`` leaves them unregistered until
            :func:`~engined.metrics.metrics_registry` (or your own registry) takes them.
        clock: Times the calls; tests pass a FakeClock.

    Raises:
        prometheus_client's ``ValueError``: ``registry`` already holds these names.
    """

    def __init__(self, registry: Any = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__("grpc_server", clock)
        if registry is not None:
            registry.register(self)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """A grpc.aio server interceptor recording every call this server handles."""
        return _ServerInterceptor(self)


class _ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: GrpcServerMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        """Wrap the method's handler so that its end is counted; count an unknown method."""
        handler = await continuation(handler_call_details)
        if handler is None:  # grpc answers UNIMPLEMENTED; the path is the caller's, not a label
            method = self._metrics.method(_UNKNOWN_METHOD, "unary")
            Outcome(method, self._metrics.clock).finish(grpc.StatusCode.UNIMPLEMENTED)
            return None
        wrapped = _wrap(handler, self._metrics, handler_call_details.method)
        return cast("grpc.RpcMethodHandler[_Req, _Resp]", wrapped)


def _wrap(handler: Handler, metrics: GrpcServerMetrics, path: str) -> Handler:
    """A handler of the same arity whose behavior records the call; broken ones pass as is."""
    clock = metrics.clock
    streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
    new = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if not streaming_out:
        unary_behavior = handler.stream_unary if streaming_in else handler.unary_unary
        if unary_behavior is None:
            return handler
        method = metrics.method(path, "client_stream" if streaming_in else "unary")
        wrapped = _unary(unary_behavior, method, clock, streaming_in=streaming_in)
        if streaming_in:
            return grpc.stream_unary_rpc_method_handler(wrapped, **new)
        return grpc.unary_unary_rpc_method_handler(wrapped, **new)
    behavior = handler.stream_stream if streaming_in else handler.unary_stream
    if behavior is None:
        return handler
    grpc_type: GrpcType = "bidi_stream" if streaming_in else "server_stream"
    method = metrics.method(path, grpc_type)
    wrapped = _stream(behavior, method, clock, streaming_in=streaming_in)
    if streaming_in:
        return grpc.stream_stream_rpc_method_handler(wrapped, **new)
    return grpc.unary_stream_rpc_method_handler(wrapped, **new)


def _code_after(error: BaseException, context: Any) -> grpc.StatusCode:
    """The status grpc answers a handler that raised ``error`` with."""
    if isinstance(error, grpc.aio.AbortError):
        return status_code(context.code()) or _UNKNOWN
    if isinstance(error, Exception):
        return _UNKNOWN  # grpc answers any other exception with UNKNOWN
    return cancelled_code(context)  # CancelledError (client gone, deadline, shutdown)


def _code_of(context: Any) -> grpc.StatusCode:
    """The status of a handler that returned: the code it set, else OK."""
    return status_code(context.code()) or _OK


def _unary(
    behavior: Behavior, method: MethodMetrics, clock: Clock, *, streaming_in: bool
) -> Behavior:
    """Wrap a unary-response handler (unary or client-streaming), async or sync."""
    if inspect.iscoroutinefunction(behavior):

        async def unary(request: Any, context: Any) -> Any:
            outcome = Outcome(method, clock, on_ok=method.sent)
            if streaming_in:
                request = _count_async(request, method.received)
                context = AsyncCountingContext(context, method)
            else:
                method.received()
            try:
                response = await behavior(request, context)
            except BaseException as error:
                outcome.finish(_code_after(error, context))
                raise
            outcome.finish(_code_of(context))
            return response

        return unary

    def unary_sync(request: Any, context: Any) -> Any:
        outcome = Outcome(method, clock, on_ok=method.sent)
        tracking = SyncTrackingContext(context)
        if streaming_in:
            request = _count_sync(request, method.received)
        else:
            method.received()
        try:
            response = behavior(request, tracking)
        except BaseException as error:
            outcome.finish(tracking.code_after(error))
            raise
        outcome.finish(tracking.code() or _OK)
        return response

    return unary_sync


def _stream(
    behavior: Behavior, method: MethodMetrics, clock: Clock, *, streaming_in: bool
) -> Behavior:
    """Wrap a streaming-response handler: async generator, context.write coroutine, or sync."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            outcome = Outcome(method, clock)
            request = _requests_in(request, method, streaming_in)
            counting = AsyncCountingContext(context, method)
            try:
                async with contextlib.aclosing(behavior(request, counting)) as responses:
                    async for response in responses:
                        method.sent()
                        yield response
            except BaseException as error:
                outcome.finish(_code_after(error, context))
                raise
            outcome.finish(_code_of(context))

        return stream

    if inspect.iscoroutinefunction(behavior):  # writes with context.write, returns None

        async def stream_writes(request: Any, context: Any) -> None:
            outcome = Outcome(method, clock)
            request = _requests_in(request, method, streaming_in)
            counting = AsyncCountingContext(context, method)
            try:
                await behavior(request, counting)
            except BaseException as error:
                outcome.finish(_code_after(error, context))
                raise
            outcome.finish(_code_of(context))

        return stream_writes

    def stream_sync(request: Any, context: Any) -> Iterator[Any]:
        outcome = Outcome(method, clock)
        tracking = SyncTrackingContext(context)
        if streaming_in:
            request = _count_sync(request, method.received)
        else:
            method.received()
        try:
            for response in behavior(request, tracking):
                method.sent()
                yield response
        except BaseException as error:  # GeneratorExit: grpc stopped reading (cancelled)
            outcome.finish(tracking.code_after(error))
            raise
        outcome.finish(tracking.code() or _OK)

    return stream_sync


def _requests_in(request: Any, method: MethodMetrics, streaming_in: bool) -> Any:
    """An async handler's request: a counted stream, or the one message, counted now."""
    if streaming_in:
        return _count_async(request, method.received)
    method.received()
    return request


async def _count_async(requests: Any, tick: Callable[[], None]) -> AsyncIterator[Any]:
    async for request in requests:
        tick()
        yield request


def _count_sync(requests: Any, tick: Callable[[], None]) -> Iterator[Any]:
    for request in requests:
        tick()
        yield request
