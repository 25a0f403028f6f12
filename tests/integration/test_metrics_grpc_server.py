"""grpc_server_* metrics from a real grpc.aio server on 127.0.0.1, every arity and handler style.

Handlers come in every style grpc.aio accepts: coroutines, sync functions (run in grpc's
thread pool), async generators, ``context.write`` coroutines and ``context.read`` readers
(grpc/grpc#28728). Each method takes its mode from the first request: ``ok``,
``not_found`` (set_code), ``abort``, ``raise`` or ``hang``; streaming responses send two
messages first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engined import CircuitBreakerRegistry, HealthCheckManager
from engined.metrics import GrpcServerMetrics
from engined.rpc import add_to_server
from engined.testing import FakeClock

pytestmark = pytest.mark.integration

SERVICE = "mt.Modes"
C = grpc.StatusCode


async def _apply(mode: str, context: Any) -> None:
    if mode == "not_found":
        context.set_code(C.NOT_FOUND)
        context.set_details("no such thing")
    elif mode == "abort":
        await context.abort(C.PERMISSION_DENIED, "password=hunter2 refused")
    elif mode == "raise":
        raise ValueError("password=hunter2 boom")
    elif mode == "hang":
        await asyncio.Event().wait()


def _apply_sync(mode: str, context: Any) -> None:
    if mode == "not_found":
        context.set_code(C.NOT_FOUND)
    elif mode == "abort":
        context.abort(C.PERMISSION_DENIED, "refused")
    elif mode == "raise":
        raise ValueError("password=hunter2 boom")


async def unary(request: bytes, context: Any) -> bytes:
    await _apply(request.decode(), context)
    return b"reply"


def unary_sync(request: bytes, context: Any) -> bytes:
    _apply_sync(request.decode(), context)
    return b"reply"


async def server_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"one"
    yield b"two"
    await _apply(request.decode(), context)


async def server_stream_write(request: bytes, context: Any) -> None:
    await context.write(b"one")
    await context.write(b"two")
    await _apply(request.decode(), context)


def server_stream_sync(request: bytes, context: Any) -> Iterator[bytes]:
    yield b"one"
    yield b"two"
    _apply_sync(request.decode(), context)


async def client_stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
    received = [request async for request in requests]
    await _apply(received[0].decode(), context)
    return b"reply"


async def client_stream_read(requests: Any, context: Any) -> bytes:
    first = await context.read()
    while await context.read() is not grpc.aio.EOF:
        pass
    await _apply(first.decode(), context)
    return b"reply"


async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    mode = ""
    async for request in requests:
        mode = mode or request.decode()
        yield b"echo"
    await _apply(mode, context)


async def bidi_write(requests: Any, context: Any) -> None:
    first = await context.read()
    await context.write(b"echo")
    while await context.read() is not grpc.aio.EOF:
        await context.write(b"echo")
    await _apply(first.decode(), context)


HANDLERS: dict[str, tuple[Callable[..., Any], Callable[..., Any], str]] = {
    "Unary": (grpc.unary_unary_rpc_method_handler, unary, "unary"),
    "UnarySync": (grpc.unary_unary_rpc_method_handler, unary_sync, "unary"),
    "ServerStream": (grpc.unary_stream_rpc_method_handler, server_stream, "server_stream"),
    "ServerStreamWrite": (
        grpc.unary_stream_rpc_method_handler,
        server_stream_write,
        "server_stream",
    ),
    "ServerStreamSync": (
        grpc.unary_stream_rpc_method_handler,
        server_stream_sync,
        "server_stream",
    ),
    "ClientStream": (grpc.stream_unary_rpc_method_handler, client_stream, "client_stream"),
    "ClientStreamRead": (
        grpc.stream_unary_rpc_method_handler,
        client_stream_read,
        "client_stream",
    ),
    "Bidi": (grpc.stream_stream_rpc_method_handler, bidi, "bidi_stream"),
    "BidiWrite": (grpc.stream_stream_rpc_method_handler, bidi_write, "bidi_stream"),
}
SYNC = {"UnarySync", "ServerStreamSync"}


class Served:
    """A running server with the metrics interceptor, and a plain channel to it."""

    def __init__(self, metrics: GrpcServerMetrics, server: grpc.aio.Server, port: int) -> None:
        self.metrics = metrics
        self.server = server
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    def call(self, name: str) -> Any:
        """The multi-callable of method ``name``, bytes in and out."""
        make = HANDLERS[name][0]
        kind = {
            grpc.unary_unary_rpc_method_handler: self.channel.unary_unary,
            grpc.unary_stream_rpc_method_handler: self.channel.unary_stream,
            grpc.stream_unary_rpc_method_handler: self.channel.stream_unary,
            grpc.stream_stream_rpc_method_handler: self.channel.stream_stream,
        }[make]
        return kind(f"/{SERVICE}/{name}", request_serializer=bytes, response_deserializer=bytes)

    def value(self, sample: str, /, **labels: str) -> float:
        """One sample of the server's families, 0 when absent."""
        registry = CollectorRegistry()
        registry.register(self.metrics)
        text = generate_latest(registry).decode()
        for family in text_string_to_metric_families(text):
            for found in family.samples:
                if found.name == sample and found.labels == labels:
                    return float(found.value)
        return 0.0

    def labels_of(self, name: str) -> dict[str, str]:
        return {"grpc_type": HANDLERS[name][2], "grpc_service": SERVICE, "grpc_method": name}

    def handled(self, name: str, code: str) -> float:
        return self.value("grpc_server_handled_total", **self.labels_of(name), grpc_code=code)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    metrics = GrpcServerMetrics()
    server = grpc.aio.server(interceptors=[metrics.interceptor()])
    handlers = {name: make(fn) for name, (make, fn, _) in HANDLERS.items()}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    running = Served(metrics, server, port)
    try:
        yield running
    finally:
        await running.channel.close()
        await server.stop(None)


