"""RedisCheck and its reconnect heal against a real redis-server (started per test)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis_support import RedisServer, started
from rpc_server_support import eventually

from engined import ComponentType, HealthCheckManager, HealthEvent, HealthStatus
from engined.checks import RedisCheck, RedisReconnectHeal
from engined.testing import FakeClock

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pw"

Make = Callable[..., RedisCheck]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Builds RedisChecks and closes their connections when the test ends."""
    made: list[RedisCheck] = []

    def build(*args: Any, **kwargs: Any) -> RedisCheck:
        made.append(RedisCheck(*args, **kwargs))
        return made[-1]

    yield build
    for check in made:
        await check.close()


def _slow_down(server: RedisServer, seconds: float) -> socket.socket:
    """Make the whole server sleep for real (DEBUG SLEEP), from a connection of its own."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    arg = f"{seconds:g}".encode()
    sock.sendall(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%d\r\n%s\r\n" % (len(arg), arg))
    time.sleep(0.01)  # noqa: TID251 - let the server start sleeping before the check writes
    return sock


def _connections(server: RedisServer) -> int:
    info = server.command("INFO", "stats").decode()
    line = next(x for x in info.splitlines() if x.startswith("total_connections_received:"))
    return int(line.split(":")[1])


async def test_a_running_redis_answers_pong_healthy_with_its_latency(
    make: Make, tmp_path: Path
) -> None:
    """PING on a real server is HEALTHY, a cache, with latency_ms and the target in details."""
    with started(tmp_path) as server:
        result = await make(server.target, name="cache")()
    assert result.status is HealthStatus.HEALTHY
    assert result.component_type is ComponentType.CACHE
    assert result.message.startswith("PONG in ")
    assert result.details["target"] == server.target
    assert 0 <= result.details["latency_ms"] < 50


async def test_the_connection_is_opened_once_and_reused(make: Make, tmp_path: Path) -> None:
    """Five checks cost the server one connection: the check is a client that keeps it."""
    with started(tmp_path) as server:
        check = make(server.target)
        before = _connections(server)
        for _ in range(5):
            assert (await check()).status is HealthStatus.HEALTHY
        assert _connections(server) - before == 2  # the check's, and this query's own


async def test_the_latency_is_measured_on_the_given_clock(make: Make, tmp_path: Path) -> None:
    """With a FakeClock that does not move the round trip is exactly 0 ms."""
    with started(tmp_path) as server:
        result = await make(server.target, clock=FakeClock())()
    assert (result.details["latency_ms"], result.message) == (0.0, "PONG in 0.0 ms")


async def test_the_right_password_authenticates(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With requirepass and the password in password_env, the check is HEALTHY."""
    monkeypatch.setenv("REDIS_PW", PASSWORD)
    with started(tmp_path, password=PASSWORD) as server:
        result = await make(server.target, password_env="REDIS_PW")()
    assert result.status is HealthStatus.HEALTHY


