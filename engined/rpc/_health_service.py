"""The standard ``grpc.health.v1.Health`` service (Check, Watch, List) over a health manager.

grpcio-health-checking ships a servicer whose statuses are set by hand, one service at a
time; engined's manager already knows every component's status and publishes changes.
This servicer reads the manager instead (the generated base from grpcio-health-checking
supplies the messages and the registration), and adds ``List``, which grpcio's own
servicer lacks (grpc/grpc#41991).

Mapping (doc/health-checking.md in grpc/grpc; DESIGN.md §6):

- ``""`` is the whole system (the manager's overall status); every component is a service
  of its own name;
- HEALTHY and DEGRADED are SERVING; UNHEALTHY and UNKNOWN are NOT_SERVING;
- Check and List of a name that is no component are NOT_FOUND; Watch of such a name sends
  SERVICE_UNKNOWN and keeps the stream open, switching to the real status once a
  component of that name is registered (and back if it is unregistered);
- after :meth:`HealthService.enter_graceful_shutdown` every known service is NOT_SERVING
  for good, and open Watch streams are told at once.

Check and List read the manager's latest state directly (no request runs a check; Check of
``""`` reads the manager's cached roll-up); Watch streams share one subscription
(:class:`engined.rpc._watch_feed.WatchFeed`), one topic per service, and are woken and
send a message only when the status of their own service changes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final

import grpc  # type: ignore[import-untyped, unused-ignore]
import grpc.aio  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from engined import HealthCheckManager, HealthStatus, SystemHealth
from engined.rpc._server_errors import Refusal, shown, streaming, unary
from engined.rpc._watch_feed import WatchFeed

__all__ = ["LIST_LIMIT", "OVERALL", "SERVICE_NAME", "HealthService", "serving_status"]

SERVICE_NAME: Final = "grpc.health.v1.Health"
OVERALL: Final = ""
LIST_LIMIT: Final = 100
"""List answers RESOURCE_EXHAUSTED beyond this many services, as grpc-go's server does."""

_Status = int  # health_pb2.HealthCheckResponse.ServingStatus values
# List's messages, new in grpcio-health-checking 1.85, are missing from the stubs of
# types-grpcio-health-checking (1.0.0.20261021), hence Any.
_HealthListResponse: Any = health_pb2.HealthListResponse  # type: ignore[attr-defined, unused-ignore]
SERVING: Final[_Status] = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final[_Status] = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Final[_Status] = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def serving_status(status: HealthStatus) -> _Status:
    """HEALTHY and DEGRADED serve; UNHEALTHY and UNKNOWN (nobody saw it pass) do not."""
    return SERVING if status.passing else NOT_SERVING


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc, unused-ignore]
    """``grpc.health.v1.Health`` answered from a :class:`~engined.HealthCheckManager`.

    Args:
        manager: Whose components are the services.
        feed: The server's shared subscription to ``manager.watch()``.
    """

    def __init__(self, manager: HealthCheckManager, feed: WatchFeed) -> None:
        self._manager = manager
        self._feed = feed
        self._shutting_down = False

    @property
    def shutting_down(self) -> bool:
        """Whether :meth:`enter_graceful_shutdown` was called."""
        return self._shutting_down

    def enter_graceful_shutdown(self) -> None:
        """Report every service NOT_SERVING from now on, and tell open Watch streams now.

        Permanent, as grpcio's ``HealthServicer.enter_graceful_shutdown``: a server going
        away must never look healthy again to a balancer.
        """
        self._shutting_down = True
        self._feed.poke()

    def _status(self, service: str, health: SystemHealth | None = None) -> _Status | None:
        """The serving status of ``service``, or ``None`` when it is no component."""
        if service == OVERALL:
            overall = self._manager.overall_status() if health is None else health.overall_status
            status = serving_status(overall)
        elif health is not None:
            component = health.components.get(service)
            if component is None:
                return None
            status = serving_status(component.status)
        else:
            try:
                status = serving_status(self._manager.component(service).status)
            except KeyError:
                return None
        return NOT_SERVING if self._shutting_down else status

    @unary
    async def Check(
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> health_pb2.HealthCheckResponse:
        """The status of one service now; NOT_FOUND when it is no component."""
        status = self._status(request.service)
        if status is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"unknown service {shown(request.service)}")
        return health_pb2.HealthCheckResponse(status=status)

    @unary
    async def List(
        self,
        request: Any,  # a HealthListRequest (see _HealthListResponse)
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        """Every service (``""`` and each component) with its status."""
        health = self._manager.snapshot()
        if len(health.components) + 1 > LIST_LIMIT:
            raise Refusal(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {LIST_LIMIT} services; engined.v1.Engined/GetSystemHealth "
                "lists every component",
            )
        statuses: Mapping[str, _Status | None] = {
            name: self._status(name, health) for name in (OVERALL, *health.components)
        }
        return _HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
                if status is not None
            }
        )

    @streaming
    async def Watch(
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncGenerator[health_pb2.HealthCheckResponse, None]:
        """The status of one service at once, then each time it changes.

        A service that is no component is SERVICE_UNKNOWN, and the stream stays open:
        the protocol lets a client watch a service before the server registers it.
        """
        service = request.service
        sent: _Status | None = None
        select = functools.partial(self._watched, service)
        async with contextlib.aclosing(
            self._feed.topic((SERVICE_NAME, service), select)
        ) as statuses:
            async for status in statuses:
                if status != sent:  # it may have changed and changed back meanwhile
                    sent = status
                    yield health_pb2.HealthCheckResponse(status=status)

    def _watched(self, service: str, health: SystemHealth) -> _Status:
        """What a Watch of ``service`` shows for ``health``: SERVICE_UNKNOWN if no component."""
        status = self._status(service, health)
        return SERVICE_UNKNOWN if status is None else status
