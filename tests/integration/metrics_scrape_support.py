"""A populated metrics registry served over HTTP on 127.0.0.1, for promtool and Prometheus.

:func:`populated` fills a registry with every family: breakers in all five states, health
components of several types (one healed to exhaustion), a named retry, and the gRPC
families of real calls through a grpc.aio server and client on loopback.
:class:`MetricsServer` serves it at ``/metrics`` with :func:`engined.metrics.exposition`,
in a thread, the way the daemon's metrics port does.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry

from engined import CircuitBreakerRegistry, HealthCheckManager, HealthStatus, retry
from engined.metrics import (
    CONTENT_TYPE,
    GrpcClientMetrics,
    GrpcServerMetrics,
    exposition,
    metrics_registry,
)
from engined.testing import FakeClock

SERVICE = "scrape.Echo"


def missing(binary: str) -> str | None:
    """Why a test needing ``binary`` must skip, or None when it is on PATH."""
    if shutil.which(binary) is not None:
        return None
    return f"{binary} is not installed (scripts/test installs Debian's prometheus as root)"


@dataclass
class Populated:
    """The registry and what feeds it (kept alive while it is served)."""

    registry: CollectorRegistry
    manager: HealthCheckManager
    breakers: CircuitBreakerRegistry


async def _echo(request: bytes, context: Any) -> bytes:
    if request == b"missing":
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such key: password=hunter2")
    return request


async def _grpc_traffic(server_metrics: GrpcServerMetrics, client: GrpcClientMetrics) -> None:
    server = grpc.aio.server(interceptors=[server_metrics.interceptor()])
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Get": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        interceptors = client.aio_interceptors()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=interceptors) as ch:
            get = ch.unary_unary(f"/{SERVICE}/Get")
            for request in (b"a", b"b", b"missing"):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await get(request, timeout=5)
    finally:
        await server.stop(None)


def _breakers(clock: FakeClock) -> CircuitBreakerRegistry:
    breakers = CircuitBreakerRegistry()
    flaky = breakers.get_or_create("rpc:db:5432", clock=clock, failure_threshold=2)
    for _ in range(2):
        with contextlib.suppress(ConnectionError):
            flaky.call(_refuse)
    breakers.get_or_create("payments", clock=clock).call(lambda: None)
    breakers.get_or_create("search", clock=clock).force_open()
    breakers.get_or_create("legacy", clock=clock).disable()
    half = breakers.get_or_create("cache", clock=clock, failure_threshold=1, recovery_timeout=5.0)
    with contextlib.suppress(ConnectionError):
        half.call(_refuse)
    return breakers


def _refuse() -> None:
    raise ConnectionError("password=hunter2 refused")


async def populated() -> Populated:
    """Every family, with values: run it inside the test's event loop."""
    breaker_clock = FakeClock()
    breakers = _breakers(breaker_clock)
    breaker_clock.advance(5.0)  # "cache" is HALF_OPEN when read; "rpc:db:5432" still OPEN
    clock = FakeClock()
    manager = HealthCheckManager(clock=clock)

    async def healthy() -> bool:
        return True

    async def degraded() -> HealthStatus:
        return HealthStatus.DEGRADED

    async def broken() -> bool:
        raise RuntimeError("password=hunter2 down")

    manager.register("db", healthy, component_type="database", heal=lambda trigger: None)
    manager.register("cache", degraded, component_type="cache")
    manager.register("queue", broken, component_type="message_queue", heal=lambda t: False)
    manager.register("never-checked", healthy, component_type="external_api")
    for name in ("db", "cache", "queue", "queue"):
        await manager.run_check(name)
        clock.advance(10.0)

    @retry(on=ConnectionError, name="payments-api", clock=clock)
    def pay() -> None:
        pass

    pay()
    server_metrics, client_metrics = GrpcServerMetrics(), GrpcClientMetrics()
    await _grpc_traffic(server_metrics, client_metrics)
    registry = metrics_registry(
        manager=manager, breakers=breakers, grpc_server=server_metrics, grpc_client=client_metrics
    )
    return Populated(registry, manager, breakers)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output free of access logs."""


class MetricsServer:
    """``/metrics`` of ``registry`` on 127.0.0.1 (a free port), served from a thread."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/metrics":
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"not found\n"]
            body = exposition(registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
            return [body]

        self._server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def scrape(self) -> tuple[str, bytes]:
        """GET /metrics as Prometheus would: its Content-Type and body."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.headers["Content-Type"], response.read()
