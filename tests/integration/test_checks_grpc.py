"""GrpcCheck against a real grpc.aio server with grpcio-health-checking's aio HealthServicer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from engined import ComponentType, HealthCheckManager, HealthStatus
from engined.checks import GrpcCheck

pytestmark = pytest.mark.integration

Serving = health_pb2.HealthCheckResponse


async def _start() -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", Serving.SERVING)
    await servicer.set("orders", Serving.SERVING)
    await servicer.set("billing", Serving.NOT_SERVING)
    await servicer.set("ledger", Serving.SERVICE_UNKNOWN)
    await servicer.set("audit", Serving.UNKNOWN)
    return server, port, servicer


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A health server on an ephemeral loopback port, stopped at the end."""
    server, bound, _ = await _start()
    yield bound
    await server.stop(None)


@pytest.fixture
async def check_of(port: int) -> AsyncIterator[object]:
    """A factory of checks on the server; each is closed at the end."""
    made: list[GrpcCheck] = []

    def make(service: str = "") -> GrpcCheck:
        made.append(GrpcCheck(f"127.0.0.1:{port}", service=service))
        return made[-1]

    yield make
    for check in made:
        await check.close()


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free: int = probe.getsockname()[1]
    return free


@pytest.mark.parametrize("service", ["", "orders"])
async def test_serving_is_healthy(check_of: object, service: str) -> None:
    """SERVING, for the whole server or a named service, is HEALTHY."""
    result = await check_of(service)()  # type: ignore[operator]
    assert result.status is HealthStatus.HEALTHY
    assert result.message == "SERVING"
    assert result.component_type is ComponentType.RPC
    assert result.details["service"] == service
    assert result.details["latency_ms"] >= 0


@pytest.mark.parametrize(
    ("service", "message"),
    [("billing", "NOT_SERVING"), ("ledger", "SERVICE_UNKNOWN"), ("audit", "UNKNOWN")],
)
async def test_every_other_serving_status_is_unhealthy(
    check_of: object, service: str, message: str
) -> None:
    """NOT_SERVING, SERVICE_UNKNOWN and UNKNOWN are UNHEALTHY, named in the message."""
    result = await check_of(service)()  # type: ignore[operator]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == message


async def test_an_unknown_service_is_unhealthy_naming_not_found(check_of: object) -> None:
    """A service the servicer never heard of fails the RPC with NOT_FOUND."""
    result = await check_of("nobody")()  # type: ignore[operator]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "rpc failed: NOT_FOUND"
    assert result.details["code"] == "NOT_FOUND"


async def test_a_dead_port_is_unhealthy_unavailable() -> None:
    """Nothing listening: UNHEALTHY "rpc failed: UNAVAILABLE", quickly and without raising."""
    check = GrpcCheck(f"127.0.0.1:{_dead_port()}")
    try:
        async with asyncio.timeout(10):
            result = await check()
    finally:
        await check.close()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "rpc failed: UNAVAILABLE"


async def test_tls_against_a_plaintext_server_is_unhealthy(port: int) -> None:
    """A check with tls=True towards a server without TLS fails the handshake: UNAVAILABLE."""
    check = GrpcCheck(f"127.0.0.1:{port}", tls=True)
    try:
        async with asyncio.timeout(10):
            result = await check()
    finally:
        await check.close()
    assert result.message == "rpc failed: UNAVAILABLE"


async def test_one_channel_serves_every_call_and_follows_status_changes() -> None:
    """Calls reuse the check's channel, and see a status change at once."""
    server, bound, servicer = await _start()
    check = GrpcCheck(f"127.0.0.1:{bound}", service="orders")
    try:
        assert (await check()).status is HealthStatus.HEALTHY
        channel = check._channel
        await servicer.set("orders", Serving.NOT_SERVING)
        assert (await check()).status is HealthStatus.UNHEALTHY
        assert check._channel is channel
    finally:
        await check.close()
        await server.stop(None)
    assert check._channel is None


def test_a_check_called_on_successive_loops_opens_a_channel_on_each() -> None:
    """A grpc.aio channel belongs to its loop: a new loop gets a new channel that works."""
    check = GrpcCheck("127.0.0.1:1")  # replaced below, once the port is known

    async def one_round() -> tuple[HealthStatus, object]:
        server, bound, _ = await _start()
        check.target = f"127.0.0.1:{bound}"  # a channel kept from the last loop would miss it
        try:
            return (await check()).status, check._channel
        finally:
            await server.stop(None)

    first_status, first_channel = asyncio.run(one_round())
    second_status, second_channel = asyncio.run(one_round())
    asyncio.run(check.close())
    assert first_status is second_status is HealthStatus.HEALTHY
    assert first_channel is not second_channel


async def test_a_manager_records_a_grpc_check_under_its_registered_name(check_of: object) -> None:
    """Through a real manager the result carries the registered name and type."""
    manager = HealthCheckManager()
    manager.register("payments", check_of("billing"), component_type="service")  # type: ignore[operator]
    health = await manager.run_check("payments")
    assert health.status is HealthStatus.UNHEALTHY
    assert health.last_result is not None
    assert health.last_result.component == "payments"
    assert health.last_result.component_type is ComponentType.SERVICE
    assert health.last_result.message == "NOT_SERVING"
