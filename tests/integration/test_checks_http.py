"""HttpCheck against a tiny asyncio HTTP/1.1 server the test runs on loopback.

The server routes by path and records every request it gets, so a test can tell which
redirects were followed. Handlers that hang wait on an event the fixture sets at the end;
every connection is closed before the loop ends (a ResourceWarning fails the suite).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engined import ComponentType, HealthCheckManager, HealthStatus
from engined.checks import HttpCheck

pytestmark = pytest.mark.integration

_FILLER = b"x" * 70_000  # more than the 64 KiB the check reads


@dataclass
class Web:
    """A server on an ephemeral port; ``requests`` holds (target, headers) in order."""

    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # a client left /hang

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def paths(self) -> list[str]:
        return [target for target, _ in self.requests]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.lower()] = value.strip()
            self.requests.append((target, headers))
            await self.route(target, headers, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def route(
        self,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        other = f"http://localhost:{self.port}"  # same server, another host name
        redirects = {
            "/moved": "/ok",
            "/moved-absolute": f"{self.base}/ok",
            "/elsewhere": f"{other}/ok",
            "/to-https": f"https://127.0.0.1:{self.port}/ok",
            "/loop": "/loop",
        }
        if target in redirects:
            await _send(writer, 302, b"", [f"Location: {redirects[target]}"])
        elif target == "/ok":
            await _send(writer, 200, b"status: all good\n")
        elif target.startswith("/status/"):
            await _send(writer, int(target.removeprefix("/status/")), b"")
        elif target == "/auth":
            good = headers.get("authorization") == "Basic YXBwOnMzY3JldA=="  # app:s3cret
            await _send(writer, 200 if good else 401, b"")
        elif target == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"3\r\nsta\r\n6\r\ntus:up\r\n0\r\n\r\n")
            await writer.drain()
        elif target in ("/endless", "/endless-needle-late", "/needle-then-hang"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            if target == "/needle-then-hang":
                writer.write(b"needle")
            writer.write(_FILLER)
            if target == "/endless-needle-late":
                writer.write(b"needle")
            await writer.drain()
            await self.release.wait()  # the body never ends
        elif target == "/hang":  # answers nothing; notices when the client goes away
            with contextlib.suppress(ConnectionError):
                await reader.read()
            self.hung_up.set()
        else:
            await _send(writer, 404, b"")


async def _send(
    writer: asyncio.StreamWriter, status: int, body: bytes, extra: list[str] | None = None
) -> None:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *(extra or [])]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()


@contextlib.asynccontextmanager
async def _serving(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Web]:
    web = Web()
    server = await asyncio.start_server(web.handle, "127.0.0.1", 0, ssl=ssl_context)
    web.port = server.sockets[0].getsockname()[1]
    try:
        yield web
    finally:
        web.release.set()
        server.close()
        await server.wait_closed()
        if web.handlers:
            await asyncio.wait(web.handlers, timeout=5)


@pytest.fixture
async def web() -> AsyncIterator[Web]:
    """The plain-HTTP test server."""
    async with _serving() as served:
        yield served


async def test_a_2xx_answer_is_healthy_with_status_and_latency(web: Web) -> None:
    """200 is inside the default 200-399 range: HEALTHY, "HTTP 200", latency in details."""
    result = await HttpCheck(f"{web.base}/ok")()
    assert result.status is HealthStatus.HEALTHY
    assert result.message == "HTTP 200"
    assert result.component_type is ComponentType.EXTERNAL_API
    assert result.details["status_code"] == 200
    assert result.details["latency_ms"] >= 0
    (_, headers), *_ = web.requests
    assert headers["host"] == f"127.0.0.1:{web.port}"
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    ("path", "expect", "status", "message"),
    [
        ("/status/503", (200, 399), HealthStatus.UNHEALTHY, "HTTP 503, expected 200-399"),
        ("/status/404", (200, 399), HealthStatus.UNHEALTHY, "HTTP 404, expected 200-399"),
        ("/status/204", (200, 204), HealthStatus.HEALTHY, "HTTP 204"),
        ("/status/304", (200, 399), HealthStatus.HEALTHY, "HTTP 304"),
        ("/status/503", (503, 503), HealthStatus.HEALTHY, "HTTP 503"),
        ("/ok", (201, 299), HealthStatus.UNHEALTHY, "HTTP 200, expected 201-299"),
    ],
)
async def test_the_status_range_is_inclusive_and_named_on_failure(
    web: Web, path: str, expect: tuple[int, int], status: HealthStatus, message: str
) -> None:
    """A status inside expect_status passes; outside it is UNHEALTHY naming status and range."""
    result = await HttpCheck(f"{web.base}{path}", expect_status=expect)()
    assert (result.status, result.message) == (status, message)


@pytest.mark.parametrize(
    ("path", "needle", "status"),
    [
        ("/ok", "all good", HealthStatus.HEALTHY),
        ("/ok", "all bad", HealthStatus.UNHEALTHY),
        ("/chunked", "status:up", HealthStatus.HEALTHY),
    ],
)
async def test_body_contains_is_looked_for_in_the_body(
    web: Web, path: str, needle: str, status: HealthStatus
) -> None:
    """With body_contains, a passing status also needs the text in the body (chunks too)."""
    result = await HttpCheck(f"{web.base}{path}", body_contains=needle)()
    assert result.status is status
    if status is HealthStatus.UNHEALTHY:
        assert result.message == "HTTP 200 but the expected text is not in the body"


async def test_a_body_that_never_ends_is_read_only_up_to_the_cap(web: Web) -> None:
    """An endless body stops being read after 64 KiB: text beyond it counts as absent."""
    async with asyncio.timeout(5):
        result = await HttpCheck(f"{web.base}/endless-needle-late", body_contains="needle")()
    assert result.status is HealthStatus.UNHEALTHY
    assert "not in the body" in result.message


async def test_reading_stops_once_the_text_is_found(web: Web) -> None:
    """Text early in a body that never ends is found without waiting for the end."""
    async with asyncio.timeout(5):
        result = await HttpCheck(f"{web.base}/needle-then-hang", body_contains="needle")()
    assert result.status is HealthStatus.HEALTHY


async def test_without_body_contains_the_body_is_not_read(web: Web) -> None:
    """Only the head decides when no text is looked for: an endless body does not matter."""
    async with asyncio.timeout(5):
        result = await HttpCheck(f"{web.base}/endless")()
    assert result.status is HealthStatus.HEALTHY


@pytest.mark.parametrize("path", ["/moved", "/moved-absolute"])
async def test_a_redirect_on_the_same_origin_is_followed(web: Web, path: str) -> None:
    """A relative or absolute Location on the same scheme, host and port is followed."""
    result = await HttpCheck(f"{web.base}{path}", body_contains="all good")()
    assert result.status is HealthStatus.HEALTHY
    assert result.details["redirects"] == 1
    assert web.paths == [path, "/ok"]


async def test_a_redirect_to_another_host_is_refused_and_not_followed(web: Web) -> None:
    """A Location naming another host is UNHEALTHY and never requested."""
    result = await HttpCheck(f"{web.base}/elsewhere")()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "redirect to another host"
    assert web.paths == ["/elsewhere"]


async def test_a_redirect_to_another_scheme_is_refused(web: Web) -> None:
    """A redirect from http to https on the same host is another origin: not followed."""
    result = await HttpCheck(f"{web.base}/to-https")()
    assert result.message == "redirect to another scheme or port"
    assert web.paths == ["/to-https"]


async def test_a_redirect_loop_gives_up_after_five_hops(web: Web) -> None:
    """A Location pointing to itself is followed five times, then UNHEALTHY."""
    result = await HttpCheck(f"{web.base}/loop")()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "too many redirects (more than 5)"
    assert web.paths == ["/loop"] * 6


async def test_url_credentials_are_sent_but_never_shown(web: Web) -> None:
    """User info becomes Basic credentials; neither message nor repr holds the password."""
    check = HttpCheck(f"http://app:s3cret@127.0.0.1:{web.port}/auth")
    result = await check()
    assert result.status is HealthStatus.HEALTHY
    failing = await HttpCheck(f"http://app:wrong@127.0.0.1:{web.port}/auth")()
    assert failing.message == "HTTP 401, expected 200-399"
    assert "s3cret" not in repr(check)
    assert "s3cret" not in repr(result)


async def test_a_closed_port_is_unhealthy_connection_refused() -> None:
    """Nothing listening: UNHEALTHY "connection refused", no exception."""
    async with _serving() as served:
        url = f"{served.base}/ok"
    result = await HttpCheck(url)()
    assert (result.status, result.message) == (HealthStatus.UNHEALTHY, "connection refused")


async def test_a_server_that_hangs_times_out_in_the_manager(web: Web) -> None:
    """A server that never answers is cut by the manager's timeout: UNHEALTHY "timeout"."""
    manager = HealthCheckManager()
    manager.register("api", HttpCheck(f"{web.base}/hang"), timeout=0.3)
    health = await manager.run_check("api")
    assert health.status is HealthStatus.UNHEALTHY
    assert health.last_result is not None
    assert health.last_result.error == "timeout"
    async with asyncio.timeout(2):
        await web.hung_up.wait()  # the cancelled check dropped its connection at once


