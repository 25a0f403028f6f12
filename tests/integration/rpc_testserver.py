"""A scriptable grpc.aio test server for the client interceptors: bytes in, bytes out, no protos.

Every method of service ``test.Scripted`` (``Unary``, ``ServerStream``, ``ClientStream``,
``Bidi``: all four arities) follows a *plan* sent as request metadata ``x-plan`` (JSON, made
by :func:`plan`). Attempts are counted per plan ``key``, so attempt n of a retried call
follows entry n of each per-attempt list (the last entry repeats):

* ``statuses``: the status each attempt ends with (names, ``"OK"`` by default);
* ``delays``: seconds each attempt waits before answering;
* ``pushback``: the ``grpc-retry-pushback-ms`` trailing value each attempt sends (or null);
* ``messages``: how many response messages each attempt of a streaming response sends
  before its status (a failure after N messages is ``messages=[N]`` with a failing status).

The server records every attempt it saw (:class:`Seen`): the ``grpc-previous-rpc-attempts``
it was sent, the time the caller left it and how many request messages arrived. Run it in
the test's event loop (:func:`serving`), in a background thread for sync clients
(:class:`ServerThread`), or as a subprocess: ``python rpc_testserver.py`` prints its port
and serves until it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from engined.testing import FakeClock

SERVICE = "test.Scripted"
UNARY = f"/{SERVICE}/Unary"
SERVER_STREAM = f"/{SERVICE}/ServerStream"
CLIENT_STREAM = f"/{SERVICE}/ClientStream"
BIDI = f"/{SERVICE}/Bidi"
PLAN_KEY = "x-plan"
PUSHBACK_KEY = "grpc-retry-pushback-ms"
PREVIOUS_KEY = "grpc-previous-rpc-attempts"
NO_DEADLINE = 1e6  # time_remaining() above this means the caller set none (grpc/grpc#9423)


def plan(
    key: str,
    statuses: Sequence[str] = ("OK",),
    *,
    delays: Sequence[float] = (0.0,),
    pushback: Sequence[str | None] = (None,),
    messages: Sequence[int] = (1,),
) -> tuple[tuple[str, str], ...]:
    """Request metadata telling the server what each attempt of call ``key`` does."""
    body = {
        "key": key,
        "statuses": list(statuses),
        "delays": list(delays),
        "pushback": list(pushback),
        "messages": list(messages),
    }
    return ((PLAN_KEY, json.dumps(body)),)


@dataclass(frozen=True)
class Seen:
    """One attempt as the server saw it."""

    method: str
    previous_attempts: str | None  # the grpc-previous-rpc-attempts value, None when absent
    time_remaining: float | None  # seconds the caller left, None without a deadline
    requests: int  # request messages received (1 for unary requests)


@dataclass
class Scripted:
    """The server's behaviour and its records; thread-safe for a reader in another thread."""

    seen: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempts(self, key: str) -> list[Seen]:
        """The attempts seen for ``key``, in order."""
        with self.lock:
            return list(self.seen.get(key, ()))

    def total(self) -> int:
        """Attempts seen for every key."""
        with self.lock:
            return sum(len(v) for v in self.seen.values())

    def _begin(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], requests: int
    ) -> tuple[dict[str, Any], int]:
        metadata = dict(context.invocation_metadata() or ())
        body = json.loads(metadata.get(PLAN_KEY, '{"key": "-"}'))
        remaining = context.time_remaining()
        previous = metadata.get(PREVIOUS_KEY)
        seen = Seen(
            method=method,
            previous_attempts=None if previous is None else str(previous),
            time_remaining=None if remaining is None or remaining > NO_DEADLINE else remaining,
            requests=requests,
        )
        with self.lock:
            self.seen[body["key"]].append(seen)
            attempt = len(self.seen[body["key"]])
        return body, attempt

    async def _finish(
        self, body: dict[str, Any], attempt: int, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        status = _nth(body.get("statuses", ["OK"]), attempt)
        pushback = _nth(body.get("pushback", [None]), attempt)
        if pushback is not None:
            context.set_trailing_metadata(((PUSHBACK_KEY, pushback),))
        if status != "OK":
            await context.abort(grpc.StatusCode[status], f"scripted {status} on attempt {attempt}")

    async def _wait(self, body: dict[str, Any], attempt: int) -> None:
        delay = float(_nth(body.get("delays", [0.0]), attempt))
        if delay > 0:
            await asyncio.sleep(delay)  # noqa: TID251 - the server delays in real time on purpose

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        body, attempt = self._begin(UNARY, context, 1)
        await self._wait(body, attempt)
        await self._finish(body, attempt, context)
        return b"reply:" + request

    async def server_stream(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        body, attempt = self._begin(SERVER_STREAM, context, 1)
        await self._wait(body, attempt)
        for index in range(int(_nth(body.get("messages", [1]), attempt))):
            yield f"message:{index}".encode()
        await self._finish(body, attempt, context)

    async def client_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        received = [request async for request in requests]
        body, attempt = self._begin(CLIENT_STREAM, context, len(received))
        await self._wait(body, attempt)
        await self._finish(body, attempt, context)
        return b"reply:" + b",".join(received)

    async def bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        received = [request async for request in requests]
        body, attempt = self._begin(BIDI, context, len(received))
        await self._wait(body, attempt)
        for index in range(int(_nth(body.get("messages", [1]), attempt))):
            yield f"message:{index}".encode()
        await self._finish(body, attempt, context)

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving ``test.Scripted``, bytes in and out."""
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            },
        )


def _nth(values: Sequence[Any], attempt: int) -> Any:
    return values[min(attempt, len(values)) - 1]


@dataclass
class Running:
    """A started server: its address, its records, and how to stop it."""

    server: grpc.aio.Server
    port: int
    scripted: Scripted

    @property
    def target(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"


async def start(scripted: Scripted | None = None) -> Running:
    """Start a server on 127.0.0.1, port 0, in the running event loop."""
    scripted = scripted or Scripted()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((scripted.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return Running(server, port, scripted)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Running]:
    """A server in the running loop for the block's duration."""
    running = await start()
    try:
        yield running
    finally:
        await running.server.stop(None)


class ServerThread:
    """The server in a background thread with its own event loop, for sync clients."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rpc-testserver")
        self.running: Running | None = None

    def __enter__(self) -> Running:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(start(), self._loop)
        self.running = future.result(timeout=10)
        return self.running

    def __exit__(self, *exc_info: object) -> None:
        if self.running is not None:
            stop = self.running.server.stop(None)
            asyncio.run_coroutine_threadsafe(stop, self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def raw(channel: grpc.aio.Channel | grpc.Channel, method: str) -> Any:
    """The multi-callable for ``method`` on ``channel``, bytes in and bytes out."""
    kind = {
        UNARY: channel.unary_unary,
        SERVER_STREAM: channel.unary_stream,
        CLIENT_STREAM: channel.stream_unary,
        BIDI: channel.stream_stream,
    }[method]
    return kind(method, request_serializer=bytes, response_deserializer=bytes)


def closed_port() -> int:
    """A loopback port nobody listens on: connecting to it is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def yield_to_loop(times: int = 1) -> None:
    """Let other tasks run, without sleeping on the real clock."""
    clock = FakeClock()
    for _ in range(times):
        await clock.sleep_async(0)


def iterate(requests: Sequence[bytes]) -> Iterator[bytes]:
    """A one-shot request iterator: it cannot be sent twice."""
    yield from requests


async def _serve_forever() -> None:
    running = await start()
    print(running.port, flush=True)
    await running.server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(asyncio.run(_serve_forever()))
