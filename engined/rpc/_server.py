"""Put engined's services on a grpc.aio server in one call, with TLS and a graceful stop.

:func:`add_to_server` adds ``engined.v1.Engined``, ``grpc.health.v1.Health`` and (by
default) server reflection to a server the caller made and will start, so engined's
services can share a port with the application's own. It returns an
:class:`EnginedServices` handle for the shutdown sequence of DESIGN.md §6 (after
grpc/grpc PR #26622's example): health NOT_SERVING first, so balancers and probes stop
sending; a short drain while they notice; every watch stream ended; then
``server.stop(grace)``, which refuses new calls and gives in-flight ones ``grace``
seconds.

:func:`server_credentials` makes the ``grpc.ServerCredentials`` for TLS, or mTLS when a
client CA is given (a client without a certificate signed by it is refused in the TLS
handshake, before any RPC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import grpc  # type: ignore[import-untyped, unused-ignore]
import grpc.aio  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped, unused-ignore]
    reflection as _reflection,
)

from engined import (
    SYSTEM_CLOCK,
    CircuitBreakerRegistry,
    Clock,
    HealthCheckManager,
    default_registry,
)
from engined.rpc import _convert as convert
from engined.rpc._auth import AdminAuth
from engined.rpc._health_service import SERVICE_NAME as HEALTH_SERVICE
from engined.rpc._health_service import HealthService
from engined.rpc._servicer import SERVICE_NAME as ENGINED_SERVICE
from engined.rpc._servicer import EnginedService
from engined.rpc._watch_feed import WatchFeed
from engined.v1 import engined_pb2_grpc

__all__ = ["SERVICE_NAMES", "EnginedServices", "add_to_server", "server_credentials"]

SERVICE_NAMES: Final = (ENGINED_SERVICE, HEALTH_SERVICE)
"""The services :func:`add_to_server` adds, for a reflection set up by the caller."""

DEFAULT_DRAIN: Final = 1.0
"""Seconds between NOT_SERVING and the stop: a few of a typical probe's intervals (1-10 s)."""


