"""Checks a reload retires, and every check at shutdown, give their connections back.

Each ``grpc`` check holds a channel; a daemon reloaded every few minutes must not collect
one open connection per reload, nor leave the closing to the garbage collector (the test
keeps the first checks referenced, as a traceback or a user's module may).

The checks reach a real grpc.aio health server through TCP relays of the test's own, one
per check, which count the connections open through them: what the target's operator sees.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from daemon_support import write
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from rpc_server_support import eventually

from engined import HealthStatus
from engined.daemon._build import build
from engined.daemon._config_load import parse_config
from engined.daemon._serve import Daemon

pytestmark = pytest.mark.integration


class Relay:
    """A loopback TCP relay to ``port`` that counts the connections open through it."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.open = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.open -= 1
            for w in (writer, up_writer):
                w.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError, RuntimeError):
        sink.write_eof()


@pytest.fixture
async def health_port() -> AsyncIterator[int]:
    """A grpc.aio server whose overall health is SERVING, on an ephemeral loopback port."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    yield port
    await server.stop(None)


def _config(*checks: tuple[str, Relay, float]) -> str:
    """A config serving on free ports with a grpc check per (name, relay, interval)."""
    head = "[server]\nport = 0\nmetrics_port = 0\ndrain = 0\ngrace = 0.2\n"
    return head + "".join(
        f'\n[[checks]]\nname = "{name}"\ntype = "grpc"\n'
        f'target = "127.0.0.1:{relay.port}"\ninterval = {interval}\n'
        for name, relay, interval in checks
    )


async def test_reload_and_shutdown_close_the_connections_of_retired_grpc_checks(
    tmp_path: Path, health_port: int
) -> None:
    """A removed and a changed check drop their connection on reload; all drop at shutdown."""
    relays = {name: Relay(health_port) for name in ("kept", "removed", "changed", "new")}
    for relay in relays.values():
        await relay.start()
    first = [(name, relays[name], 0.2) for name in ("kept", "removed", "changed")]
    path = write(tmp_path / "engined.toml", _config(*first))
    text = path.read_text()
    config = parse_config(text, path)
    first_checks = build(config, file=path, text=text)  # held: no garbage collection closes them
    daemon = Daemon(config, first_checks, config_path=path)
    running = asyncio.create_task(daemon.run())
    try:
        manager = daemon.manager
        await eventually(
            lambda: all(
                name in manager.snapshot().components
                and manager.component(name).status is HealthStatus.HEALTHY
                for name in ("kept", "removed", "changed")
            ),
            within=10,
        )
        assert [relays[n].open for n in ("kept", "removed", "changed")] == [1, 1, 1]
        kept_count = manager.component("kept").check_count

        second = [("kept", relays["kept"], 0.2), ("changed", relays["changed"], 0.3)]
        write(path, _config(*second, ("new", relays["new"], 0.2)))
        assert daemon.reload()
        assert sorted(first_checks) == ["changed", "kept", "removed"]  # still referenced
        await eventually(lambda: relays["removed"].open == 0, within=10)
        await eventually(lambda: manager.component("new").status is HealthStatus.HEALTHY, within=10)
        await eventually(lambda: manager.component("changed").check_count >= 1, within=10)
        assert relays["kept"].open == 1  # the kept check still uses its channel
        assert relays["changed"].open == 1  # the old channel closed, the new one open
        assert manager.component("kept").check_count >= kept_count

        daemon.request_stop("test")
        assert await asyncio.wait_for(running, timeout=5) == 0
        await eventually(lambda: all(relay.open == 0 for relay in relays.values()), within=10)
    finally:
        if not running.done():
            daemon.request_stop("test")
            await asyncio.wait_for(running, timeout=5)
        for relay in relays.values():
            await relay.stop()
