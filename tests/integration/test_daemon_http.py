"""The metrics port: the small HTTP server and router, and the daemon's three endpoints.

The router tests run the server in the test's loop on a free port and talk to it with
raw sockets (to send what a well-behaved client would not); the endpoint tests read a
daemon subprocess with ``http.client``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from daemon_support import cli, http_get, running, wait_for, write

from engined.daemon._http import HttpServer, Request, Response, Router

pytestmark = pytest.mark.integration


async def hello(request: Request) -> Response:
    name = request.query.get("name", ["world"])[0]
    return Response.text(200, f"hello {name}")


async def broken(request: Request) -> Response:
    raise RuntimeError("handler bug")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    """A server on 127.0.0.1 with /hello and /broken, a 0.3 s read timeout."""
    router = Router()
    router.add("/hello", hello)
    router.add("/broken", broken)
    running = HttpServer(router, "127.0.0.1", 0, read_timeout=0.3)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


async def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw``, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_a_route_answers_with_length_and_close(server: HttpServer) -> None:
    """GET /hello?name=x is 200 with Content-Length, Connection: close and the body."""
    reply = await exchange(server.port, b"GET /hello?name=x HTTP/1.1\r\nHost: a\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 8\r\n" in head + b"\r\n"
    assert b"Connection: close" in head
    assert body == b"hello x\n"


async def test_head_sends_the_headers_only(server: HttpServer) -> None:
    """HEAD is served by the GET handler, without the body."""
    reply = await exchange(server.port, b"HEAD /hello HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 12\r\n" in reply
    assert reply.endswith(b"\r\n\r\n")


async def test_unknown_paths_and_methods_are_404_and_405(server: HttpServer) -> None:
    """An unknown path lists the known ones; POST is 405 with an Allow header."""
    missing = await exchange(server.port, b"GET /nope HTTP/1.1\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 404 Not Found")
    assert missing.endswith(b"not found; try /broken, /hello\n")
    post = await exchange(server.port, b"POST /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405 Method Not Allowed")
    assert b"Allow: GET, HEAD" in post


async def test_garbage_and_oversized_heads_are_refused(server: HttpServer) -> None:
    """A malformed request line is 400; a head past 16 KiB is 431."""
    assert (await exchange(server.port, b"HELLO\r\n\r\n")).startswith(b"HTTP/1.1 400")
    big = b"GET /hello HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    assert (await exchange(server.port, big)).startswith(b"HTTP/1.1 431")


async def test_a_failing_handler_is_500_and_logged(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that raises answers 500 without its text; the server goes on serving."""
    with caplog.at_level(logging.ERROR, logger="engined.daemon.http"):
        reply = await exchange(server.port, b"GET /broken HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 500")
    assert b"handler bug" not in reply
    assert "HTTP handler for /broken failed" in caplog.text
    assert (await exchange(server.port, b"GET /hello HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")


async def test_an_idle_client_is_dropped_after_the_read_timeout(server: HttpServer) -> None:
    """A client that never sends its head is disconnected, unanswered, after the timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()


def test_routes_are_checked_when_added() -> None:
    """A path without '/' or routed twice is refused."""
    router = Router()
    router.add("/a", hello)
    with pytest.raises(ValueError, match="already routed"):
        router.add("/a", hello)
    with pytest.raises(ValueError, match="starts with '/'"):
        router.add("a", hello)


CONFIG = """\
[server]
drain = 2.0

[[checks]]
name = "flip"
type = "command"
command = ["sh", "-c", "test -e {down} && exit 2 || exit 0"]
interval = 0.3
"""


def test_healthz_readyz_and_metrics_of_a_daemon(tmp_path: Path) -> None:
    """/healthz 200; /readyz 200 when healthy, 503 unhealthy and while draining; /metrics text."""
    down = tmp_path / "down"
    config = write(tmp_path / "engined.toml", CONFIG.format(down=down))
    with running(config, tmp_path) as daemon:
        port = daemon.metrics_port
        daemon.wait_event("transition", component="flip", to="healthy")
        assert http_get(port, "/healthz")[0] == 200
        status, _, body = http_get(port, "/readyz")
        assert (status, body) == (200, b"ready: healthy\n")
        down.touch()
        daemon.wait_event("transition", component="flip", to="unhealthy")
        assert http_get(port, "/readyz")[:3:2] == (503, b"not ready: unhealthy\n")
        assert cli("status", "--target", daemon.target).returncode == 0
        status, headers, body = http_get(port, "/metrics")
        assert status == 200
        assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = body.decode("utf-8")
        one_hot = 'engined_health_status{component="flip",component_type="custom",status="%s"}'
        assert f"{one_hot % 'unhealthy'} 1.0" in text
        assert f"{one_hot % 'healthy'} 0.0" in text
        assert 'engined_health_overall_status{status="unhealthy"} 1.0' in text
        handled = [
            line
            for line in text.splitlines()
            if line.startswith("grpc_server_handled_total{")
            and 'grpc_method="GetSystemHealth"' in line
            and 'grpc_code="OK"' in line
        ]
        assert handled, "the daemon's own RPCs are counted"
        assert float(handled[0].rsplit(" ", 1)[1]) >= 1
        down.unlink()
        daemon.wait_event("transition", component="flip", **{"from": "unhealthy"}, to="healthy")
        assert http_get(port, "/readyz")[0] == 200
        daemon.signal(signal.SIGTERM)
        daemon.wait_event("draining")
        assert http_get(port, "/readyz")[:3:2] == (503, b"not ready: shutting down\n")
        assert http_get(port, "/healthz")[0] == 200  # alive while it drains
        assert wait_for(lambda: daemon.proc.poll() is not None, within=10)
        assert daemon.proc.returncode == 0