async def _invoke(served: Served, name: str, mode: str, **kwargs: Any) -> tuple[Any, list[bytes]]:
    """Call ``name`` in ``mode``; return the status code (None for OK) and the responses."""
    stub = served.call(name)
    kind = HANDLERS[name][2]
    received: list[bytes] = []
    requests = [mode.encode(), b"more"]
    try:
        if kind == "unary":
            received.append(await stub(mode.encode(), **kwargs))
        elif kind == "client_stream":
            received.append(await stub(iter(requests), **kwargs))
        else:
            call = (
                stub(mode.encode(), **kwargs) if kind == "server_stream" else stub(iter(requests))
            )
            async for message in call:
                received.append(message)
    except grpc.aio.AioRpcError as error:
        return error.code(), received
    return None, received


async def _eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within  # noqa: TID251 - a server cancels on real time
    while not predicate():
        assert time.monotonic() < deadline, "not recorded in time"  # noqa: TID251
        await asyncio.sleep(0.01)  # noqa: TID251


MODES = {"ok": "OK", "not_found": "NotFound", "abort": "PermissionDenied", "raise": "Unknown"}
STREAMED_OUT = {"server_stream": 2, "bidi_stream": 2}


# A sync streaming handler that aborts sometimes hangs the call in grpc 1.85 itself (with
# or without interceptors, about 1 run in 50): its abort is run on the loop from grpc's thread.
CASES = [
    (mode, name)
    for mode in MODES
    for name in HANDLERS
    if (mode, name) != ("abort", "ServerStreamSync")
]


