"""Both client stacks against scripted continuations on a FakeClock: no network, exact numbers.

A scripted continuation records the call details each attempt was sent with, spends the
attempt's scripted duration on the fake clock and answers with the scripted status, so the
timeout every attempt got, the sleeps between them and the metadata they carried are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio
import pytest

from engined import CircuitState, default_registry
from engined.rpc import AioBreakerOpenRpcError, BreakerOpenRpcError, RpcPolicy, aio_interceptors
from engined.rpc._attempts import ClientCore
from engined.rpc._client_sync import EnginedClientInterceptor, _ClientCallDetails
from engined.testing import FakeClock

C = grpc.StatusCode
METHOD = "/pkg.Svc/Call"
PUSHBACK = "grpc-retry-pushback-ms"
PREVIOUS = "grpc-previous-rpc-attempts"
RETRY = {"max_attempts": 4, "initial_backoff": 0.1, "max_backoff": 0.1}


class Outcome:
    """A finished sync call, as grpc's blocking continuation returns it."""

    def __init__(self, code: grpc.StatusCode, trailing: Sequence[tuple[str, str]] = ()) -> None:
        self.status, self._trailing = code, tuple(trailing)

    def code(self) -> grpc.StatusCode:
        return self.status

    def done(self) -> bool:
        return True

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

    def exception(self) -> object:
        return None if self.status is C.OK else self


class Script:
    """Answers attempt n with statuses[n-1] after spending durations[n-1] fake seconds."""

    def __init__(
        self,
        clock: FakeClock,
        statuses: Sequence[grpc.StatusCode],
        *,
        durations: Sequence[float] = (0.0,),
        trailing: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.clock, self.statuses, self.durations = clock, list(statuses), list(durations)
        self.trailing = tuple(trailing)
        self.sent: list[Any] = []

    def next(self, details: Any) -> grpc.StatusCode:
        n = len(self.sent)
        self.sent.append(details)
        self.clock.advance(self.durations[min(n, len(self.durations) - 1)])
        return self.statuses[min(n, len(self.statuses) - 1)]

    def sync(self, details: Any, request: Any) -> Outcome:
        return Outcome(self.next(details), self.trailing)

    async def aio(self, details: Any, request: Any) -> AioCall:
        return AioCall(self.next(details), self.trailing)

    def timeouts(self) -> list[float | None]:
        return [details.timeout for details in self.sent]

    def previous(self) -> list[str | None]:
        return [dict(details.metadata or ()).get(PREVIOUS) for details in self.sent]


class AioCall:
    """A grpc.aio call that has already finished with ``code``."""

    def __init__(self, code: grpc.StatusCode, trailing: Sequence[tuple[str, str]]) -> None:
        self.status, self._trailing = code, trailing
        self.cancelled = False

    async def code(self) -> grpc.StatusCode:
        return self.status

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*self._trailing)

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def _sync(clock: FakeClock, **policy: Any) -> EnginedClientInterceptor:
    policy.setdefault("retry", RETRY)
    return EnginedClientInterceptor(ClientCore(RpcPolicy(**policy), "svc", clock))


def _aio(clock: FakeClock, **policy: Any) -> Any:
    policy.setdefault("retry", RETRY)
    return aio_interceptors(RpcPolicy(**policy), target="svc", clock=clock)[0]


def _sync_details(timeout: float | None = None, metadata: Any = None) -> grpc.ClientCallDetails:
    return _ClientCallDetails(METHOD, timeout, metadata, None, None, None)


def _aio_details(timeout: float | None = None) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(METHOD.encode(), timeout, grpc.aio.Metadata(), None, None)


Run = Callable[[Script, float | None], Any]


def _run_sync(clock: FakeClock, **policy: Any) -> Run:
    interceptor = _sync(clock, **policy)
    return lambda script, timeout: interceptor.intercept_unary_unary(
        script.sync, _sync_details(timeout), b"req"
    )


def _run_aio(clock: FakeClock, **policy: Any) -> Run:
    interceptor = _aio(clock, **policy)
    return lambda script, timeout: asyncio.run(
        interceptor.intercept_unary_unary(script.aio, _aio_details(timeout), b"req")
    )


