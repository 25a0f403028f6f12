"""A minimal HTTP/1.1 GET client on asyncio streams, for the ``http`` check.

Just enough to judge an endpoint: one request per connection (``Connection: close``), the
status line and headers read under caps, and the body read only when a check looks for
text in it, at most ``max_body`` bytes, through ``Content-Length``, chunked or
read-to-close framing. No third-party HTTP library: engined's runtime dependencies stay
grpc, protobuf, pydantic and prometheus-client (DESIGN.md §1).

Nothing here echoes a URL: user info (sent as Basic credentials) and query strings may
hold secrets, and failures are described in a few fixed words.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Final

from engined.checks._common import close_quietly, connect, describe_os_error, format_host_port

__all__ = ["HttpError", "Response", "Url", "open_response", "parse_url"]

MAX_HEADERS: Final = 100
"""Header lines a response may have before it is refused as malformed."""

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_READ_SIZE: Final = 16 * 1024
_UNSAFE: Final = frozenset(chr(code) for code in [*range(33), 127])  # controls and space


class HttpError(Exception):
    """The exchange failed; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Url:
    """A parsed http(s) URL: where to connect and what to ask for.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: The host name (IDNA-encoded, lowercase) or address (IPv6 without brackets).
        port: The port, the scheme's default filled in.
        target: The request target: path and query, ``/`` at least.
        authorization: ``Basic ...`` from the URL's user info, or ``None``.
    """

    scheme: str
    host: str
    port: int
    target: str
    authorization: str | None = None

    @property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port: what a redirect must keep to be followed."""
        return self.scheme, self.host, self.port

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the port only when it is not the scheme's default."""
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return f"[{self.host}]" if ":" in self.host else self.host
        return format_host_port(self.host, self.port)

    def follow(self, location: str) -> Url:
        """The URL a ``Location`` header points to, relative ones resolved against this one.

        The user info of ``location`` is ignored: the credentials stay this URL's, and are
        only ever sent to the same origin (the caller checks it).

        Raises:
            ValueError: ``location`` is not an http(s) URL.
        """
        base = f"{self.scheme}://{self.host_header}{self.target}"
        joined = parse_url("location", urllib.parse.urljoin(base, location.strip()))
        return replace(joined, authorization=self.authorization)

    def request(self) -> bytes:
        """The GET request for this URL, as bytes on the wire."""
        lines = [
            f"GET {self.target} HTTP/1.1",
            f"Host: {self.host_header}",
            "User-Agent: engined-check",
            "Accept: */*",
            "Accept-Encoding: identity",
            "Connection: close",
        ]
        if self.authorization is not None:
            lines.append(f"Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def parse_url(param: str, value: object) -> Url:
    """Parse an ``http://`` or ``https://`` URL with a host, checked as a config value.

    Non-ASCII path characters are percent-encoded; spaces and control characters are
    refused (they could split the request line). Error messages never echo the URL.

    Raises:
        TypeError: ``value`` is not a str.
        ValueError: It is no http(s) URL with a host and a valid port; names ``param``.
    """
    if not isinstance(value, str):
        msg = f"{param} must be a str URL, got {type(value).__name__}"
        raise TypeError(msg)
    if not value or any(char in _UNSAFE for char in value):
        msg = f"{param} must be a URL without spaces or control characters"
        raise ValueError(msg)
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
        hostname = parts.hostname
    except ValueError:
        msg = f"{param} is not a valid URL (bad host or port)"
        raise ValueError(msg) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        msg = f"{param} must start with http:// or https://"
        raise ValueError(msg)
    if not hostname:
        msg = f"{param} must name a host"
        raise ValueError(msg)
    if port == 0:
        msg = f"{param}: the port must be in 1..65535"
        raise ValueError(msg)
    try:
        host = hostname if ":" in hostname else hostname.encode("idna").decode("ascii")
    except UnicodeError:
        msg = f"{param}: the host name is not a valid (IDNA) name"
        raise ValueError(msg) from None
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    authorization = None
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    return Url(
        scheme=scheme,
        host=host.lower(),
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        target=f"{path}?{query}" if query else path,
        authorization=authorization,
    )


class Response:
    """A response whose status and headers were read; the body is read only on demand."""

    __slots__ = ("_reader", "headers", "status")

    def __init__(self, reader: _Reader, status: int, headers: dict[str, str]) -> None:
        self._reader = reader
        self.status = status
        self.headers = headers

    async def body_contains(self, needle: bytes, max_body: int) -> bool:
        """Whether ``needle`` occurs in the first ``max_body`` bytes of the body.

        Reading stops as soon as it is found, at ``max_body`` bytes, or at the body's end.
        """
        body = bytearray()
        try:
            async with aclosing(self._body(max_body)) as chunks:
                async for chunk in chunks:
                    start = max(0, len(body) - len(needle) + 1)
                    body += chunk
                    if body.find(needle, start) >= 0:
                        return True
        except OSError as exc:
            raise HttpError(describe_os_error(exc)) from None
        return False

    def _body(self, max_body: int) -> AsyncGenerator[bytes, None]:
        if 100 <= self.status < 200 or self.status in (204, 304):
            return self._reader.plain(0)
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._reader.chunked(max_body)
        length = self.headers.get("content-length")
        if length is None:
            return self._reader.plain(max_body)
        if not (length.isascii() and length.strip().isdigit()):
            msg = "malformed response (Content-Length)"
            raise HttpError(msg)
        return self._reader.plain(min(int(length), max_body))


class _Reader:
    """Reads a response's parts from a stream, refusing what breaks HTTP/1.1's framing."""

    __slots__ = ("_stream",)

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    async def line(self) -> bytes:
        try:
            line = await self._stream.readline()
        except ValueError:  # longer than the stream's limit
            msg = "malformed response (line too long)"
            raise HttpError(msg) from None
        if not line.endswith(b"\n"):
            msg = "connection closed before a full response"
            raise HttpError(msg)
        return line.rstrip(b"\r\n")

    async def head(self) -> tuple[int, dict[str, str]]:
        """The status and headers, skipping interim 1xx responses (but 101)."""
        while True:
            status = _status(await self.line())
            headers: dict[str, str] = {}
            for _ in range(MAX_HEADERS + 1):
                line = await self.line()
                if not line:
                    break
                name, colon, value = line.decode("latin-1").partition(":")
                if not colon or not name or name != name.strip():
                    msg = "malformed response (header)"
                    raise HttpError(msg)
                headers[name.lower()] = value.strip()
            else:
                msg = "malformed response (too many headers)"
                raise HttpError(msg)
            if not 100 <= status < 200 or status == 101:
                return status, headers

    async def plain(self, limit: int) -> AsyncGenerator[bytes, None]:
        remaining = limit
        while remaining > 0:
            chunk = await self._stream.read(min(remaining, _READ_SIZE))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    async def chunked(self, limit: int) -> AsyncGenerator[bytes, None]:
        remaining = limit
        while remaining > 0:
            size_text = (await self.line()).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                msg = "malformed response (chunk size)"
                raise HttpError(msg) from None
            if size == 0:
                return
            async for chunk in self.plain(min(size, remaining)):
                remaining -= len(chunk)
                yield chunk
            if remaining > 0:
                await self.line()  # the CRLF after the chunk's data


def _status(line: bytes) -> int:
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit() or rest[3:4] not in (b"", b" "):
        msg = "malformed response (status line)"
        raise HttpError(msg)
    return int(code)


@asynccontextmanager
async def open_response(url: Url, ssl_context: ssl.SSLContext | None) -> AsyncIterator[Response]:
    """Send a GET for ``url`` and yield the response once its head is read; then close.

    Raises:
        ConnectError: The connection could not be opened (TLS handshake included).
        HttpError: The exchange failed or the response is malformed.
    """
    stream, writer = await connect(
        url.host,
        url.port,
        ssl_context=ssl_context if url.scheme == "https" else None,
        server_hostname=url.host,
    )
    try:
        try:
            writer.write(url.request())
            await writer.drain()
            status, headers = await _Reader(stream).head()
        except OSError as exc:
            raise HttpError(describe_os_error(exc)) from None
        yield Response(_Reader(stream), status, headers)
    finally:
        await close_quietly(writer, abort=True)
