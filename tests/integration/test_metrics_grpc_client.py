"""grpc_client_* metrics from GrpcClientMetrics against a real server on 127.0.0.1.

The scripted test server (rpc_testserver) answers every arity as each call's plan says.
The metrics interceptors go first on the channel, engined.rpc's after them, so a call that
engined retries is one logical call: started once, handled once, with the final status.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from prometheus_client import CollectorRegistry
from rpc_testserver import (
    BIDI,
    CLIENT_STREAM,
    SERVER_STREAM,
    UNARY,
    Running,
    ServerThread,
    iterate,
    plan,
    raw,
    serving,
)

import engined.rpc
from engined import default_registry
from engined.metrics import GrpcClientMetrics
from engined.rpc import RpcPolicy
from engined.testing import FakeClock

pytestmark = pytest.mark.integration

TYPES = {UNARY: "unary", SERVER_STREAM: "server_stream", CLIENT_STREAM: "client_stream"}
TYPES[BIDI] = "bidi_stream"
ARITIES = list(TYPES)
RETRY = RpcPolicy(retry={"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.01})
NO_RETRY = RpcPolicy(retry=None)
NO_GRPC_RETRIES = (("grpc.enable_retries", 0),)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    default_registry().clear()
    yield
    default_registry().clear()


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with serving() as running:
        yield running


class Client:
    """GrpcClientMetrics and a view of its samples."""

    def __init__(self) -> None:
        self.metrics = GrpcClientMetrics()
        self.registry = CollectorRegistry()
        self.registry.register(self.metrics)

    def sample(self, name: str, method: str, **labels: str) -> float:
        """One sample of ``method``'s series (0 when absent)."""
        service, short = method.strip("/").split("/")
        full = {"grpc_type": TYPES[method], "grpc_service": service, "grpc_method": short}
        return self.registry.get_sample_value(name, {**full, **labels}) or 0.0

    def handled(self, method: str) -> dict[str, float]:
        """handled_total of ``method`` by code, zeros left out."""
        service, short = method.strip("/").split("/")
        found: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == "grpc_client_handled_total"
                    and labels["grpc_method"] == short
                    and labels["grpc_service"] == service
                    and sample.value
                ):
                    found[labels["grpc_code"]] = sample.value
        return found


def _aio_channel(client: Client, server: Running, policy: RpcPolicy | None = None) -> Any:
    interceptors = list(client.metrics.aio_interceptors())
    if policy is not None:
        target = server.target
        interceptors += engined.rpc.aio_interceptors(policy, target=target, clock=FakeClock())
    return grpc.aio.insecure_channel(
        server.target, interceptors=interceptors, options=NO_GRPC_RETRIES
    )


async def _call(channel: Any, method: str, metadata: Any) -> tuple[grpc.StatusCode, int]:
    """One call of ``method``'s arity with two resendable requests; its code and replies."""
    stub = raw(channel, method)
    got: list[bytes] = []
    try:
        if method == UNARY:
            got.append(await stub(b"a", metadata=metadata, timeout=10))
        elif method == CLIENT_STREAM:
            got.append(await stub([b"a", b"b"], metadata=metadata, timeout=10))
        else:
            requests = b"a" if method == SERVER_STREAM else [b"a", b"b"]
            async for message in stub(requests, metadata=metadata, timeout=10):
                got.append(message)
    except grpc.aio.AioRpcError as error:
        return error.code(), len(got)
    return grpc.StatusCode.OK, len(got)


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)  # noqa: TID251 - the server runs on real time
    raise AssertionError("condition not met in time")


SENT = {UNARY: 1, SERVER_STREAM: 1, CLIENT_STREAM: 2, BIDI: 2}


@pytest.mark.parametrize("method", ARITIES)
async def test_aio_calls_count_start_end_time_and_messages(server: Running, method: str) -> None:
    """An OK call of each arity: started 1, handled OK 1, one timing, every message counted."""
    client = Client()
    async with _aio_channel(client, server) as channel:
        code, replies = await _call(channel, method, plan(f"ok-{method}", messages=[3]))
    assert code is grpc.StatusCode.OK
    assert client.sample("grpc_client_started_total", method) == 1.0
    assert client.handled(method) == {"OK": 1.0}
    assert client.sample("grpc_client_handling_seconds_count", method) == 1.0
    assert client.sample("grpc_client_msg_sent_total", method) == SENT[method]
    assert client.sample("grpc_client_msg_received_total", method) == replies