STACKS = [pytest.param(_run_sync, id="sync"), pytest.param(_run_aio, id="aio")]


@pytest.mark.parametrize("stack", STACKS)
def test_each_retry_gets_only_the_remaining_time(clock: FakeClock, stack: Any) -> None:
    """Attempts of 0.3 s with 0.1 s backoffs under a 1 s deadline get 1.0, 0.6 and 0.2 s."""
    run = stack(clock, retry={**RETRY, "max_attempts": 5})
    script = Script(clock, [C.UNAVAILABLE], durations=[0.3], trailing=[(PUSHBACK, "100")])
    outcome = run(script, 1.0)
    assert script.timeouts() == pytest.approx([1.0, 0.6, 0.2])
    assert clock.sleeps == [0.1, 0.1]  # a third sleep would end past the deadline
    assert clock.monotonic() == pytest.approx(1.1)
    assert _code(outcome) is C.UNAVAILABLE


@pytest.mark.parametrize("stack", STACKS)
def test_retries_send_previous_attempts_metadata(clock: FakeClock, stack: Any) -> None:
    """The first attempt carries no grpc-previous-rpc-attempts; retry n carries n."""
    run = stack(clock)
    script = Script(clock, [C.UNAVAILABLE, C.UNAVAILABLE, C.UNAVAILABLE, C.OK])
    assert _code(run(script, None)) is C.OK
    assert script.previous() == [None, "1", "2", "3"]
    assert script.timeouts() == [None] * 4


@pytest.mark.parametrize("stack", STACKS)
def test_default_timeout_is_the_whole_calls_budget(clock: FakeClock, stack: Any) -> None:
    """Without a caller timeout the default applies, once, across every attempt."""
    run = stack(clock, default_timeout=0.5)
    script = Script(clock, [C.UNAVAILABLE], durations=[0.2], trailing=[(PUSHBACK, "0")])
    run(script, None)
    assert script.timeouts() == pytest.approx([0.5, 0.3, 0.1])


@pytest.mark.parametrize("stack", STACKS)
def test_inherited_no_deadline_is_not_passed_on(clock: FakeClock, stack: Any) -> None:
    """A server's "no deadline" time_remaining() (9.2e18 s) is sent as no timeout at all.

    Guards grpc/grpc#26236 and grpc/grpc#9423: passed on, it fails the call at once.
    """
    run = stack(clock)
    script = Script(clock, [C.OK])
    run(script, 9.223372036854776e18)
    assert script.timeouts() == [None]


@pytest.mark.parametrize("stack", STACKS)
def test_pushback_is_honoured_exactly(clock: FakeClock, stack: Any) -> None:
    """grpc-retry-pushback-ms: 1500 waits exactly 1.5 s, whatever the backoff says."""
    run = stack(clock)
    script = Script(clock, [C.UNAVAILABLE, C.OK], trailing=[(PUSHBACK, "1500")])
    assert _code(run(script, None)) is C.OK
    assert clock.sleeps == [1.5]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("value", ["-1", "later", "1e3"])
def test_negative_or_malformed_pushback_stops(clock: FakeClock, stack: Any, value: str) -> None:
    """A negative or unparsable pushback ends the call after one attempt."""
    run = stack(clock)
    script = Script(clock, [C.UNAVAILABLE, C.OK], trailing=[(PUSHBACK, value)])
    assert _code(run(script, None)) is C.UNAVAILABLE
    assert len(script.sent) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("stack", STACKS)
def test_attempts_are_capped_by_max_attempts(clock: FakeClock, stack: Any) -> None:
    """An always-UNAVAILABLE server gets exactly max_attempts attempts."""
    run = stack(clock, breaker={"failure_threshold": 100})
    script = Script(clock, [C.UNAVAILABLE])
    assert _code(run(script, None)) is C.UNAVAILABLE
    assert len(script.sent) == 4
    breaker = default_registry().get("rpc:svc")
    assert breaker is not None
    assert breaker.metrics.failed_calls == 4


