"""``grpc_client_*`` metrics for sync and grpc.aio channels, alongside ``engined.rpc``."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from engined._clock import SYSTEM_CLOCK, Clock
from engined.metrics._grpc_client_aio import aio_interceptors
from engined.metrics._grpc_client_sync import MetricsClientInterceptor
from engined.metrics._grpc_families import GrpcFamilies

__all__ = ["GrpcClientMetrics"]


class GrpcClientMetrics(GrpcFamilies):
    """go-grpc-prometheus ``grpc_client_*`` metrics for the calls a process makes.

    Put its interceptors outermost, so that each logical call is counted once with its
    final status, whatever ``engined.rpc``'s interceptors retry underneath::

        metrics = GrpcClientMetrics()
        channel = grpc.aio.insecure_channel(
            addr,
            interceptors=[*metrics.aio_interceptors(),
                          *engined.rpc.aio_interceptors(policy, target="db")],
        )
        sync_channel = metrics.intercept_channel(engined.rpc.open_channel("db:443"))

    Args:
        registry: A ``prometheus_client.CollectorRegistry`` to register the families in
            now; ``None`` leaves them for :func:`~engined.metrics.metrics_registry` (or
            your own registry).
        clock: Times the calls; tests pass a FakeClock.
    """

    def __init__(self, registry: Any = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__("grpc_client", clock)
        self._sync = MetricsClientInterceptor(self)
        if registry is not None:
            registry.register(self)

    def aio_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """Interceptors for ``grpc.aio.*_channel(..., interceptors=...)``; list them first."""
        return aio_interceptors(self)

    def intercept_channel(self, channel: grpc.Channel) -> grpc.Channel:
        """Return the sync ``channel`` with these metrics around every call made through it.

        Raises:
            TypeError: ``channel`` is not a ``grpc.Channel`` (a grpc.aio channel takes
                :meth:`aio_interceptors` at creation instead).
        """
        if not isinstance(channel, grpc.Channel):
            msg = (
                f"channel must be a sync grpc.Channel, got {type(channel).__name__}; "
                "a grpc.aio channel takes aio_interceptors() when it is created"
            )
            raise TypeError(msg)
        return grpc.intercept_channel(channel, self._sync)