@pytest.mark.parametrize("method", ARITIES)
@pytest.mark.parametrize(("status", "label"), [("NOT_FOUND", "NotFound"), ("INTERNAL", "Internal")])
async def test_aio_failures_are_handled_with_their_go_code(
    server: Running, method: str, status: str, label: str
) -> None:
    """A failing call counts under Go's name for its code; only messages that came are counted."""
    client = Client()
    async with _aio_channel(client, server) as channel:
        code, replies = await _call(channel, method, plan(f"fail-{method}", [status]))
    assert code.name == status
    assert client.handled(method) == {label: 1.0}
    assert client.sample("grpc_client_msg_received_total", method) == replies


@pytest.mark.parametrize("method", ARITIES)
async def test_a_call_engined_retries_is_one_call_with_its_final_status(
    server: Running, method: str
) -> None:
    """UNAVAILABLE then OK behind engined.rpc's retries: the server sees 2, the metrics 1 OK."""
    client = Client()
    async with _aio_channel(client, server, RETRY) as channel:
        retried = plan(f"retry-{method}", ["UNAVAILABLE", "OK"], messages=[0, 2])
        code, _ = await _call(channel, method, retried)
    assert code is grpc.StatusCode.OK
    assert len(server.scripted.attempts(f"retry-{method}")) == 2
    assert client.sample("grpc_client_started_total", method) == 1.0
    assert client.handled(method) == {"OK": 1.0}


async def test_a_resent_request_list_counts_each_message_each_time_it_is_sent(
    server: Running,
) -> None:
    """A client-stream list engined resends on a retry counts its messages per attempt."""
    client = Client()
    async with _aio_channel(client, server, RETRY) as channel:
        await _call(channel, CLIENT_STREAM, plan("resend", ["UNAVAILABLE", "OK"]))
    assert client.sample("grpc_client_msg_sent_total", CLIENT_STREAM) == 4.0


@pytest.mark.parametrize("method", ARITIES)
async def test_an_open_breaker_refusal_is_a_handled_unavailable(
    server: Running, method: str
) -> None:
    """engined.rpc refusing at once (breaker open) counts as a call handled Unavailable."""
    client = Client()
    async with _aio_channel(client, server, NO_RETRY) as channel:
        breaker = default_registry().get(f"rpc:{server.target}")
        assert breaker is not None
        breaker.force_open()
        code, _ = await _call(channel, method, plan("never"))
    assert code is grpc.StatusCode.UNAVAILABLE
    assert client.sample("grpc_client_started_total", method) == 1.0
    assert client.handled(method) == {"Unavailable": 1.0}
    assert server.scripted.total() == 0


async def test_a_cancelled_aio_call_is_handled_canceled(server: Running) -> None:
    """The caller cancelling a slow call counts it once as Canceled."""
    client = Client()
    async with _aio_channel(client, server) as channel:
        call = raw(channel, UNARY)(b"a", metadata=plan("slow", delays=[5.0]), timeout=10)
        await _until(lambda: bool(server.scripted.attempts("slow")))  # under way on the server
        call.cancel()
        assert await call.code() is grpc.StatusCode.CANCELLED
    assert client.handled(UNARY) == {"Canceled": 1.0}


async def test_an_unread_failed_stream_is_counted_when_dropped(server: Running) -> None:
    """A stream that failed before any message and is never read counts once it is dropped.

    Until then a reader could still come and have engined.rpc retry it.
    """
    client = Client()
    async with _aio_channel(client, server) as channel:
        unread = plan("unread", ["NOT_FOUND"], messages=[0])
        call = raw(channel, SERVER_STREAM)(b"a", metadata=unread, timeout=10)
        assert await call.code() is grpc.StatusCode.NOT_FOUND
        assert client.handled(SERVER_STREAM) == {}
        del call
        gc.collect()
        assert client.handled(SERVER_STREAM) == {"NotFound": 1.0}
    assert client.sample("grpc_client_msg_received_total", SERVER_STREAM) == 0.0


async def test_an_unread_ok_stream_is_counted_when_it_ends(server: Running) -> None:
    """An OK status is final: a stream that ended OK is counted without being read."""
    client = Client()
    async with _aio_channel(client, server) as channel:
        call = raw(channel, SERVER_STREAM)(b"a", metadata=plan("done", messages=[0]), timeout=10)
        assert await call.code() is grpc.StatusCode.OK
        await _until(lambda: client.handled(SERVER_STREAM) == {"OK": 1.0})


