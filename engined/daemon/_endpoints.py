"""The metrics port's endpoints: ``/metrics``, ``/healthz`` and ``/readyz``.

- ``/metrics``: the Prometheus text format 0.0.4 of the run's registry.
- ``/healthz`` (liveness): 200 while the process serves, draining included: a process
  that is shutting down on purpose must not be restarted for it.
- ``/readyz`` (readiness): 200 when the overall status is HEALTHY or DEGRADED, 503 when it
  is UNHEALTHY or UNKNOWN, and 503 from the moment a shutdown begins, so a balancer
  stops sending before the gRPC port closes. It reads the manager's cached roll-up
  (:meth:`~engined.HealthCheckManager.overall_status`): no check runs for a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engined import HealthCheckManager, HealthStatus
from engined.daemon._http import Request, Response, Router

__all__ = ["ServingState", "add_routes"]


class ServingState:
    """Whether the daemon serves, and whether it has begun to shut down."""

    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False


def add_routes(
    router: Router,
    *,
    manager: HealthCheckManager,
    state: ServingState,
    render_metrics: Callable[[], Awaitable[bytes]],
    metrics_content_type: str,
) -> None:
    """Route ``/metrics``, ``/healthz`` and ``/readyz`` on ``router``."""

    async def metrics(request: Request) -> Response:
        return Response(200, await render_metrics(), metrics_content_type)

    async def healthz(request: Request) -> Response:
        return Response.text(200, "ok")

    async def readyz(request: Request) -> Response:
        if state.draining:
            return Response.text(503, "not ready: shutting down")
        overall = manager.overall_status()
        if overall in (HealthStatus.HEALTHY, HealthStatus.DEGRADED):
            return Response.text(200, f"ready: {overall}")
        return Response.text(503, f"not ready: {overall}")

    router.add("/metrics", metrics)
    router.add("/healthz", healthz)
    router.add("/readyz", readyz)
