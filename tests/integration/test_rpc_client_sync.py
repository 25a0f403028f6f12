"""engined's sync interceptor against a real grpc.aio server running in a background thread.

Backoff sleeps run on a FakeClock (recorded, not slept); the RPCs themselves are real.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
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
)

from engined import CircuitBreakerOpenError, CircuitState, RetryBudget, default_registry
from engined.rpc import BreakerOpenRpcError, RpcPolicy, open_channel
from engined.testing import FakeClock

pytestmark = pytest.mark.integration

C = grpc.StatusCode
FAST = {"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.01}
PROBE = {"failure_threshold": 1, "recovery_timeout": 60, "half_open_max_calls": 1}


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    default_registry().clear()
    yield
    default_registry().clear()


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with ServerThread() as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time for backoff sleeps and the breakers' recovery."""
    return FakeClock()


def _channel(server: Running, clock: FakeClock | None = None, **settings: Any) -> grpc.Channel:
    settings.setdefault("retry", FAST)
    extra = {} if clock is None else {"clock": clock}
    return open_channel(server.target, RpcPolicy(**settings), **extra)


def _breaker(server: Running, suffix: str = "") -> Any:
    breaker = default_registry().get(f"rpc:{server.target}{suffix}")
    assert breaker is not None
    return breaker


# Every way of calling each arity, with resendable requests; each returns what came back.
CALLS: dict[str, Callable[[grpc.Channel, Any], list[bytes]]] = {
    "unary": lambda ch, md: [raw(ch, UNARY)(b"a", metadata=md, timeout=10)],
    "unary.with_call": lambda ch, md: [raw(ch, UNARY).with_call(b"a", metadata=md)[0]],
    "unary.future": lambda ch, md: [raw(ch, UNARY).future(b"a", metadata=md).result()],
    "server_stream": lambda ch, md: list(raw(ch, SERVER_STREAM)(b"a", metadata=md)),
    "client_stream": lambda ch, md: [raw(ch, CLIENT_STREAM)([b"a", b"b"], metadata=md)],
    "client_stream.with_call": lambda ch, md: [
        raw(ch, CLIENT_STREAM).with_call([b"a", b"b"], metadata=md)[0]
    ],
    "client_stream.future": lambda ch, md: [
        raw(ch, CLIENT_STREAM).future(iterate([b"a"]), metadata=md).result()
    ],
    "bidi": lambda ch, md: list(raw(ch, BIDI)([b"a", b"b"], metadata=md)),
}


@pytest.mark.parametrize("how", CALLS)
def test_every_arity_and_call_style_succeeds(server: Running, how: str) -> None:
    """__call__, with_call and future of every arity return the answer and count a success."""
    with _channel(server) as channel:
        got = CALLS[how](channel, plan(f"ok-{how}", messages=[2]))
    assert got[0].startswith((b"reply:", b"message:0"))
    m = _breaker(server).metrics
    assert (m.successful_calls, m.total_calls) == (1, 1)


@pytest.mark.parametrize("how", CALLS)
def test_open_breaker_fails_every_call_style_without_sending(server: Running, how: str) -> None:
    """A forced-open breaker gives a BreakerOpenRpcError that is also a gRPC error; nothing is sent.

    Guards grpc/grpc#25207: the refusal is returned like grpc's own errors, so future()
    callers get it too rather than an INTERNAL "Exception raised while intercepting".
    """
    before = server.scripted.total()
    with _channel(server) as channel:
        _breaker(server).force_open()
        with pytest.raises(grpc.RpcError) as caught:
            CALLS[how](channel, plan("never"))
    error = caught.value
    assert isinstance(error, BreakerOpenRpcError)
    assert isinstance(error, CircuitBreakerOpenError)
    assert error.code() is C.UNAVAILABLE
    assert f"rpc:{server.target}" in error.details()
    assert ("engined-breaker", "open") in error.trailing_metadata()
    assert server.scripted.total() == before