@pytest.mark.parametrize(("mode", "name"), CASES)
async def test_each_arity_and_style_records_its_status_and_messages(
    served: Served, name: str, mode: str
) -> None:
    """started, handled{grpc_code}, the histogram and both message counters match the call."""
    code, received = await _invoke(served, name, mode)
    expected = MODES[mode]
    assert (code.name if code else "OK") == {
        "OK": "OK",
        "NotFound": "NOT_FOUND",
        "PermissionDenied": "PERMISSION_DENIED",
        "Unknown": "UNKNOWN",
    }[expected]
    labels = served.labels_of(name)
    await _eventually(lambda: served.handled(name, expected) == 1.0)
    assert served.value("grpc_server_started_total", **labels) == 1.0
    assert served.value("grpc_server_handling_seconds_count", **labels) == 1.0
    kind = HANDLERS[name][2]
    requests_in = 2 if kind in ("client_stream", "bidi_stream") else 1
    assert served.value("grpc_server_msg_received_total", **labels) == requests_in
    sent = STREAMED_OUT.get(kind, 1 if expected == "OK" else 0)
    assert served.value("grpc_server_msg_sent_total", **labels) == sent
    assert len(received) == (sent if kind in STREAMED_OUT or expected == "OK" else 0)


@pytest.mark.parametrize("name", [n for n in HANDLERS if n not in SYNC])
async def test_a_call_the_client_cancels_is_recorded_as_canceled(served: Served, name: str) -> None:
    """The client cancelling a hanging call ends the handler; the server counts Canceled."""
    task = asyncio.ensure_future(_invoke(served, name, "hang"))
    labels = served.labels_of(name)
    await _eventually(lambda: served.value("grpc_server_started_total", **labels) == 1.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await _eventually(lambda: served.handled(name, "Canceled") == 1.0)
    assert served.value("grpc_server_handling_seconds_count", **labels) == 1.0


# Not a bidi call: a grpc.aio 1.85 bidi call whose server neither answers nor ends is not
# ended by its deadline on the client side (with or without interceptors).
@pytest.mark.parametrize("name", ["Unary", "ServerStream", "ServerStreamWrite", "ClientStreamRead"])
async def test_a_call_past_its_deadline_is_recorded_as_deadline_exceeded(
    served: Served, name: str
) -> None:
    """A handler cut off by the caller's deadline counts as DeadlineExceeded, not Canceled."""
    code, _ = await _invoke(served, name, "hang", timeout=0.2)
    assert code is C.DEADLINE_EXCEEDED
    await _eventually(lambda: served.handled(name, "DeadlineExceeded") == 1.0)
    assert served.handled(name, "Canceled") == 0.0


async def test_unknown_methods_share_one_unknown_series(served: Served) -> None:
    """Unimplemented paths count under unknown/unknown: a caller cannot mint label values."""
    for path in ("/mt.Modes/Nope", "/other.Service/Anything", "/x/y"):
        stub = served.channel.unary_unary(path, request_serializer=bytes)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub(b"")
        assert caught.value.code() is C.UNIMPLEMENTED
    labels = {"grpc_type": "unary", "grpc_service": "unknown", "grpc_method": "unknown"}
    code = {"grpc_code": "Unimplemented"}
    assert served.value("grpc_server_handled_total", **labels, **code) == 3.0
    text = generate_latest(_registry_of(served.metrics)).decode()
    assert "Nope" not in text
    assert "other.Service" not in text


def _registry_of(metrics: GrpcServerMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(metrics)
    return registry


async def test_health_watch_keeps_working_behind_the_interceptor() -> None:
    """The engined and health servicers (Watch too: grpc/grpc#28728) work and are counted."""
    metrics = GrpcServerMetrics()
    server = grpc.aio.server(interceptors=[metrics.interceptor()])
    manager = HealthCheckManager(clock=FakeClock())
    add_to_server(server, manager, registry=CircuitBreakerRegistry())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
        check = {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}
        watched = {
            "grpc_type": "server_stream",
            "grpc_service": "grpc.health.v1.Health",
            "grpc_method": "Watch",
        }
        registry = _registry_of(metrics)

        def sample(name: str, **labels: str) -> float:
            return registry.get_sample_value(name, labels) or 0.0

        assert sample("grpc_server_handled_total", grpc_type="unary", **check, grpc_code="OK")
        await _eventually(
            lambda: sample("grpc_server_handled_total", **watched, grpc_code="Canceled") == 1
        )
        assert sample("grpc_server_msg_sent_total", **watched) >= 1.0
    finally:
        await server.stop(None)
        await manager.stop()
