"""engined's grpc.aio interceptors against a real grpc.aio server on 127.0.0.1.

Backoff sleeps run on a FakeClock (recorded, not slept) unless a test is about real
deadlines; the RPCs themselves are real.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from rpc_testserver import (
    BIDI,
    CLIENT_STREAM,
    SERVER_STREAM,
    UNARY,
    Running,
    iterate,
    plan,
    raw,
    serving,
    yield_to_loop,
)

from engined import CircuitBreakerOpenError, CircuitState, RetryBudget, default_registry
from engined.rpc import AioBreakerOpenRpcError, RpcPolicy, open_aio_channel
from engined.testing import FakeClock

pytestmark = pytest.mark.integration

C = grpc.StatusCode
ARITIES = [UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI]
FAST = {"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.01}


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    default_registry().clear()
    yield
    default_registry().clear()


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time for backoff sleeps and the breakers' recovery."""
    return FakeClock()


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with serving() as running:
        yield running


def _policy(**settings: Any) -> RpcPolicy:
    settings.setdefault("retry", FAST)
    return RpcPolicy(**settings)


async def _call(channel: grpc.aio.Channel, method: str, metadata: Any, **kw: Any) -> list[bytes]:
    """Make one call of ``method``'s arity with resendable requests; return what came back."""
    stub = raw(channel, method)
    requests = kw.pop("requests", [b"a", b"b"])
    if method == UNARY:
        return [await stub(b"a", metadata=metadata, timeout=10, **kw)]
    if method == SERVER_STREAM:
        return [m async for m in stub(b"a", metadata=metadata, timeout=10, **kw)]
    if method == CLIENT_STREAM:
        return [await stub(requests, metadata=metadata, timeout=10, **kw)]
    return [m async for m in stub(requests, metadata=metadata, timeout=10, **kw)]


def _breaker(name: str) -> Any:
    breaker = default_registry().get(name)
    assert breaker is not None, f"{name} is not in the default registry"
    return breaker


@pytest.mark.parametrize("method", ARITIES)
async def test_every_arity_succeeds_through_the_interceptors(server: Running, method: str) -> None:
    """Each arity returns the server's answer and counts one success on rpc:<target>."""
    async with open_aio_channel(server.target, _policy()) as channel:
        got = await _call(channel, method, plan("ok", messages=[2]))
    assert got[0].startswith((b"reply:", b"message:0"))
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.successful_calls, m.failed_calls, m.total_calls) == (1, 0, 1)


async def test_status_codes_are_classified_by_the_defaults(server: Running) -> None:
    """Failure codes count as failures, CANCELLED is not counted, the rest are successes."""
    statuses = ["UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "DATA_LOSS"]
    statuses += ["RESOURCE_EXHAUSTED", "NOT_FOUND", "INVALID_ARGUMENT", "CANCELLED", "OK"]
    policy = _policy(retry=None, breaker={"failure_threshold": None})
    async with open_aio_channel(server.target, policy) as channel:
        stub = raw(channel, UNARY)
        for index, status in enumerate(statuses):
            call = stub(b"x", metadata=plan(f"k{index}", [status]), timeout=10)
            assert (await call.code()).name == status
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.failed_calls, m.successful_calls, m.ignored_calls, m.total_calls) == (6, 3, 0, 9)


@pytest.mark.parametrize("method", ARITIES)
async def test_open_breaker_fails_at_once_with_the_dual_error(server: Running, method: str) -> None:
    """A forced-open breaker raises an AioRpcError that is a breaker error; nothing is sent."""
    async with open_aio_channel(server.target, _policy()) as channel:
        _breaker(f"rpc:{server.target}").force_open()
        with pytest.raises(AioBreakerOpenRpcError) as caught:
            await _call(channel, method, plan("never"))
    error = caught.value
    assert isinstance(error, grpc.aio.AioRpcError)
    assert isinstance(error, CircuitBreakerOpenError)
    assert error.code() is C.UNAVAILABLE
    assert f"rpc:{server.target}" in (error.details() or "")
    assert error.trailing_metadata()["engined-breaker"] == "open"
    assert server.scripted.total() == 0