@pytest.mark.parametrize("stack", STACKS)
def test_non_retryable_failure_is_not_retried(clock: FakeClock, stack: Any) -> None:
    """INTERNAL counts against the breaker but is not retried by default."""
    run = stack(clock)
    script = Script(clock, [C.INTERNAL, C.OK])
    assert _code(run(script, None)) is C.INTERNAL
    assert len(script.sent) == 1


@pytest.mark.parametrize("stack", STACKS)
def test_a_retry_refused_by_the_breaker_returns_the_servers_error(
    clock: FakeClock, stack: Any
) -> None:
    """When failures open the breaker mid-call, the next attempt is not made or retried."""
    run = stack(clock, breaker={"failure_threshold": 2})
    script = Script(clock, [C.UNAVAILABLE])
    outcome = run(script, None)
    assert len(script.sent) == 2
    assert _code(outcome) is C.UNAVAILABLE
    assert not isinstance(outcome, BreakerOpenRpcError | AioBreakerOpenRpcError)
    breaker = default_registry().get("rpc:svc")
    assert breaker is not None
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.rejected_calls == 1


def test_sync_open_breaker_returns_the_refusal_without_calling(clock: FakeClock) -> None:
    """An open breaker's refusal is returned, never raised, and nothing is sent (grpc#25207)."""
    interceptor = _sync(clock, breaker={"failure_threshold": 1})
    script = Script(clock, [C.UNAVAILABLE])
    interceptor.intercept_unary_unary(script.sync, _sync_details(), b"req")
    outcome = interceptor.intercept_unary_unary(script.sync, _sync_details(), b"req")
    assert isinstance(outcome, BreakerOpenRpcError)
    assert len(script.sent) == 1


async def test_aio_open_breaker_raises_the_refusal_without_calling(clock: FakeClock) -> None:
    """An open breaker raises AioBreakerOpenRpcError and nothing is sent."""
    interceptor = _aio(clock, breaker={"failure_threshold": 1})
    script = Script(clock, [C.UNAVAILABLE])
    await interceptor.intercept_unary_unary(script.aio, _aio_details(), b"req")
    with pytest.raises(AioBreakerOpenRpcError):
        await interceptor.intercept_unary_unary(script.aio, _aio_details(), b"req")
    assert len(script.sent) == 1


def test_sync_continuation_that_raises_gives_the_permit_back(clock: FakeClock) -> None:
    """A continuation that raises (another interceptor's bug) leaves the breaker untouched."""
    interceptor = _sync(clock, breaker={"half_open_max_calls": 1, "failure_threshold": 1})

    def broken(details: Any, request: Any) -> Any:
        raise LookupError

    with pytest.raises(LookupError):
        interceptor.intercept_unary_unary(broken, _sync_details(), b"req")
    breaker = default_registry().get("rpc:svc")
    assert breaker is not None
    assert breaker.metrics.total_calls == 0


def test_sync_local_exception_outcome_is_not_counted(clock: FakeClock) -> None:
    """The INTERNAL outcome grpc makes of a client-side exception counts neither way."""
    interceptor = _sync(clock)

    class Local(Outcome):
        def exception(self) -> object:
            return ValueError("serializer broke")

    outcome = interceptor.intercept_unary_unary(
        lambda d, r: Local(C.INTERNAL), _sync_details(), b"req"
    )
    assert outcome.code() is C.INTERNAL
    breaker = default_registry().get("rpc:svc")
    assert breaker is not None
    assert breaker.metrics.total_calls == 0


async def test_aio_cancel_while_waiting_gives_the_permit_back(clock: FakeClock) -> None:
    """Cancelling the interceptor while it awaits the status cancels the call, counts nothing."""
    interceptor = _aio(clock, breaker={"failure_threshold": 1})
    started = asyncio.Event()
    call = AioCall(C.OK, ())

    async def never_done() -> grpc.StatusCode:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError

    call.code = never_done  # type: ignore[method-assign]

    async def continuation(details: Any, request: Any) -> AioCall:
        return call

    task = asyncio.ensure_future(
        interceptor.intercept_unary_unary(continuation, _aio_details(), b"x")
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.cancelled
    breaker = default_registry().get("rpc:svc")
    assert breaker is not None
    assert breaker.metrics.total_calls == 0


def _code(outcome: Outcome | AioCall) -> grpc.StatusCode:
    return outcome.status
