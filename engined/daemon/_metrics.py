"""The daemon's Prometheus side: one registry read at scrape time, the gRPC server interceptor.

:mod:`engined.metrics` owns the metric families (DESIGN.md §8); the daemon only builds one
registry per run with :func:`engined.metrics.metrics_registry` (the manager's and the
breakers' collectors, plus the ``grpc_server_*`` families of its own RPCs, fed by the
interceptor it puts on its gRPC server) and renders it on ``/metrics`` with
:func:`engined.metrics.exposition`, in the Prometheus text format 0.0.4. Rendering runs in
a worker thread: collectors read snapshots, and a scrape of thousands of series must not
hold the event loop that serves gRPC.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import grpc.aio
from prometheus_client import CollectorRegistry

from engined import CircuitBreakerRegistry, HealthCheckManager
from engined.metrics import CONTENT_TYPE as _CONTENT_TYPE
from engined.metrics import GrpcServerMetrics, exposition, metrics_registry

__all__ = ["CONTENT_TYPE", "DaemonMetrics"]

CONTENT_TYPE: Final = _CONTENT_TYPE
"""``text/plain; version=0.0.4; charset=utf-8``: what every Prometheus version scrapes."""


@dataclass(frozen=True, slots=True)
class DaemonMetrics:
    """One run's metrics: the registry ``/metrics`` renders and the gRPC interceptor feeding it.

    Attributes:
        registry: Everything ``/metrics`` shows.
        interceptors: For ``grpc.aio.server(interceptors=...)``: the ``grpc_server_*``
            families of the daemon's own RPCs.
    """

    registry: CollectorRegistry
    interceptors: tuple[grpc.aio.ServerInterceptor, ...]

    @classmethod
    def build(cls, manager: HealthCheckManager, breakers: CircuitBreakerRegistry) -> DaemonMetrics:
        """Collectors reading ``manager`` and ``breakers`` at scrape time, and the interceptor."""
        server = GrpcServerMetrics()
        registry = metrics_registry(manager=manager, breakers=breakers, grpc_server=server)
        return cls(registry, (server.interceptor(),))

    async def render(self) -> bytes:
        """The registry in the Prometheus text format, rendered in a worker thread."""
        return await asyncio.to_thread(exposition, self.registry)
