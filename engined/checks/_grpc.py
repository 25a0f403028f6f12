"""The ``grpc`` check: a grpc.health.v1 ``Check`` of one service at a target.

One grpc.aio channel per check object, made on first use inside the running event loop
(a grpc.aio channel belongs to the loop it was made on: grpc/grpc#32480) and made again
if the check is later called on another loop. Its options:

* ``grpc.enable_retries=0``: a health check reports what one attempt sees; the
  manager's thresholds decide how many failures count;
* ``grpc.max_reconnect_backoff_ms=5000``: grpc's reconnect backoff grows to 120 s by
  default, and while it waits every call fails at once with UNAVAILABLE, so a target
  that came back would look down for up to two minutes.

No deadline is set: the manager's timeout cancels the call, which cancels the RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import grpc  # type: ignore[import-untyped, unused-ignore]
import grpc.aio  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from engined._clock import SYSTEM_CLOCK, Clock
from engined.checks._common import Identity, millis, parse_host_port
from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = ["CHANNEL_OPTIONS", "GrpcCheck"]

CHANNEL_OPTIONS: Final = (
    ("grpc.enable_retries", 0),
    ("grpc.max_reconnect_backoff_ms", 5000),
)

_SERVING: Final = health_pb2.HealthCheckResponse.SERVING
_STATUS_NAME: Final = health_pb2.HealthCheckResponse.ServingStatus.Name


def _target(value: object) -> str:
    """``host:port`` (checked like the tcp target) or ``unix:/path``, as grpc takes it."""
    if isinstance(value, str) and value.startswith(("unix:", "unix-abstract:")):
        if not value.partition(":")[2] or any(char.isspace() for char in value):
            msg = "target must be 'host:port' or 'unix:/path'; the unix path is empty or bad"
            raise ValueError(msg)
        return value
    host, port = parse_host_port("target", value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _service(value: object) -> str:
    if not isinstance(value, str):
        msg = f"service must be a str ('' for the whole server), got {type(value).__name__}"
        raise TypeError(msg)
    return value


def _tls(value: object) -> bool:
    if not isinstance(value, bool):
        msg = f"tls must be a bool, got {type(value).__name__}"
        raise TypeError(msg)
    return value


class GrpcCheck:
    """HEALTHY when the target's grpc.health.v1 ``Check`` of ``service`` answers SERVING.

    NOT_SERVING, SERVICE_UNKNOWN and UNKNOWN are UNHEALTHY, with the status as the
    message. An RPC error is UNHEALTHY naming its code ("rpc failed: UNAVAILABLE" for a
    dead port, "rpc failed: NOT_FOUND" for a service grpcio's servicer does not know).

    Call :meth:`close` when the check is retired; a check called again afterwards opens
    a new channel.

    Args:
        target: ``"host:port"`` (``"[v6addr]:port"`` for IPv6) or ``"unix:/path"``.
        service: The service to ask about; ``""`` (the default) is the whole server.
        tls: Connect with TLS, trusting the system's (grpc's default) roots.
        name: The component name put on results (the manager uses the registered one).
        component_type: The component type put on results.
        clock: What the RPC latency is measured with.

    Raises:
        TypeError: An argument has the wrong type (the message names it).
        ValueError: An argument has a bad value (the message names it).
    """

    __slots__ = ("_channel", "_id", "_loop", "_request", "_stub", "service", "target", "tls")

    def __init__(
        self,
        target: str,
        *,
        service: str = "",
        tls: bool = False,
        name: str = "grpc",
        component_type: ComponentType | str = ComponentType.RPC,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.target = _target(target)
        self.service = _service(service)
        self.tls = _tls(tls)
        self._id = Identity(name, component_type, clock)
        self._request = health_pb2.HealthCheckRequest(service=self.service)
        self._channel: Any = None
        self._stub: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current_stub(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._stub is None or self._loop is not loop:
            self._forget_channel()
            if self.tls:
                channel = grpc.aio.secure_channel(
                    self.target, grpc.ssl_channel_credentials(), options=CHANNEL_OPTIONS
                )
            else:
                channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._channel, self._loop = channel, loop
            self._stub = health_pb2_grpc.HealthStub(channel)
        return self._stub

    def _forget_channel(self) -> tuple[Any, asyncio.AbstractEventLoop | None]:
        """Drop the channel; close it on its own loop if that loop still runs elsewhere."""
        channel, loop = self._channel, self._loop
        self._channel = self._stub = self._loop = None
        if channel is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                if loop.is_running() and loop is not _running_loop():
                    asyncio.run_coroutine_threadsafe(channel.close(), loop)
        return channel, loop

    async def __call__(self) -> HealthCheckResult:
        """Ask the target's health service; report its status or the RPC's code."""
        stub = self._current_stub()
        started = self._id.clock.monotonic()
        details: dict[str, object] = {"service": self.service}
        try:
            reply = await stub.Check(self._request)
        except grpc.RpcError as exc:
            code = exc.code()
            details["code"] = code.name
            return self._id.result(HealthStatus.UNHEALTHY, f"rpc failed: {code.name}", details)
        details["latency_ms"] = millis(self._id.clock.monotonic() - started)
        status_name = _STATUS_NAME(reply.status)
        details["serving_status"] = status_name
        if reply.status == _SERVING:
            return self._id.result(HealthStatus.HEALTHY, status_name, details)
        return self._id.result(HealthStatus.UNHEALTHY, status_name, details)

    async def close(self) -> None:
        """Close the channel (on its own loop if that is not this one); idempotent."""
        channel, loop = self._forget_channel()
        if channel is not None and loop is asyncio.get_running_loop():
            await channel.close()

    def __repr__(self) -> str:
        return f"GrpcCheck({self.target!r}, service={self.service!r})"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
