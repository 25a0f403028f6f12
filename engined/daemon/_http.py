"""A small asyncio HTTP/1.1 server and router for the daemon's metrics port (stdlib only).

The daemon serves a handful of read-only endpoints (``/metrics``, ``/healthz``,
``/readyz``, the status page and its JSON API), to scrapers, probes and people on a
trusted network. So this is deliberately small: GET and HEAD, one request per connection
(``Connection: close``), no request bodies, headers capped at 16 KiB and read within 10 s
(a slow or idle client cannot hold a connection), paths matched exactly, the query string
passed to the handler. Add a route with :meth:`Router.add`; a handler is an async function
of a :class:`Request` returning a :class:`Response`. A handler that raises is answered 500
and logged; it never takes the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

__all__ = ["HttpServer", "Request", "Response", "Router"]

_log = logging.getLogger("engined.daemon.http")

MAX_HEAD = 16 * 1024
READ_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler gets: the method, the path, the query and the headers (lower-case)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler returns; ``body`` is bytes, sent with ``Content-Length``."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        """A plain-text response (a line ending is added)."""
        return cls(status, (text + "\n").encode())


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Exact paths to handlers, per method; HEAD is served by the GET handler."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}

    def add(self, path: str, handler: Handler, *, methods: tuple[str, ...] = ("GET",)) -> None:
        """Serve ``path`` with ``handler`` for ``methods``.

        Raises:
            ValueError: The path does not start with ``/`` or is taken for a method.
        """
        if not path.startswith("/"):
            msg = f"a route path starts with '/', got {path!r}"
            raise ValueError(msg)
        by_method = self._routes.setdefault(path, {})
        for method in methods:
            if method in by_method:
                msg = f"{method} {path} is already routed"
                raise ValueError(msg)
            by_method[method] = handler

    @property
    def paths(self) -> list[str]:
        """Every routed path, sorted."""
        return sorted(self._routes)

    async def dispatch(self, request: Request) -> Response:
        """The handler's response, 404 for an unknown path, 405 for an unrouted method."""
        by_method = self._routes.get(request.path)
        if by_method is None:
            return Response.text(404, f"not found; try {', '.join(self.paths)}")
        method = "GET" if request.method == "HEAD" else request.method
        handler = by_method.get(method)
        if handler is None:
            allowed = sorted({*by_method, *(["HEAD"] if "GET" in by_method else [])})
            return Response(405, b"method not allowed\n", headers={"Allow": ", ".join(allowed)})
        try:
            return await handler(request)
        except Exception:
            _log.exception("HTTP handler for %s failed", request.path)
            return Response.text(500, "internal error")


class HttpServer:
    """Serves a :class:`Router` on one address until :meth:`close`.

    Args:
        router: The routes.
        host: The address to bind.
        port: The port; 0 picks a free one (read :attr:`port` after :meth:`start`).
        read_timeout: Seconds a client has to send its request head, and to take the
            response.
    """

    def __init__(
        self, router: Router, host: str, port: int, *, read_timeout: float = READ_TIMEOUT
    ) -> None:
        self._router = router
        self._read_timeout = read_timeout
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None or not self._server.sockets:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind and start accepting.

        Raises:
            OSError: The address cannot be bound (in use, not local...).
        """
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_HEAD
        )

    async def close(self) -> None:
        """Stop accepting and end the open connections at once."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            response, head_only = await self._answer(reader)
            writer.write(_encode(response, head_only=head_only))
            await asyncio.wait_for(writer.drain(), timeout=self._read_timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
            if task is not None:
                self._connections.discard(task)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=self._read_timeout)
        except asyncio.LimitOverrunError:
            return Response.text(431, "request header fields too large"), False
        request = _parse(head)
        if request is None:
            return Response.text(400, "bad request"), False
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"method not allowed\n", headers={"Allow": "GET, HEAD"}), False
        return await self._router.dispatch(request), request.method == "HEAD"


def _parse(head: bytes) -> Request | None:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    parts = urlsplit(target)
    return Request(method, parts.path, parse_qs(parts.query), headers)


def _encode(response: Response, *, head_only: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        "Cache-Control: no-store",
    ]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body
