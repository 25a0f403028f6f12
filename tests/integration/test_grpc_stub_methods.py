"""grpc.aio and sync gRPC stub methods under ``@breaker``, ``@retry`` and ``@bulkhead``.

Hardening issue item 2: a grpc.aio stub method's ``__call__`` is a plain ``def`` that
returns an awaitable call object, so it went down the sync path and every failing RPC
counted as a success. Streaming-response stubs do their work while the caller iterates,
so wrapping the call cannot guard them: they are refused like generator functions.

The unary tests call a real grpc.aio channel on a loopback port nobody listens on, so the
RPC fails fast with UNAVAILABLE; no server is needed.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import grpc
import pytest

import engined
from engined import Bulkhead, CircuitBreaker, CircuitBreakerOpenError, CircuitState

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting to it is refused at once


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    """A grpc.aio channel to a loopback port with no server."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{_closed_port()}") as chan:
        yield chan


def _unary(chan: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return chan.unary_unary(
        "/test.Echo/Say", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


async def test_breaker_counts_failed_aio_unary_rpcs(channel: grpc.aio.Channel) -> None:
    """Three UNAVAILABLE RPCs through @breaker open it; the fourth is refused unsent."""
    breaker = CircuitBreaker("rpc", failure_threshold=3, recovery_timeout=60.0)
    say = breaker(_unary(channel))
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await say(b"hi", timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(CircuitBreakerOpenError):
        await say(b"hi", timeout=5)
    m = breaker.metrics
    assert m.state is CircuitState.OPEN
    assert (m.failed_calls, m.successful_calls, m.rejected_calls) == (3, 0, 1)


async def test_retry_retries_an_aio_unary_stub(channel: grpc.aio.Channel) -> None:
    """@retry on a grpc.aio stub method makes every attempt."""
    attempts = 0

    def unavailable(exc: BaseException) -> bool:
        nonlocal attempts
        attempts += 1
        return isinstance(exc, grpc.aio.AioRpcError)

    say = engined.retry(on=unavailable, attempts=3, backoff=engined.Backoff(initial=0))(
        _unary(channel)
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await say(b"hi", timeout=5)
    assert attempts == 3


async def test_bulkhead_holds_its_slot_for_the_whole_aio_rpc(channel: grpc.aio.Channel) -> None:
    """A bulkhead around an aio stub is released only when the awaited RPC ends."""
    bh = Bulkhead("rpc", max_concurrent=1)
    say = bh(_unary(channel))
    with pytest.raises(grpc.aio.AioRpcError):
        await say(b"hi", timeout=5)
    assert bh.active == 0


async def test_aio_streaming_stubs_are_refused(channel: grpc.aio.Channel) -> None:
    """Unary-stream and stream-stream aio stubs are a TypeError at decoration."""
    for stub in (channel.unary_stream("/test.Echo/Many"), channel.stream_stream("/test.Echo/Chat")):
        with pytest.raises(TypeError, match="streaming-response gRPC stub"):
            CircuitBreaker("rpc")(stub)


def test_sync_streaming_stubs_are_refused_and_unary_ones_stay_sync() -> None:
    """A sync channel's streaming stub is refused; its unary stub is guarded on the sync path."""
    with grpc.insecure_channel(f"127.0.0.1:{_closed_port()}") as chan:
        with pytest.raises(TypeError, match="streaming-response gRPC stub"):
            CircuitBreaker("rpc")(chan.unary_stream("/test.Echo/Many"))
        breaker = CircuitBreaker("rpc", failure_threshold=1)
        say = breaker(
            chan.unary_unary(
                "/test.Echo/Say", request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
        )
        with pytest.raises(grpc.RpcError):
            say(b"hi", timeout=5)
        assert breaker.state is CircuitState.OPEN
