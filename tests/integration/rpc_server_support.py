"""Helpers for the server tests: a real grpc.aio server on loopback, checks a test controls.

Servers and channels are made inside the running loop (grpc/grpc#32480): ``serve`` is an
async context manager, entered by each test or fixture on its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engined import CircuitBreakerRegistry, HealthCheckManager, HealthStatus
from engined.rpc import add_to_server
from engined.rpc._server import EnginedServices
from engined.testing import FakeClock
from engined.v1 import engined_pb2_grpc

WALL_NS = 1_800_000_000_000_000_000
"""The fixed wall clock servers under test stamp ``observed_at`` with."""

TOKEN = "admin-s3cret-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)


class Switch:
    """A check whose verdict the test sets; counts its runs."""

    def __init__(self, status: HealthStatus = HealthStatus.HEALTHY) -> None:
        self.status = status
        self.runs = 0

    async def __call__(self) -> HealthStatus:
        self.runs += 1
        return self.status


@dataclass
class Served:
    """A running server with engined's services, and a channel to it."""

    port: int
    server: grpc.aio.Server
    services: EnginedServices
    channel: grpc.aio.Channel

    @property
    def engined(self) -> Any:
        """An engined.v1.Engined stub on the channel."""
        return engined_pb2_grpc.EnginedStub(self.channel)

    @property
    def health(self) -> Any:
        """A grpc.health.v1.Health stub on the channel."""
        return health_pb2_grpc.HealthStub(self.channel)

    async def check(self, service: str) -> int:
        """The serving status of ``service`` by a Check with a deadline."""
        reply = await self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        status: int = reply.status
        return status


@contextlib.asynccontextmanager
async def serve(
    manager: HealthCheckManager,
    *,
    registry: CircuitBreakerRegistry | None = None,
    admin_token: str | None = TOKEN,
    wall_time_ns: Callable[[], int] = lambda: WALL_NS,
) -> AsyncIterator[Served]:
    """Run engined's services on 127.0.0.1 (a free port) for the block."""
    server = grpc.aio.server()
    services = add_to_server(
        server,
        manager,
        registry=registry if registry is not None else CircuitBreakerRegistry(),
        admin_token=admin_token,
        wall_time_ns=wall_time_ns,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(port, server, services, channel)
    finally:
        await channel.close()
        await server.stop(None)
        await manager.stop()


def manager_with(**checks: Switch) -> HealthCheckManager:
    """A manager on a FakeClock with one component per keyword, each checked by its Switch."""
    manager = HealthCheckManager(clock=FakeClock())
    for name, check in checks.items():
        manager.register(name, check)
    return manager


async def eventually(predicate: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait on the real clock until ``predicate()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within  # noqa: TID251 - integration tests wait on real time
    while not predicate():
        if time.monotonic() > deadline:  # noqa: TID251
            msg = f"condition not met within {within} s"
            raise AssertionError(msg)
        await asyncio.sleep(0.01)  # noqa: TID251


def breakers(clock: FakeClock) -> CircuitBreakerRegistry:
    """A registry with 'pay' tripped open by two failures and 'mail' closed."""
    registry = CircuitBreakerRegistry()
    pay = registry.get_or_create("pay", failure_threshold=2, recovery_timeout=30.0, clock=clock)
    registry.get_or_create("mail", clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            pay.call(_refused)
    return registry


def _refused() -> None:
    raise ConnectionError


async def failure(call: Any) -> tuple[grpc.StatusCode, str]:
    """The status code and details ``call`` fails with (it must fail)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""
