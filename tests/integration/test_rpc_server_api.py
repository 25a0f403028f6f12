"""add_to_server's arguments, reflection on or off, and the public names of engined.rpc."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from rpc_server_support import Switch, manager_with

import engined.rpc
from engined import CircuitBreakerRegistry, HealthCheckManager
from engined.rpc import add_to_server
from engined.testing import FakeClock

pytestmark = pytest.mark.integration


async def _listed_services(port: int) -> list[str]:
    """Service names a reflection client gets from the server."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        call = stub.ServerReflectionInfo(iter([request]), timeout=5)
        reply = await call.read()
        call.cancel()
    return sorted(s.name for s in reply.list_services_response.service)


async def test_reflection_lists_the_three_services() -> None:
    """With reflection on (the default) a client lists Engined, Health and reflection itself."""
    server = grpc.aio.server()
    add_to_server(server, manager_with(), registry=CircuitBreakerRegistry())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert await _listed_services(port) == [
            "engined.v1.Engined",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    finally:
        await server.stop(None)


async def test_reflection_false_leaves_reflection_to_the_caller() -> None:
    """reflection=False adds no reflection service, so a caller's own can include SERVICE_NAMES."""
    server = grpc.aio.server()
    add_to_server(server, manager_with(), reflection=False)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _listed_services(port)
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


async def test_a_sync_server_is_refused() -> None:
    """A sync grpc.Server cannot run async servicers: TypeError naming grpc.aio.server()."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        server = grpc.server(pool)
        with pytest.raises(TypeError, match=r"grpc\.aio\.server\(\)"):
            add_to_server(server, manager_with())


async def test_wrong_argument_types_are_refused_naming_them() -> None:
    """A manager or registry of the wrong type is a TypeError that names the argument."""
    server = grpc.aio.server()
    with pytest.raises(TypeError, match="manager must be a HealthCheckManager"):
        add_to_server(server, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="registry must be a CircuitBreakerRegistry"):
        add_to_server(server, manager_with(), registry={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="admin_token must be a str"):
        add_to_server(server, manager_with(), admin_token=b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("token", ["", "two words", "tab\there", "ünïcode"])
async def test_tokens_metadata_cannot_carry_are_refused_without_showing_them(token: str) -> None:
    """An empty token, or one gRPC metadata cannot carry, is a ValueError that never echoes it."""
    server = grpc.aio.server()
    with pytest.raises(ValueError, match="admin_token") as caught:
        add_to_server(server, HealthCheckManager(clock=FakeClock()), admin_token=token)
    if token:
        assert token not in str(caught.value)


async def test_the_public_names_resolve_from_engined_rpc() -> None:
    """engined.rpc.add_to_server and server_credentials are the server module's functions."""
    from engined.rpc import _server

    assert engined.rpc.add_to_server is _server.add_to_server
    assert engined.rpc.server_credentials is _server.server_credentials


async def test_the_handle_counts_open_streams() -> None:
    """open_streams is zero before any Watch: the feed holds no subscription while unused."""
    manager = manager_with(db=Switch())
    server = grpc.aio.server()
    services = add_to_server(server, manager)
    assert services.open_streams == 0
    assert not services._feed.feeding
    assert services.server is server