class EnginedServices:
    """What :func:`add_to_server` added to a server, and its graceful shutdown.

    Either call :meth:`shutdown` to run the whole sequence, or, to stop the server
    yourself, call :meth:`enter_graceful_shutdown`, wait while clients notice, call
    :meth:`close_streams`, then ``await server.stop(grace)``.

    Attributes:
        server: The server the services were added to.
        health: The ``grpc.health.v1.Health`` servicer.
        engined: The ``engined.v1.Engined`` servicer.
    """

    __slots__ = ("_feed", "engined", "health", "server")

    def __init__(
        self,
        server: grpc.aio.Server,
        health: HealthService,
        engined: EnginedService,
        feed: WatchFeed,
    ) -> None:
        self.server = server
        self.health = health
        self.engined = engined
        self._feed = feed

    @property
    def open_streams(self) -> int:
        """Watch and WatchSystemHealth streams open now (they share one subscription)."""
        return self._feed.streams

    def enter_graceful_shutdown(self) -> None:
        """Turn every health service NOT_SERVING for good; open Watch streams hear it now."""
        self.health.enter_graceful_shutdown()

    def close_streams(self) -> None:
        """End every Watch and WatchSystemHealth stream (with OK) after its latest message.

        ``server.stop(grace)`` waits up to ``grace`` for in-flight calls, and a watch
        stream never ends by itself: closing them first lets the stop finish at once.
        """
        self._feed.close()

    async def shutdown(
        self, grace: float = 5.0, *, drain: float = DEFAULT_DRAIN, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        """Stop gracefully: NOT_SERVING, ``drain`` seconds, streams ended, ``server.stop(grace)``.

        Args:
            grace: Seconds in-flight calls get to finish once the server stops accepting
                new ones; later they are cancelled.
            drain: Seconds between NOT_SERVING and the stop, while calls are still served,
                so health checkers and balancers notice before connections are refused.
            clock: Waits out ``drain``.
        """
        if not grace >= 0 or not drain >= 0:
            msg = f"grace and drain must be >= 0 seconds, got grace={grace!r}, drain={drain!r}"
            raise ValueError(msg)
        self.enter_graceful_shutdown()
        if drain:
            await clock.sleep_async(drain)
        self.close_streams()
        await self.server.stop(grace)


def add_to_server(
    server: grpc.aio.Server,
    manager: HealthCheckManager,
    *,
    registry: CircuitBreakerRegistry | None = None,
    admin_token: str | None = None,
    reflection: bool = True,
    wall_time_ns: Callable[[], int] = convert.wall_time_ns,
) -> EnginedServices:
    """Add engined.v1.Engined, grpc.health.v1.Health and reflection to a grpc.aio server.

    Call it before ``server.start()``; the caller owns the server (ports, credentials,
    interceptors, options) and may add its own services to it.

    Args:
        server: A ``grpc.aio`` server (the servicers are async; a sync ``grpc.Server``
            is refused).
        manager: The health manager to serve; it is only read, except through the
            admin RPCs.
        registry: The circuit breakers to serve (default: ``engined.default_registry()``,
            where decorators and interceptors register theirs).
        admin_token: The bearer token admin RPCs need; ``None`` (the default) refuses
            them all with PERMISSION_DENIED.
        reflection: Also add server reflection listing engined.v1.Engined,
            grpc.health.v1.Health and the reflection service. Pass ``False`` when the
            server has reflection already, and include :data:`SERVICE_NAMES` in it.
        wall_time_ns: The wall clock for ``observed_at`` stamps (nanoseconds since the
            epoch); tests fix it.

    Returns:
        The handle for the graceful shutdown.

    Raises:
        TypeError: An argument has the wrong type; the message names it.
        ValueError: ``admin_token`` is empty or cannot travel in gRPC metadata.
    """
    if not isinstance(server, grpc.aio.Server):
        msg = (
            f"server must be a grpc.aio server (grpc.aio.server()), got "
            f"{type(server).__name__}: engined's servicers are async"
        )
        raise TypeError(msg)
    if not isinstance(manager, HealthCheckManager):
        msg = f"manager must be a HealthCheckManager, got {type(manager).__name__}"
        raise TypeError(msg)
    if registry is not None and not isinstance(registry, CircuitBreakerRegistry):
        msg = f"registry must be a CircuitBreakerRegistry or None, got {type(registry).__name__}"
        raise TypeError(msg)
    auth = AdminAuth(admin_token)
    feed = WatchFeed(manager)
    health = HealthService(manager, feed)
    engined = EnginedService(
        manager,
        registry if registry is not None else default_registry(),
        auth,
        feed,
        wall_time_ns,
    )
    engined_pb2_grpc.add_EnginedServicer_to_server(engined, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if reflection:
        _reflection.enable_server_reflection((*SERVICE_NAMES, _reflection.SERVICE_NAME), server)
    return EnginedServices(server, health, engined, feed)


def server_credentials(
    cert_chain: bytes, private_key: bytes, *, client_ca: bytes | None = None
) -> grpc.ServerCredentials:
    """TLS credentials for ``server.add_secure_port``; mTLS when ``client_ca`` is given.

    Args:
        cert_chain: The server's PEM certificate chain (leaf first).
        private_key: The PEM private key of the leaf certificate.
        client_ca: PEM CA certificates. When given, every client must present a
            certificate signed by one of them, or the handshake fails.

    Returns:
        Credentials for ``server.add_secure_port(address, credentials)``.

    Raises:
        TypeError: An argument is not bytes (read files with ``Path.read_bytes()``).
        ValueError: An argument is not PEM.
    """
    for name, value in (
        ("cert_chain", cert_chain),
        ("private_key", private_key),
        ("client_ca", client_ca),
    ):
        if value is None and name == "client_ca":
            continue
        if not isinstance(value, bytes):
            msg = (
                f"{name} must be PEM bytes (e.g. Path(...).read_bytes()), "
                f"got {type(value).__name__}"
            )
            raise TypeError(msg)
        if b"-----BEGIN " not in value:
            msg = f"{name} is not PEM: no '-----BEGIN ' line"
            raise ValueError(msg)
    return grpc.ssl_server_credentials(
        [(private_key, cert_chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
