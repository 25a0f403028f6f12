"""SIGTERM: health turns NOT_SERVING while the server still answers, then a clean exit 0 in 5 s.

The order is what a balancer or kubelet needs (DESIGN.md §7, grpc/grpc PR #26622): an open
Watch hears NOT_SERVING first; during the drain a new Check is still answered; then the
streams end and the process exits 0, within 5 s even with Watch streams open and checks
hung (a sync function that never returns, an async one that swallows its cancellation,
a command that sleeps).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from daemon_support import Daemon, running, wait_for, write
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engined.v1 import engined_pb2 as pb
from engined.v1 import engined_pb2_grpc

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

HUNG = """\
import asyncio
import pathlib
import time

HERE = pathlib.Path(__file__).parent


def forever_sync() -> bool:
    (HERE / "sync-entered").touch()
    time.sleep(1000)
    return True


async def forever_async() -> bool:
    (HERE / "async-entered").touch()
    while True:
        try:
            await asyncio.sleep(1000)
        except asyncio.CancelledError:
            pass  # a check that will not be cancelled
"""


async def _next(stream: Any) -> int:
    reply = await asyncio.wait_for(stream.read(), 10)
    status: int = reply.status
    return status


async def _exit_code(daemon: Daemon, within: float) -> int:
    code = await asyncio.to_thread(daemon.proc.wait, within)
    return int(code)


async def test_watch_hears_not_serving_before_the_server_stops(tmp_path: Path) -> None:
    """SIGTERM: the Watch gets NOT_SERVING, a Check during the drain is answered, exit 0."""
    config = write(
        tmp_path / "engined.toml",
        '[server]\ndrain = 1.0\n\n[[checks]]\nname = "ok"\ntype = "command"\n'
        'command = ["true"]\ninterval = 0.5\n',
    )
    with running(config, tmp_path) as daemon:
        daemon.wait_event("transition", component="ok", to="healthy")
        async with grpc.aio.insecure_channel(daemon.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert await _next(watch) == SERVING
            daemon.signal(signal.SIGTERM)
            assert await _next(watch) == NOT_SERVING
            async with grpc.aio.insecure_channel(daemon.target) as fresh:
                during = await health_pb2_grpc.HealthStub(fresh).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=5
                )
            assert during.status == NOT_SERVING  # still served: the drain is on
            assert await asyncio.wait_for(watch.read(), 10) is grpc.aio.EOF
            assert await watch.code() == grpc.StatusCode.OK
        assert await _exit_code(daemon, 5.0) == 0
    events = [line.get("event") for line in daemon.lines()]
    assert events.index("stopping") < events.index("draining") < events.index("stopped")


async def test_exit_0_within_5s_with_streams_open_and_checks_hung(tmp_path: Path) -> None:
    """20 open Watch streams and three hung checks: SIGTERM still exits 0 within 5 s."""
    write(tmp_path / "daemon_hung.py", HUNG)
    config = write(
        tmp_path / "engined.toml",
        "\n".join(
            f'[[checks]]\nname = "{name}"\ntype = "{kind}"\n{what}\ninterval = 60.0\n'
            "timeout = 30.0\n"
            for name, kind, what in (
                ("sync", "python", 'target = "daemon_hung:forever_sync"'),
                ("async", "python", 'target = "daemon_hung:forever_async"'),
                ("sleep", "command", 'command = ["sleep", "1000"]'),
            )
        ),
    )
    with running(config, tmp_path) as daemon:
        wait_for(
            lambda: (tmp_path / "sync-entered").exists() and (tmp_path / "async-entered").exists(),
            what="the hung checks started",
        )
        async with grpc.aio.insecure_channel(daemon.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            engined = engined_pb2_grpc.EnginedStub(channel)
            streams = [
                health.Watch(health_pb2.HealthCheckRequest(service=name))
                for name in ("", "sync", "async", "sleep", "unknown") * 2
            ]
            streams += [engined.WatchSystemHealth(pb.WatchSystemHealthRequest()) for _ in range(10)]
            for stream in streams:
                await asyncio.wait_for(stream.read(), 10)
            started = time.monotonic()  # noqa: TID251 - the 5 s is real time
            daemon.signal(signal.SIGTERM)
            code = await _exit_code(daemon, 10.0)
            elapsed = time.monotonic() - started  # noqa: TID251
            for stream in streams:
                stream.cancel()
    assert code == 0, daemon.tail()
    assert elapsed < 5.0, f"exited after {elapsed:.2f} s"
    assert daemon.events("stopped")