def test_status_codes_are_classified_by_the_defaults(server: Running) -> None:
    """Failure codes are failures, CANCELLED is not counted, the rest are successes."""
    statuses = ["UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "DATA_LOSS"]
    statuses += ["RESOURCE_EXHAUSTED", "NOT_FOUND", "PERMISSION_DENIED", "CANCELLED", "OK"]
    with _channel(server, retry=None, breaker={"failure_threshold": None}) as channel:
        for index, status in enumerate(statuses):
            future = raw(channel, UNARY).future(b"x", metadata=plan(f"cls{index}", [status]))
            assert future.code().name == status
    m = _breaker(server).metrics
    assert (m.failed_calls, m.successful_calls, m.total_calls) == (6, 3, 9)


@pytest.mark.parametrize("how", ["unary", "unary.with_call", "server_stream", "bidi"])
def test_retries_make_exact_attempts_with_previous_attempts(
    server: Running, clock: FakeClock, how: str
) -> None:
    """UNAVAILABLE twice then OK: three attempts numbered by grpc-previous-rpc-attempts."""
    key = f"retry-{how}"
    with _channel(server, clock) as channel:
        CALLS[how](channel, plan(key, ["UNAVAILABLE", "UNAVAILABLE", "OK"], messages=[0, 0, 1]))
    assert [s.previous_attempts for s in server.scripted.attempts(key)] == [None, "1", "2"]
    assert len(clock.sleeps) == 2
    m = _breaker(server).metrics
    assert (m.failed_calls, m.successful_calls) == (2, 1)


def test_a_request_list_is_resent_whole_on_retry(server: Running, clock: FakeClock) -> None:
    """A client stream given a list is retried, every request sent again each attempt."""
    with _channel(server, clock) as channel:
        reply = raw(channel, CLIENT_STREAM)(
            [b"1", b"2", b"3"], metadata=plan("list", ["UNAVAILABLE", "OK"])
        )
    assert reply == b"reply:1,2,3"
    assert [s.requests for s in server.scripted.attempts("list")] == [3, 3]


def test_one_shot_iterators_and_futures_are_not_retried(server: Running, clock: FakeClock) -> None:
    """Requests from an iterator cannot be resent, and future() must not block: one attempt each."""
    with _channel(server, clock) as channel:
        failing = plan("iter", ["UNAVAILABLE", "OK"])
        with pytest.raises(grpc.RpcError):
            raw(channel, CLIENT_STREAM)(iterate([b"1"]), metadata=failing)
        future = raw(channel, UNARY).future(b"x", metadata=plan("fut", ["UNAVAILABLE", "OK"]))
        assert future.code() is C.UNAVAILABLE
    assert len(server.scripted.attempts("iter")) == 1
    assert len(server.scripted.attempts("fut")) == 1
    assert clock.sleeps == []


def test_no_retry_after_a_stream_delivered_a_message(server: Running, clock: FakeClock) -> None:
    """A server stream that failed after one message reaches the caller; it is not retried."""
    with _channel(server, clock) as channel:
        stream = raw(channel, SERVER_STREAM)(b"x", metadata=plan("late", ["UNAVAILABLE", "OK"]))
        assert next(stream) == b"message:0"
        with pytest.raises(grpc.RpcError) as caught:
            next(stream)
    assert caught.value.code() is C.UNAVAILABLE
    assert len(server.scripted.attempts("late")) == 1


@pytest.mark.parametrize(("value", "attempts"), [("120", 2), ("-5", 1), ("2.5", 1)])
def test_pushback_is_honoured_or_stops_retries(
    server: Running, clock: FakeClock, value: str, attempts: int
) -> None:
    """A pushback of 120 ms is waited exactly; a negative or malformed one ends the call."""
    key = f"push{value}"
    with _channel(server, clock) as channel:
        script = plan(key, ["UNAVAILABLE", "OK"], pushback=[value])
        if attempts == 2:
            assert raw(channel, UNARY).with_call(b"x", metadata=script)[1].code() is C.OK
        else:
            with pytest.raises(grpc.RpcError) as caught:
                raw(channel, UNARY).with_call(b"x", metadata=script)
            assert caught.value.code() is C.UNAVAILABLE
    assert len(server.scripted.attempts(key)) == attempts
    assert clock.sleeps == ([0.12] if attempts == 2 else [])


def test_an_exhausted_budget_stops_retrying(server: Running, clock: FakeClock) -> None:
    """With 4 tokens, two failed attempts reach half: the first call makes 2, the next 1."""
    budget = RetryBudget(max_tokens=4)
    with _channel(server, clock, budget=budget, retry={**FAST, "max_attempts": 5}) as channel:
        for key in ("sb1", "sb2"):
            with pytest.raises(grpc.RpcError):
                raw(channel, UNARY)(b"x", metadata=plan(key, ["UNAVAILABLE"]))
    assert [len(server.scripted.attempts(k)) for k in ("sb1", "sb2")] == [2, 1]


def _half_open(server: Running, clock: FakeClock, channel: grpc.Channel) -> Any:
    with pytest.raises(grpc.RpcError):
        raw(channel, UNARY)(b"x", metadata=plan("trip", ["UNAVAILABLE"]))
    breaker = _breaker(server)
    clock.advance(60)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker


def _wait_seen(server: Running, key: str) -> None:
    for _ in range(1000):
        if server.scripted.attempts(key):
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"the server never saw {key}")