async def test_open_breaker_code_reads_through_the_call_object(server: Running) -> None:
    """Awaiting code() on a refused call gives UNAVAILABLE without raising (research (a)3)."""
    async with open_aio_channel(server.target, _policy()) as channel:
        _breaker(f"rpc:{server.target}").force_open()
        call = raw(channel, UNARY)(b"x", metadata=plan("never"))
        assert await call.code() is C.UNAVAILABLE
        assert "engined-breaker" in dict(await call.trailing_metadata())
    assert server.scripted.total() == 0


@pytest.mark.parametrize("method", ARITIES)
async def test_retries_make_exact_attempts_with_previous_attempts(
    server: Running, method: str, clock: FakeClock
) -> None:
    """UNAVAILABLE twice then OK: three attempts, numbered by grpc-previous-rpc-attempts.

    Guards grpc/grpc#32587 (fixed by #32641): the same aio interceptor runs every attempt.
    """
    script = plan("r", ["UNAVAILABLE", "UNAVAILABLE", "OK"], messages=[0, 0, 2])
    async with open_aio_channel(server.target, _policy(), clock=clock) as channel:
        await _call(channel, method, script)
    seen = server.scripted.attempts("r")
    assert [s.previous_attempts for s in seen] == [None, "1", "2"]
    if method in (CLIENT_STREAM, BIDI):
        assert [s.requests for s in seen] == [2, 2, 2]  # the list was sent again, whole
    assert len(clock.sleeps) == 2
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.failed_calls, m.successful_calls) == (2, 1)


@pytest.mark.parametrize("method", [CLIENT_STREAM, BIDI])
async def test_one_shot_request_iterators_are_not_retried(
    server: Running, method: str, clock: FakeClock
) -> None:
    """Requests from an iterator cannot be sent again: one attempt, its error returned."""
    async with open_aio_channel(server.target, _policy(), clock=clock) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(
                channel,
                method,
                plan("once", ["UNAVAILABLE", "OK"], messages=[0]),
                requests=iterate([b"a"]),
            )
    assert caught.value.code() is C.UNAVAILABLE
    assert len(server.scripted.attempts("once")) == 1


@pytest.mark.parametrize("method", [SERVER_STREAM, BIDI])
async def test_no_retry_after_a_stream_delivered_a_message(
    server: Running, method: str, clock: FakeClock
) -> None:
    """A stream that failed after its first message is committed: the error reaches the caller."""
    got: list[bytes] = []
    async with open_aio_channel(server.target, _policy(), clock=clock) as channel:
        stub = raw(channel, method)
        request = b"a" if method == SERVER_STREAM else [b"a"]
        stream = stub(request, metadata=plan("c", ["UNAVAILABLE", "OK"], messages=[1]))
        got.append(await stream.read())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()
    assert got == [b"message:0"]
    assert caught.value.code() is C.UNAVAILABLE
    assert len(server.scripted.attempts("c")) == 1
    assert _breaker(f"rpc:{server.target}").metrics.failed_calls == 1


async def test_write_mode_client_stream_is_settled_when_done(server: Running) -> None:
    """A client stream fed by call.write() settles its permit once the call finishes."""
    async with open_aio_channel(server.target, _policy()) as channel:
        call = raw(channel, CLIENT_STREAM)(metadata=plan("w", ["INTERNAL"]))
        await call.write(b"1")
        await call.done_writing()
        assert await call.code() is C.INTERNAL
        await yield_to_loop(3)
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.failed_calls, m.total_calls) == (1, 1)
    assert server.scripted.attempts("w")[0].requests == 1


async def test_write_mode_bidi_stream_works_and_settles(server: Running) -> None:
    """A bidi call fed by call.write() reaches the server and settles when read to its end."""
    async with open_aio_channel(server.target, _policy()) as channel:
        call = raw(channel, BIDI)(metadata=plan("bidi-w", messages=[2]))
        await call.write(b"1")
        await call.write(b"2")
        await call.done_writing()
        assert [message async for message in call] == [b"message:0", b"message:1"]
        assert await call.code() is C.OK
    assert server.scripted.attempts("bidi-w")[0].requests == 2
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.successful_calls, m.total_calls) == (1, 1)