async def test_a_server_that_is_not_http_is_unhealthy() -> None:
    """A peer that answers with something else is a malformed response, not a crash."""

    async def ssh(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(ssh, "127.0.0.1", 0)
    try:
        result = await HttpCheck(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/")()
    finally:
        server.close()
        await server.wait_closed()
    assert result.message == "malformed response (status line)"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1 it signed, made by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cwd = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=cwd,
    )  # fmt: skip
    (cwd / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=server",
        cwd=cwd,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=cwd,
    )  # fmt: skip
    return cwd


def _server_context(pki: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    return context


async def test_https_with_a_trusted_certificate_is_healthy(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the test CA as the default trust (SSL_CERT_FILE), an https GET passes."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    async with _serving(_server_context(pki)) as served:
        result = await HttpCheck(f"https://127.0.0.1:{served.port}/ok", body_contains="good")()
    assert result.status is HealthStatus.HEALTHY


async def test_a_cancelled_https_check_drops_its_connection_at_once(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut by the manager's timeout, an https check lets go of its connection at once."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    async with _serving(_server_context(pki)) as served:
        manager = HealthCheckManager()
        manager.register("api", HttpCheck(f"https://127.0.0.1:{served.port}/hang"), timeout=0.3)
        health = await manager.run_check("api")
        assert health.last_result is not None
        assert health.last_result.error == "timeout"
        async with asyncio.timeout(2):
            await served.hung_up.wait()


async def test_https_stops_reading_an_endless_body_without_waiting_for_its_end(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text found early in an endless https body: the check returns without its end."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    async with _serving(_server_context(pki)) as served:
        check = HttpCheck(
            f"https://127.0.0.1:{served.port}/needle-then-hang", body_contains="needle"
        )
        async with asyncio.timeout(5):
            result = await check()
    assert result.status is HealthStatus.HEALTHY


async def test_https_with_an_untrusted_certificate_is_unhealthy(pki: Path) -> None:
    """A certificate the system does not trust fails verification: UNHEALTHY, saying so."""
    async with _serving(_server_context(pki)) as served:
        result = await HttpCheck(f"https://127.0.0.1:{served.port}/ok")()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message.startswith("TLS certificate not trusted")
    assert served.requests == []
