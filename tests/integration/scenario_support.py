"""Loopback stand-ins for an engine daemon's external systems: a line database, an HTTP service.

Both are real asyncio TCP servers on 127.0.0.1 that a test starts, stops and restarts on the
same port, so the code under test (engined's breakers, timeouts, checks and heals) talks to
real sockets. They are fakes only of the external system: nothing of engined is replaced.

The database speaks one line each way: ``GET <key>`` is answered ``OK <key>`` or
``ERR <why>``. Its ``mode`` says how it answers: ``"answer"``; ``"silent"`` (it accepts and
reads the request but never answers, a network timeout); ``"alternate"`` (every second request
gets ``ERR``, a 50 % partial failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["answer", "silent", "alternate"]


class DbError(Exception):
    """The database answered with ``ERR``: it is up, but the query failed."""


class LoopbackDb:
    """A line-protocol database server on loopback that can go away and come back."""

    def __init__(self, mode: Mode = "answer") -> None:
        self.mode: Mode = mode
        self.port = 0
        self.connections = 0  # connections accepted, over every start
        self.requests = 0  # request lines read, over every start
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._seen = asyncio.Condition()

    @property
    def running(self) -> bool:
        """Whether it listens now."""
        return self._server is not None

    async def __aenter__(self) -> LoopbackDb:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on the port it had before (a restart), or on a free one the first time."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def wait_requests(self, count: int) -> None:
        """Until ``count`` requests in all have been read."""
        async with self._seen:
            await self._seen.wait_for(lambda: self.requests >= count)

    async def stop(self) -> None:
        """Stop listening and drop every open connection: the database went away."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()
        for _ in range(3):  # let the aborted connections' handlers see their EOF and end
            await asyncio.sleep(0)  # noqa: TID251 - a zero sleep yields to the loop

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                self.requests += 1
                async with self._seen:
                    self._seen.notify_all()
                if self.mode == "silent":
                    await reader.read()  # never answer; wait for the client to go
                    return
                if self.mode == "alternate" and self.requests % 2 == 0:
                    writer.write(b"ERR query failed\n")
                else:
                    writer.write(b"OK " + line.removeprefix(b"GET ").strip() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def _reply(line: bytes) -> str:
    if not line:
        msg = "the database closed the connection"
        raise ConnectionError(msg)
    text = line.decode().strip()
    if text.startswith("ERR"):
        raise DbError(text)
    return text.removeprefix("OK ")


async def query_once(port: int, key: str) -> str:
    """One request on a fresh connection: connect, send, read the answer, close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {key}\n".encode())
        await writer.drain()
        return _reply(await reader.readline())
    finally:
        writer.close()


class DbConnection:
    """A client holding one TCP connection to the database, as a driver's connection does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connects = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        """Whether it holds a connection (which may have been lost without its knowing)."""
        return self._writer is not None

    async def connect(self) -> None:
        """Open a new connection, dropping the old one (ConnectionError while the db is down)."""
        self.close()
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.connects += 1

    async def get(self, key: str) -> str:
        """One request on the held connection; a lost connection raises ConnectionError."""
        if self._reader is None or self._writer is None:
            msg = "not connected"
            raise ConnectionError(msg)
        try:
            self._writer.write(f"GET {key}\n".encode())
            await self._writer.drain()
            return _reply(await self._reader.readline())
        except ConnectionError:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection if there is one."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()


class LoopbackHttp:
    """A tiny HTTP service on loopback answering ``GET /healthz`` with 200 ``ok``."""

    def __init__(self) -> None:
        self.port = 0
        self.starts = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Its health URL."""
        return f"http://127.0.0.1:{self.port}/healthz"

    async def start(self) -> None:
        """Listen on its old port (a restart), or a free one the first time."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.starts += 1

    async def stop(self) -> None:
        """Stop listening: the service is unavailable."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while (await reader.readline()).strip():
                pass  # the request line and headers
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()