@pytest.mark.parametrize(("value", "attempts"), [("250", 2), ("-1", 1), ("soon", 1)])
async def test_pushback_is_honoured_or_stops_retries(
    server: Running, clock: FakeClock, value: str, attempts: int
) -> None:
    """A pushback of 250 ms is waited exactly; a negative or malformed one ends the call."""
    async with open_aio_channel(server.target, _policy(), clock=clock) as channel:
        call = raw(channel, UNARY)(
            b"x", metadata=plan("p", ["UNAVAILABLE", "OK"], pushback=[value])
        )
        await call.code()
    assert len(server.scripted.attempts("p")) == attempts
    assert clock.sleeps == ([0.25] if attempts == 2 else [])


async def test_an_exhausted_budget_stops_retrying(server: Running, clock: FakeClock) -> None:
    """With 4 tokens, two failed attempts reach half: the first call makes 2, the next 1."""
    budget = RetryBudget(max_tokens=4, token_ratio=0.1)
    policy = _policy(budget=budget, retry={**FAST, "max_attempts": 5})
    async with open_aio_channel(server.target, policy, clock=clock) as channel:
        for key in ("b1", "b2"):
            call = raw(channel, UNARY)(b"x", metadata=plan(key, ["UNAVAILABLE"]))
            assert await call.code() is C.UNAVAILABLE
    assert len(server.scripted.attempts("b1")) == 2
    assert len(server.scripted.attempts("b2")) == 1
    assert budget.tokens == 1


async def test_a_stream_consumed_in_another_task_settles_its_permit(server: Running) -> None:
    """A stream opened in one task and read to its end in another settles its own permit."""
    async with open_aio_channel(server.target, _policy(retry=None)) as channel:
        ok = raw(channel, SERVER_STREAM)(b"x", metadata=plan("s1", messages=[3]))
        failing = raw(channel, SERVER_STREAM)(b"x", metadata=plan("s2", ["INTERNAL"], messages=[1]))

        async def consume(stream: Any) -> list[bytes]:
            out = []
            try:
                async for message in stream:
                    out.append(message)
            except grpc.aio.AioRpcError:
                out.append(b"error")
            return out

        results = await asyncio.gather(
            asyncio.create_task(consume(ok)), asyncio.create_task(consume(failing))
        )
    assert results == [[b"message:0", b"message:1", b"message:2"], [b"message:0", b"error"]]
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.successful_calls, m.failed_calls) == (1, 1)


async def _half_open(server: Running, clock: FakeClock, channel: grpc.aio.Channel) -> Any:
    """Trip the target's breaker with one failure and let its recovery time pass."""
    call = raw(channel, UNARY)(b"x", metadata=plan("trip", ["UNAVAILABLE"]))
    assert await call.code() is C.UNAVAILABLE
    breaker = _breaker(f"rpc:{server.target}")
    assert breaker.state is CircuitState.OPEN
    clock.advance(60)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker


PROBE = {"failure_threshold": 1, "recovery_timeout": 60, "half_open_max_calls": 1}


@pytest.mark.parametrize("method", [UNARY, SERVER_STREAM])
async def test_a_cancelled_probe_gives_its_slot_back(
    server: Running, clock: FakeClock, method: str
) -> None:
    """Cancelling the HALF_OPEN probe releases it: the next call is admitted and closes it."""
    policy = _policy(retry=None, breaker=PROBE)
    async with open_aio_channel(server.target, policy, clock=clock) as channel:
        breaker = await _half_open(server, clock, channel)
        slow = raw(channel, method)(b"x", metadata=plan("slow", delays=[30]))
        while len(server.scripted.attempts("slow")) == 0:
            await yield_to_loop()
        with pytest.raises(AioBreakerOpenRpcError):  # the one probe slot is taken
            await raw(channel, UNARY)(b"x", metadata=plan("refused"))
        assert slow.cancel()
        await yield_to_loop(3)
        assert await raw(channel, UNARY)(b"x", metadata=plan("probe")) == b"reply:x"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.ignored_calls == 0