async def test_a_wrong_password_says_so_without_echoing_it(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password is UNHEALTHY "authentication failed (WRONGPASS)"; it appears nowhere."""
    monkeypatch.setenv("REDIS_PW", "not-the-one-xyz")
    with started(tmp_path, password=PASSWORD) as server:
        check = make(server.target, password_env="REDIS_PW")
        result = await check()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "authentication failed (WRONGPASS)"
    shown = f"{result.message}{result.details}{result.error}{check!r}"
    assert "not-the-one-xyz" not in shown
    assert PASSWORD not in shown


async def test_a_missing_password_is_authentication_required(make: Make, tmp_path: Path) -> None:
    """Without AUTH a requirepass server answers NOAUTH: "authentication required"."""
    with started(tmp_path, password=PASSWORD) as server:
        result = await make(server.target)()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "authentication required (NOAUTH)"


async def test_a_key_is_written_with_an_expiry_and_read_back(make: Make, tmp_path: Path) -> None:
    """With key, each check SETs a fresh value with a 10 s expiry and GETs it back."""
    with started(tmp_path) as server:
        check = make(server.target, key="engined:health")
        first = await check()
        value_1 = server.command("GET", "engined:health")
        second = await check()
        value_2 = server.command("GET", "engined:health")
        ttl = int(server.command("PTTL", "engined:health")[1:].strip())
    assert first.status is second.status is HealthStatus.HEALTHY
    assert first.message.startswith("PONG, SET and GET in ")
    assert b"engined:" in value_1
    assert value_1 != value_2
    assert 0 < ttl <= 10_000


async def test_a_key_the_server_refuses_to_write_is_unhealthy(make: Make, tmp_path: Path) -> None:
    """A SET refused by a server out of memory (maxmemory 1, noeviction): "SET failed: OOM"."""
    with started(tmp_path) as server:
        server.command("CONFIG", "SET", "maxmemory", "1")
        server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        result = await make(server.target, key="engined:health")()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "SET failed: OOM"


async def test_a_server_slowed_past_50_ms_is_degraded(make: Make, tmp_path: Path) -> None:
    """A real 120 ms stall (DEBUG SLEEP) makes the round trip slow: DEGRADED."""
    with started(tmp_path) as server:
        check = make(server.target)
        await check()  # connected before the stall
        with _slow_down(server, 0.12):
            result = await check()
    assert result.status is HealthStatus.DEGRADED, result.message
    assert 50 < result.details["latency_ms"] <= 200
    assert result.message.startswith("slow: PONG in ")
    assert result.message.endswith("(degraded above 50 ms)")


async def test_a_server_slowed_past_200_ms_is_unhealthy(make: Make, tmp_path: Path) -> None:
    """A real 350 ms stall is UNHEALTHY "too slow", with the latency in details."""
    with started(tmp_path) as server:
        check = make(server.target)
        await check()
        with _slow_down(server, 0.35):
            result = await check()
        after = await check()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.details["latency_ms"] > 200
    assert result.message.endswith("(unhealthy above 200 ms)")
    assert after.status is HealthStatus.HEALTHY  # the same connection, fast again


async def test_a_timeout_drops_the_connection_so_a_late_reply_is_never_misread(
    make: Make,
    tmp_path: Path,
) -> None:
    """A call cut by timeout reports it; the next call uses a new connection and is HEALTHY."""
    with started(tmp_path) as server:
        check = make(server.target, key="k", timeout=0.1)
        await check()
        with _slow_down(server, 0.3):
            cut = await check()
            await asyncio.sleep(0.35)  # noqa: TID251 - the stall ends, the late replies arrive
        after = await check()
    assert (cut.status, cut.message) == (HealthStatus.UNHEALTHY, "timed out after 0.1 s")
    assert after.status is HealthStatus.HEALTHY, after.message


async def test_an_unreachable_port_is_unhealthy_in_a_few_words(make: Make, tmp_path: Path) -> None:
    """Nothing listening: UNHEALTHY "connection refused", the target in details."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await make(f"127.0.0.1:{port}")()
    assert (result.status, result.message) == (HealthStatus.UNHEALTHY, "connection refused")


async def test_a_port_that_is_not_redis_is_unhealthy_not_an_exception(
    make: Make,
) -> None:
    """An HTTP server on the port answers garbage: UNHEALTHY "not a Redis server (...)"."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await make(f"127.0.0.1:{port}")()
    finally:
        server.close()
        await server.wait_closed()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "not a Redis server (not a RESP2 reply)"


async def test_auto_mode_recovers_by_itself_once_redis_is_back(make: Make, tmp_path: Path) -> None:
    """Killed: "connection lost"; restarted on the same port: the next call reconnects."""
    with started(tmp_path) as server:
        check = make(server.target)
        assert (await check()).status is HealthStatus.HEALTHY
        server.kill()
        lost = await check()
        refused = await check()
        server.start()
        back = await check()
    assert lost.status is refused.status is HealthStatus.UNHEALTHY
    assert lost.message in ("connection lost", "connection reset")
    assert refused.message == "connection refused"
    assert back.status is HealthStatus.HEALTHY


async def test_heal_mode_stays_down_until_the_reconnect_heal_runs(
    make: Make, tmp_path: Path
) -> None:
    """In heal mode a restarted redis is not reached until reconnect() opens a connection."""
    with started(tmp_path) as server:
        check = make(server.target, reconnect="heal")
        assert (await check()).status is HealthStatus.HEALTHY
        server.kill()
        await check()
        server.start()
        waiting = await check()
        assert await check.reconnect() is True
        back = await check()
    assert waiting.message in (
        "connection lost; waiting for the reconnect heal",
        "connection reset; waiting for the reconnect heal",
    )
    assert back.status is HealthStatus.HEALTHY


async def test_a_manager_sees_redis_die_and_heals_it_by_reconnecting(
    make: Make, tmp_path: Path
) -> None:
    """Killed: UNHEALTHY and failing reconnects in backoff; restarted: a reconnect heals it."""
    with started(tmp_path) as server:
        check = make(server.target, reconnect="heal")
        manager = HealthCheckManager()
        events: list[HealthEvent] = []
        manager.add_listener(events.append)
        manager.register(
            "cache",
            check,
            component_type="cache",
            heal=RedisReconnectHeal(check),
            interval=0.1,
            heal_timeout=1.0,
            heal_backoff_initial=0.1,
            heal_backoff_multiplier=1.0,
            heal_max_attempts=100,
        )
        async with manager:
            await eventually(lambda: manager.component("cache").status is HealthStatus.HEALTHY)
            server.kill()
            await eventually(lambda: manager.component("cache").status is HealthStatus.UNHEALTHY)
            await eventually(lambda: manager.component("cache").heal_attempts >= 2)
            assert manager.component("cache").last_heal_error == "returned False"
            server.start()
            await eventually(lambda: manager.component("cache").status is HealthStatus.HEALTHY)
    finished = [e for e in events if e.kind == "heal_finished"]
    assert finished[-1].error is None  # the reconnect that healed it
    assert all(e.error == "returned False" for e in finished[:-1])
    kinds = [(e.from_status, e.to_status) for e in events if e.kind == "transition"]
    assert kinds[-2:] == [
        (HealthStatus.HEALTHY, HealthStatus.UNHEALTHY),
        (HealthStatus.UNHEALTHY, HealthStatus.HEALTHY),
    ]


async def test_a_reconnect_heal_that_cannot_connect_returns_false_and_says_why(make: Make) -> None:
    """Reconnecting to a port nobody can listen on fails: False, and the reason kept."""
    check = make("127.0.0.1:1", reconnect="heal")
    assert await check.reconnect() is False
    assert check.last_reconnect_error == "connection refused"
