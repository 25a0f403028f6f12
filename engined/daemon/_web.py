"""The status page's routes on the metrics port: ``/``, its two static files, the JSON API.

- ``/``: the page (:mod:`engined.daemon._page`), complete without JavaScript.
- ``/static/status.js``, ``/static/status.css``: the page's script and stylesheet,
  served from the package (``engined/daemon/static/``), read once at start.
- ``/api/v1/health``, ``/api/v1/breakers``, ``/api/v1/dependencies``
  (:mod:`engined.daemon._api`) and ``/api/v1/events`` (:mod:`engined.daemon._events`).

Everything is read-only and loads nothing from elsewhere: the Content-Security-Policy
allows scripts, styles and fetches from the daemon itself only (no inline script or
style, no forms, no framing), ``nosniff`` makes browsers trust the declared types, and
every answer carries ``Cache-Control: no-store`` (:mod:`engined.daemon._http` adds it).

Pages and documents are built in a worker thread, as ``/metrics`` is rendered: with 1,000
components and 1,000 breakers the page takes ~100 ms of Python, and a browser tab polls
every second; built on the event loop, that would stall every gRPC call and health
probe the daemon serves for as long. The builders only read snapshots, which are safe to
take from any thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Final

import engined
from engined import CircuitBreakerRegistry, HealthCheckManager
from engined.daemon._api import (
    JSON_CONTENT_TYPE,
    breakers_document,
    dependencies_document,
    encode,
    health_document,
)
from engined.daemon._events import EventRing
from engined.daemon._http import Handler, Request, Response, Router
from engined.daemon._page import render_page
from engined.rpc import _convert as convert

__all__ = ["CSP", "HTML_CONTENT_TYPE", "SECURITY_HEADERS", "STATIC", "add_status_routes"]

HTML_CONTENT_TYPE: Final = "text/html; charset=utf-8"

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only the daemon's own script, stylesheet and JSON; nothing inline, nothing external."""

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

STATIC: Final[Mapping[str, str]] = {
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
}
"""The files under ``/static/`` and their content types."""


def _static_file(name: str) -> bytes:
    return resources.files("engined.daemon").joinpath("static", name).read_bytes()


def add_status_routes(
    router: Router,
    *,
    manager: HealthCheckManager,
    breakers: CircuitBreakerRegistry,
    events: EventRing,
    depends_on: Callable[[], Mapping[str, Sequence[str]]],
    wall_time_ns: Callable[[], int] = convert.wall_time_ns,
) -> None:
    """Route the status page, its static files and the JSON API on ``router``.

    Args:
        router: The metrics port's router.
        manager: The components shown.
        breakers: The breakers shown (and followed for state-change events).
        events: The recent events shown.
        depends_on: Each configured component's parents, read at every request (a
            reload may change them).
        wall_time_ns: Stamps ``observed_at`` in the health and breaker documents.
    """

    def json_response(document: Mapping[str, object]) -> Response:
        return Response(200, encode(document), JSON_CONTENT_TYPE, SECURITY_HEADERS)

    def build_page() -> Response:
        events.follow_breakers()
        now = wall_time_ns()
        text = render_page(
            health_document(manager, now),
            breakers_document(breakers, now),
            events.as_json(),
            dependencies_document(depends_on),
            version=engined.__version__,
        )
        return Response(200, text.encode("utf-8"), HTML_CONTENT_TYPE, SECURITY_HEADERS)

    def build_breakers() -> Response:
        events.follow_breakers()
        return json_response(breakers_document(breakers, wall_time_ns()))

    def build_events() -> Response:
        events.follow_breakers()
        return json_response(events.as_json())

    async def page(request: Request) -> Response:
        return await asyncio.to_thread(build_page)

    async def health(request: Request) -> Response:
        return await asyncio.to_thread(
            lambda: json_response(health_document(manager, wall_time_ns()))
        )

    async def breaker_list(request: Request) -> Response:
        return await asyncio.to_thread(build_breakers)

    async def event_list(request: Request) -> Response:
        return await asyncio.to_thread(build_events)

    async def dependencies(request: Request) -> Response:
        return json_response(dependencies_document(depends_on))

    router.add("/", page)
    router.add("/api/v1/health", health)
    router.add("/api/v1/breakers", breaker_list)
    router.add("/api/v1/events", event_list)
    router.add("/api/v1/dependencies", dependencies)
    for name, content_type in STATIC.items():
        router.add(f"/static/{name}", _static_route(_static_file(name), content_type))


def _static_route(body: bytes, content_type: str) -> Handler:
    async def serve(request: Request) -> Response:
        return Response(200, body, content_type, SECURITY_HEADERS)

    return serve
