"""TcpCheck against ports on loopback that the test opens and then closes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from engined import ComponentType, HealthStatus
from engined.checks import TcpCheck
from engined.testing import FakeClock

pytestmark = pytest.mark.integration


async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def listening() -> AsyncIterator[asyncio.Server]:
    """A server on an ephemeral loopback port that accepts and hangs up."""
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    yield server
    server.close()
    await server.wait_closed()


def _port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def test_a_listening_port_is_healthy_with_its_latency(listening: asyncio.Server) -> None:
    """A port that accepts is HEALTHY; the connect latency is in details."""
    check = TcpCheck(f"127.0.0.1:{_port(listening)}", name="db")
    result = await check()
    assert result.status is HealthStatus.HEALTHY
    assert result.component == "db"
    assert result.component_type is ComponentType.SERVICE
    assert result.details["latency_ms"] >= 0
    assert result.details["target"] == f"127.0.0.1:{_port(listening)}"


async def test_latency_is_measured_on_the_given_clock(listening: asyncio.Server) -> None:
    """With a fake clock that does not move, the reported latency is exactly zero."""
    result = await TcpCheck(f"127.0.0.1:{_port(listening)}", clock=FakeClock())()
    assert result.details["latency_ms"] == 0.0
    assert result.message == "connected in 0.0 ms"


async def test_a_port_closed_after_use_is_unhealthy_connection_refused() -> None:
    """Once the server closed its port, the same check is UNHEALTHY "connection refused"."""
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    check = TcpCheck(f"127.0.0.1:{_port(server)}")
    assert (await check()).status is HealthStatus.HEALTHY
    server.close()
    await server.wait_closed()
    result = await check()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "connection refused"


async def test_a_name_with_several_refusing_addresses_gives_one_short_reason() -> None:
    """``localhost`` (both ::1 and 127.0.0.1) refusing reads "connection refused", not a list."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await TcpCheck(f"localhost:{port}")()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "connection refused"


async def test_an_unresolvable_host_is_unhealthy_not_an_exception() -> None:
    """A host name that does not resolve is UNHEALTHY "cannot resolve host"."""
    async with asyncio.timeout(20):
        result = await TcpCheck("no-such-host.invalid:5432")()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "cannot resolve host"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 support")
async def test_a_bracketed_ipv6_target_connects() -> None:
    """``[::1]:port`` reaches a server listening on the IPv6 loopback."""
    try:
        server = await asyncio.start_server(_hang_up, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        result = await TcpCheck(f"[::1]:{_port(server)}")()
    finally:
        server.close()
        await server.wait_closed()
    assert result.status is HealthStatus.HEALTHY