async def test_write_style_requests_are_counted(server: Running) -> None:
    """Requests sent with call.write() (grpc.aio's reader/writer API) are counted as sent."""
    client = Client()
    async with _aio_channel(client, server) as channel:
        call = raw(channel, CLIENT_STREAM)(metadata=plan("writes"), timeout=10)
        for request in (b"x", b"y", b"z"):
            await call.write(request)
        await call.done_writing()
        assert await call == b"reply:x,y,z"
    assert client.sample("grpc_client_msg_sent_total", CLIENT_STREAM) == 3.0
    assert client.handled(CLIENT_STREAM) == {"OK": 1.0}


# ------------------------------------------------------------------------------ sync stack

SYNC_CALLS: dict[str, tuple[str, Any]] = {
    "unary": (UNARY, lambda ch, md: [raw(ch, UNARY)(b"a", metadata=md, timeout=10)]),
    "unary.with_call": (UNARY, lambda ch, md: [raw(ch, UNARY).with_call(b"a", metadata=md)[0]]),
    "unary.future": (UNARY, lambda ch, md: [raw(ch, UNARY).future(b"a", metadata=md).result()]),
    "server_stream": (
        SERVER_STREAM,
        lambda ch, md: list(raw(ch, SERVER_STREAM)(b"a", metadata=md)),
    ),
    "client_stream": (
        CLIENT_STREAM,
        lambda ch, md: [raw(ch, CLIENT_STREAM)([b"a", b"b"], metadata=md)],
    ),
    "client_stream.future": (
        CLIENT_STREAM,
        lambda ch, md: [raw(ch, CLIENT_STREAM).future(iterate([b"a", b"b"]), metadata=md).result()],
    ),
    "bidi": (BIDI, lambda ch, md: list(raw(ch, BIDI)([b"a", b"b"], metadata=md))),
}


@pytest.fixture(scope="module")
def thread_server() -> Iterator[Running]:
    with ServerThread() as running:
        yield running


def _sync_channel(client: Client, server: Running, policy: RpcPolicy | None = None) -> Any:
    channel = grpc.insecure_channel(server.target, options=NO_GRPC_RETRIES)
    if policy is not None:
        channel = engined.rpc.intercept_channel(
            channel, policy, target=server.target, clock=FakeClock()
        )
    return channel, client.metrics.intercept_channel(channel)


@pytest.mark.parametrize("how", SYNC_CALLS)
def test_sync_call_styles_count_start_end_and_messages(thread_server: Running, how: str) -> None:
    """__call__, with_call and future() of every arity count one OK call and its messages."""
    client = Client()
    method, call = SYNC_CALLS[how]
    base, channel = _sync_channel(client, thread_server)
    with base:
        replies = call(channel, plan(f"sync-ok-{how}", messages=[2]))
    assert client.sample("grpc_client_started_total", method) == 1.0
    assert client.handled(method) == {"OK": 1.0}
    assert client.sample("grpc_client_handling_seconds_count", method) == 1.0
    assert client.sample("grpc_client_msg_sent_total", method) == SENT[method]
    assert client.sample("grpc_client_msg_received_total", method) == len(replies)


@pytest.mark.parametrize("how", ["unary", "server_stream", "client_stream", "bidi"])
def test_sync_calls_engined_retries_count_once_with_the_final_status(
    thread_server: Running, how: str
) -> None:
    """Stacked on engined.rpc.intercept_channel, a retried call is one call, OK."""
    client = Client()
    method, call = SYNC_CALLS[how]
    base, channel = _sync_channel(client, thread_server, RETRY)
    with base:
        call(channel, plan(f"sync-retry-{how}", ["UNAVAILABLE", "OK"], messages=[0, 2]))
    assert len(thread_server.scripted.attempts(f"sync-retry-{how}")) == 2
    assert client.sample("grpc_client_started_total", method) == 1.0
    assert client.handled(method) == {"OK": 1.0}


@pytest.mark.parametrize("how", ["unary", "unary.future", "server_stream", "bidi"])
def test_sync_failures_and_refusals_are_handled_with_their_code(
    thread_server: Running, how: str
) -> None:
    """A NOT_FOUND answer counts NotFound; an open breaker's refusal counts Unavailable."""
    client = Client()
    method, call = SYNC_CALLS[how]
    base, channel = _sync_channel(client, thread_server, NO_RETRY)
    with base:
        with pytest.raises(grpc.RpcError):
            call(channel, plan(f"sync-fail-{how}", ["NOT_FOUND"]))
        breaker = default_registry().get(f"rpc:{thread_server.target}")
        assert breaker is not None
        breaker.force_open()
        with pytest.raises(grpc.RpcError):
            call(channel, plan("never"))
    assert client.sample("grpc_client_started_total", method) == 2.0
    assert client.handled(method) == {"NotFound": 1.0, "Unavailable": 1.0}