async def test_an_abandoned_probe_stream_is_settled_when_it_ends_and_then_collected(
    server: Running, clock: FakeClock
) -> None:
    """A HALF_OPEN probe stream dropped unread settles when its RPC ends; nothing leaks.

    grpc.aio's channel keeps every running call (a done-callback), so a dropped stream runs
    to its end; its status then settles the probe, and the call can be collected.
    """
    policy = _policy(retry=None, breaker=PROBE)
    async with open_aio_channel(server.target, policy, clock=clock) as channel:
        breaker = await _half_open(server, clock, channel)
        stream = raw(channel, SERVER_STREAM)(
            b"x", metadata=plan("dropped", delays=[0.2], messages=[0])
        )
        alive = weakref.ref(stream)
        del stream
        for _ in range(500):  # up to 5 s for the server's 0.2 s
            if breaker.state is CircuitState.CLOSED:
                break
            await asyncio.sleep(0.01)  # noqa: TID251 - the RPC takes real time
        assert breaker.state is CircuitState.CLOSED
        gc.collect()
        assert alive() is None
    assert breaker.metrics.successful_calls == 1


async def test_closing_the_channel_releases_an_unread_probe_stream(
    server: Running, clock: FakeClock
) -> None:
    """A probe stream left with unread messages is cancelled by channel close: slot given back."""
    policy = _policy(retry=None, breaker=PROBE)
    channel = open_aio_channel(server.target, policy, clock=clock)
    breaker = await _half_open(server, clock, channel)
    stream = raw(channel, SERVER_STREAM)(b"x", metadata=plan("unread", messages=[3]))
    assert await stream.read() == b"message:0"
    del stream
    await channel.close()
    await yield_to_loop(3)
    assert breaker.state is CircuitState.HALF_OPEN
    async with open_aio_channel(server.target, policy, clock=clock) as again:
        assert await raw(again, UNARY)(b"x", metadata=plan("probe")) == b"reply:x"
    assert breaker.state is CircuitState.CLOSED


async def test_method_scope_keeps_a_breaker_per_method(server: Running) -> None:
    """With breaker_scope="method", failures of one method do not open another's breaker."""
    policy = _policy(retry=None, breaker_scope="method", breaker={"failure_threshold": 2})
    async with open_aio_channel(server.target, policy) as channel:
        for index in range(2):
            call = raw(channel, UNARY)(b"x", metadata=plan(f"u{index}", ["UNAVAILABLE"]))
            assert await call.code() is C.UNAVAILABLE
        with pytest.raises(AioBreakerOpenRpcError):
            await raw(channel, UNARY)(b"x", metadata=plan("u3"))
        assert (await _call(channel, CLIENT_STREAM, plan("cs")))[0] == b"reply:a,b"
    unary = _breaker(f"rpc:{server.target}/test.Scripted/Unary")
    other = _breaker(f"rpc:{server.target}/test.Scripted/ClientStream")
    assert (unary.state, other.state) == (CircuitState.OPEN, CircuitState.CLOSED)
    assert sorted(b.name for b in default_registry()) == sorted([unary.name, other.name])


async def test_fifty_concurrent_calls_are_counted_exactly(server: Running) -> None:
    """50 concurrent calls, half failing, give exactly 25 failures and 25 successes."""
    policy = _policy(retry=None, breaker={"failure_threshold": None})
    async with open_aio_channel(server.target, policy) as channel:
        stub = raw(channel, UNARY)
        calls = [
            stub(b"x", metadata=plan(f"c{i}", ["INTERNAL" if i % 2 else "OK"], delays=[0.01]))
            for i in range(50)
        ]
        codes = await asyncio.gather(*(call.code() for call in calls))
    assert codes.count(C.INTERNAL) == 25
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.successful_calls, m.failed_calls, m.total_calls) == (25, 25, 50)
    assert server.scripted.total() == 50


async def test_fifty_concurrent_retrying_calls_make_exact_attempts(
    server: Running, clock: FakeClock
) -> None:
    """50 concurrent calls failing once each make exactly 100 attempts, 50 of them failures."""
    async with open_aio_channel(
        server.target, _policy(breaker={"failure_threshold": None}), clock=clock
    ) as channel:
        stub = raw(channel, UNARY)
        replies = await asyncio.gather(
            *(stub(b"x", metadata=plan(f"r{i}", ["UNAVAILABLE", "OK"])) for i in range(50))
        )
    assert replies == [b"reply:x"] * 50
    assert server.scripted.total() == 100
    m = _breaker(f"rpc:{server.target}").metrics
    assert (m.successful_calls, m.failed_calls) == (50, 50)
