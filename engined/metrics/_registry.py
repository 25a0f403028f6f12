"""metrics_registry: everything engined exposes, in a fresh registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from engined.core._health_manager import HealthCheckManager
from engined.core._registry import CircuitBreakerRegistry
from engined.metrics._collector import EnginedCollector
from engined.metrics._grpc_client import GrpcClientMetrics
from engined.metrics._grpc_server import GrpcServerMetrics

__all__ = ["metrics_registry"]


def metrics_registry(
    *,
    manager: HealthCheckManager | None = None,
    breakers: CircuitBreakerRegistry | None = None,
    grpc_server: GrpcServerMetrics | None = None,
    grpc_client: GrpcClientMetrics | None = None,
) -> CollectorRegistry:
    """A new ``CollectorRegistry`` holding an :class:`EnginedCollector` and the gRPC families.

    Never prometheus_client's global ``REGISTRY``: two daemons, or a test and a daemon,
    in one process each expose their own. Render it with
    :func:`~engined.metrics.exposition` (fast) or ``prometheus_client.generate_latest``.

    Args:
        manager: The health manager to show (``None``: no health families).
        breakers: The breaker registry to show (``None``: the default registry).
        grpc_server: Server-side gRPC metrics to expose, e.g. the daemon's own RPCs.
        grpc_client: Client-side gRPC metrics to expose.

    Raises:
        TypeError: An argument has the wrong type; the message names it.
    """
    for name, value, kind in (
        ("grpc_server", grpc_server, GrpcServerMetrics),
        ("grpc_client", grpc_client, GrpcClientMetrics),
    ):
        if value is not None and not isinstance(value, kind):
            msg = f"{name} must be a {kind.__name__} or None, got {type(value).__name__}"
            raise TypeError(msg)
    registry = CollectorRegistry()
    registry.register(EnginedCollector(manager=manager, breakers=breakers))
    for families in (grpc_server, grpc_client):
        if families is not None:
            registry.register(families)
    return registry
