"""The ``engined.v1.Engined`` service: a health manager and a breaker registry over gRPC.

Read-only RPCs (GetSystemHealth, WatchSystemHealth, ListCircuitBreakers,
GetCircuitBreaker) answer from snapshots; no request ever runs a check. Admin RPCs
(RunHealthCheck, ResetHeal, SetCircuitBreakerState) first check the admin token
(:mod:`engined.rpc._auth`), then their arguments, so a caller without the token learns
nothing about which names exist.

Errors (DESIGN.md §6, §9): an empty name or a bad enum value is INVALID_ARGUMENT, an
unknown component or breaker NOT_FOUND, and anything unexpected INTERNAL
(:mod:`engined.rpc._server_errors`); never UNKNOWN.

The one wall-clock reading is ``observed_at`` (see :mod:`engined.rpc._convert`); it comes
from the ``wall_time_ns`` callable, which tests replace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any, Final, TypeAlias

import grpc  # type: ignore[import-untyped, unused-ignore]
import grpc.aio  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import timestamp_pb2

from engined import CircuitBreaker, CircuitBreakerRegistry, HealthCheckManager, SystemHealth
from engined.rpc import _convert as convert
from engined.rpc._auth import AdminAuth
from engined.rpc._server_errors import Refusal, shown, streaming, unary
from engined.rpc._watch_feed import WatchFeed
from engined.v1 import engined_pb2 as pb
from engined.v1 import engined_pb2_grpc

__all__ = ["SERVICE_NAME", "EnginedService"]

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["Engined"].full_name

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_ACTIONS: Final[dict[pb.CircuitBreakerAction.ValueType, Callable[[CircuitBreaker], None]]] = {
    pb.CIRCUIT_BREAKER_ACTION_FORCE_OPEN: CircuitBreaker.force_open,
    pb.CIRCUIT_BREAKER_ACTION_DISABLE: CircuitBreaker.disable,
    pb.CIRCUIT_BREAKER_ACTION_RESET: CircuitBreaker.reset,
}


class EnginedService(engined_pb2_grpc.EnginedServicer):
    """``engined.v1.Engined`` over a manager and a registry.

    Args:
        manager: The health manager whose components are served.
        registry: The circuit breakers served.
        auth: The admin-token check for the admin RPCs.
        feed: The server's shared subscription to ``manager.watch()``.
        wall_time_ns: Nanoseconds since the Unix epoch, for ``observed_at``.
    """

    def __init__(
        self,
        manager: HealthCheckManager,
        registry: CircuitBreakerRegistry,
        auth: AdminAuth,
        feed: WatchFeed,
        wall_time_ns: Callable[[], int] = convert.wall_time_ns,
    ) -> None:
        self._manager = manager
        self._registry = registry
        self._auth = auth
        self._feed = feed
        self._wall_time_ns = wall_time_ns
        self._watched: tuple[SystemHealth, pb.SystemHealth] | None = None  # the last one sent

    # ---------------------------------------------------------------- health, read-only

    @unary
    async def GetSystemHealth(
        self, request: pb.GetSystemHealthRequest, context: Context
    ) -> pb.GetSystemHealthResponse:
        """The manager's latest snapshot, converted in a worker thread.

        A thousand components take ~10 ms to convert; a poller (``engined status --watch``,
        a dashboard) must not stall every other call on the loop for that long.
        """
        health = self._manager.snapshot()
        return pb.GetSystemHealthResponse(health=await asyncio.to_thread(self._system, health))

    @streaming
    async def WatchSystemHealth(
        self, request: pb.WatchSystemHealthRequest, context: Context
    ) -> AsyncGenerator[pb.WatchSystemHealthResponse, None]:
        """The current health, then each coalesced change, until the client goes away."""
        sent: SystemHealth | None = None
        async with contextlib.aclosing(self._feed.updates()) as updates:
            async for health in updates:
                if health is not sent:  # the feed hands a value out again when poked
                    sent = health
                    yield pb.WatchSystemHealthResponse(health=self._shared(health))

    def _system(self, health: SystemHealth) -> pb.SystemHealth:
        return convert.system_message(health, self._wall_time_ns())

    def _shared(self, health: SystemHealth) -> pb.SystemHealth:
        """``health`` as a message, converted once for every stream that sends it.

        The feed hands all streams the same value, so 50 dashboards watching 1,000
        components cost one conversion per change, not 50 (its ``observed_at`` is when
        the first stream sent it).
        """
        watched = self._watched
        if watched is None or watched[0] is not health:
            watched = self._watched = (health, self._system(health))
        return watched[1]

    # ---------------------------------------------------------------- breakers, read-only

    @unary
    async def ListCircuitBreakers(
        self, request: pb.ListCircuitBreakersRequest, context: Context
    ) -> pb.ListCircuitBreakersResponse:
        """Every breaker of the registry, sorted by name (built in a worker thread)."""
        return await asyncio.to_thread(self._breaker_list)

    def _breaker_list(self) -> pb.ListCircuitBreakersResponse:
        metrics = sorted((b.metrics for b in self._registry), key=lambda m: m.name)
        return pb.ListCircuitBreakersResponse(
            circuit_breakers=[convert.breaker_message(m) for m in metrics],
            observed_at=convert.timestamp(self._wall_time_ns()),
        )

    @unary
    async def GetCircuitBreaker(
        self, request: pb.GetCircuitBreakerRequest, context: Context
    ) -> pb.GetCircuitBreakerResponse:
        """One breaker by name."""
        breaker = self._breaker(request.name)
        return pb.GetCircuitBreakerResponse(
            circuit_breaker=convert.breaker_message(breaker.metrics),
            observed_at=convert.timestamp(self._wall_time_ns()),
        )

    def _breaker(self, name: str) -> CircuitBreaker:
        _require_name("name", name)
        breaker = self._registry.get(name)
        if breaker is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"no circuit breaker named {shown(name)}")
        return breaker

    # ---------------------------------------------------------------- admin

    @unary
    async def RunHealthCheck(
        self, request: pb.RunHealthCheckRequest, context: Context
    ) -> pb.RunHealthCheckResponse:
        """Run one component's check now; answer with the component afterwards."""
        self._auth.require(context)
        _require_name("name", request.name)
        try:
            await self._manager.run_check(request.name)
        except KeyError:
            raise _no_component(request.name) from None
        component, observed_at = self._component(request.name)
        return pb.RunHealthCheckResponse(component=component, observed_at=observed_at)

    @unary
    async def ResetHeal(
        self, request: pb.ResetHealRequest, context: Context
    ) -> pb.ResetHealResponse:
        """Re-arm one component's healing."""
        self._auth.require(context)
        _require_name("name", request.name)
        try:
            self._manager.reset_heal(request.name)
        except KeyError:
            raise _no_component(request.name) from None
        component, observed_at = self._component(request.name)
        return pb.ResetHealResponse(component=component, observed_at=observed_at)

    def _component(self, name: str) -> tuple[pb.ComponentHealth, timestamp_pb2.Timestamp]:
        """The component as a message, with ages counted to one snapshot's reading.

        ``manager.component()`` carries no clock reading to count ages to; a snapshot
        does. Admin RPCs are rare, so building one is cheap enough.
        """
        health = self._manager.snapshot()
        component = health.components.get(name)
        if component is None:  # unregistered meanwhile
            raise _no_component(name)
        return (
            convert.component_message(component, health.timestamp),
            convert.timestamp(self._wall_time_ns()),
        )

    @unary
    async def SetCircuitBreakerState(
        self, request: pb.SetCircuitBreakerStateRequest, context: Context
    ) -> pb.SetCircuitBreakerStateResponse:
        """Force a breaker open, disable it, or reset it."""
        self._auth.require(context)
        _require_name("name", request.name)
        act = _ACTIONS.get(request.action)
        if act is None:
            valid = ", ".join(pb.CircuitBreakerAction.Name(a) for a in _ACTIONS)
            raise Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"action must be one of {valid}; got {_enumshown(request.action)}",
            )
        breaker = self._breaker(request.name)
        act(breaker)
        return pb.SetCircuitBreakerStateResponse(
            circuit_breaker=convert.breaker_message(breaker.metrics),
            observed_at=convert.timestamp(self._wall_time_ns()),
        )


def _require_name(field: str, name: str) -> None:
    if not name:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is required (got '')")


def _no_component(name: str) -> Refusal:
    return Refusal(grpc.StatusCode.NOT_FOUND, f"no component named {shown(name)}")


def _enumshown(number: int) -> str:
    try:
        return f"{pb.CircuitBreakerAction.Name(number)} ({number})"  # type: ignore[arg-type]
    except ValueError:
        return f"unknown value {number}"