@pytest.mark.parametrize("kind", ["future", "stream"])
def test_a_cancelled_probe_gives_its_slot_back(
    server: Running, clock: FakeClock, kind: str
) -> None:
    """Cancelling the HALF_OPEN probe (future or stream) releases it for the next call."""
    key = f"slow-{kind}"
    with _channel(server, clock, retry=None, breaker=PROBE) as channel:
        breaker = _half_open(server, clock, channel)
        if kind == "future":
            call = raw(channel, UNARY).future(b"x", metadata=plan(key, delays=[30]))
        else:
            call = raw(channel, SERVER_STREAM)(b"x", metadata=plan(key, delays=[30]))
        _wait_seen(server, key)
        with pytest.raises(BreakerOpenRpcError):
            raw(channel, UNARY)(b"x", metadata=plan(f"refused-{kind}"))
        assert call.cancel()
        assert raw(channel, UNARY)(b"x", metadata=plan(f"probe-{kind}")) == b"reply:x"
    assert breaker.state is CircuitState.CLOSED


def test_an_abandoned_probe_stream_is_released_when_collected(
    server: Running, clock: FakeClock
) -> None:
    """A HALF_OPEN probe stream dropped unread is cancelled by collection; the slot comes back."""
    with _channel(server, clock, retry=None, breaker=PROBE) as channel:
        breaker = _half_open(server, clock, channel)
        stream = raw(channel, SERVER_STREAM)(b"x", metadata=plan("dropped", delays=[30]))
        _wait_seen(server, "dropped")
        del stream
        gc.collect()
        assert raw(channel, UNARY)(b"x", metadata=plan("probe-gc")) == b"reply:x"
    assert breaker.state is CircuitState.CLOSED


def test_a_stream_consumed_in_another_thread_settles_and_retries_there(
    server: Running, clock: FakeClock
) -> None:
    """A stream opened here and read in a worker thread retries and settles in that thread."""
    with _channel(server, clock) as channel:
        stream = raw(channel, SERVER_STREAM)(
            b"x", metadata=plan("elsewhere", ["UNAVAILABLE", "OK"], messages=[0, 2])
        )
        got: list[bytes] = []
        worker = threading.Thread(target=lambda: got.extend(stream))
        worker.start()
        worker.join(timeout=20)
    assert got == [b"message:0", b"message:1"]
    assert [s.previous_attempts for s in server.scripted.attempts("elsewhere")] == [None, "1"]
    m = _breaker(server).metrics
    assert (m.failed_calls, m.successful_calls) == (1, 1)


def test_method_scope_keeps_a_breaker_per_method(server: Running) -> None:
    """With breaker_scope="method", one failing method does not open another's breaker."""
    with _channel(
        server, retry=None, breaker_scope="method", breaker={"failure_threshold": 1}
    ) as ch:
        with pytest.raises(grpc.RpcError):
            raw(ch, UNARY)(b"x", metadata=plan("m1", ["INTERNAL"]))
        with pytest.raises(BreakerOpenRpcError):
            raw(ch, UNARY)(b"x", metadata=plan("m2"))
        assert list(raw(ch, SERVER_STREAM)(b"x", metadata=plan("m3"))) == [b"message:0"]
    assert _breaker(server, "/test.Scripted/Unary").state is CircuitState.OPEN
    assert _breaker(server, "/test.Scripted/ServerStream").state is CircuitState.CLOSED


def test_eight_threads_are_counted_exactly(server: Running, clock: FakeClock) -> None:
    """8 threads x 25 calls, each failing once then retried, give exact attempts and counts."""
    start = threading.Barrier(8, timeout=10)
    errors: list[BaseException] = []
    with _channel(server, clock, breaker={"failure_threshold": None}) as channel:
        stub = raw(channel, UNARY)

        def worker(thread: int) -> None:
            try:
                start.wait()
                for index in range(25):
                    key = f"t{thread}-{index}"
                    assert stub(b"x", metadata=plan(key, ["UNAVAILABLE", "OK"])) == b"reply:x"
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=50)
    assert errors == []
    m = _breaker(server).metrics
    assert (m.successful_calls, m.failed_calls, m.total_calls) == (200, 200, 400)
    assert (
        sum(len(server.scripted.attempts(f"t{t}-{i}")) for t in range(8) for i in range(25)) == 400
    )
