"""Outcome classification: BaseException, ignore vs record, other errors, results, late results."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from engined import CircuitBreaker, CircuitBreakerMetrics, CircuitState
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]

VIAS = ["call", "decorator", "with", "call_async", "async_decorator", "async_with"]
ASYNC_VIAS = ["call_async", "async_decorator", "async_with"]
RESULT_VIAS = ["call", "decorator", "call_async", "async_decorator"]  # a with-block has no result
BASE_EXCEPTIONS = [asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit]


class Boom(Exception):
    """The recorded failure."""


def _raise(exc: BaseException) -> None:
    raise exc


def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise, Boom())


async def _invoke(breaker: CircuitBreaker, via: str, fn: Callable[[], Any]) -> Any:
    """Run the sync body ``fn`` through the breaker entry point named ``via``."""
    if via == "call":
        return breaker.call(fn)
    if via == "decorator":
        return breaker(fn)()
    if via == "with":
        with breaker.permit():
            return fn()

    async def body() -> Any:
        return fn()

    return await _invoke_async(breaker, via, body)


async def _invoke_async(
    breaker: CircuitBreaker, via: str, body: Callable[[], Awaitable[Any]]
) -> Any:
    """Run the async body through the async breaker entry point named ``via``."""
    if via == "call_async":
        return await breaker.call_async(body)
    if via == "async_decorator":
        return await breaker(body)()
    assert via == "async_with"
    async with breaker.permit():
        return await body()


def _to_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _fail(breaker)
    clock.advance(10.0)
    assert breaker.state is CircuitState.HALF_OPEN


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
@pytest.mark.parametrize("via", VIAS)
async def test_base_exception_is_never_counted_in_closed(
    make_breaker: Factory, assert_invariant: Invariant, via: str, exc_type: type[BaseException]
) -> None:
    """A non-Exception BaseException propagates as the same object and changes no counter.

    Guards against pybreaker and purgatory counting KeyboardInterrupt/CancelledError as failures
    and against tenacity#529.
    """
    breaker = make_breaker(failure_threshold=1)
    exc = exc_type()
    with pytest.raises(exc_type) as info:
        await _invoke(breaker, via, lambda: _raise(exc))
    assert info.value is exc
    assert exc.__cause__ is None
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert (m.total_calls, m.failed_calls, m.successful_calls, m.ignored_calls) == (0, 0, 0, 0)
    assert m.consecutive_failures == 0
    assert await _invoke(breaker, via, lambda: 7) == 7
    assert breaker.metrics.total_calls == 1


@pytest.mark.parametrize("exc_type", BASE_EXCEPTIONS)
@pytest.mark.parametrize("via", VIAS)
async def test_base_exception_gives_back_the_half_open_permit(
    make_breaker: Factory,
    clock: FakeClock,
    assert_invariant: Invariant,
    via: str,
    exc_type: type[BaseException],
) -> None:
    """A probe ending in a non-Exception BaseException frees its permit, so the next probe runs.

    Guards against r4j#903, r4j#935 and r4j#1432 (HALF_OPEN stuck after permits leak).
    """
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=1)
    _to_half_open(breaker, clock)
    exc = exc_type()
    with pytest.raises(exc_type) as info:
        await _invoke(breaker, via, lambda: _raise(exc))
    assert info.value is exc
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.HALF_OPEN
    assert (m.total_calls, m.rejected_calls) == (1, 0)
    assert await _invoke(breaker, via, lambda: "probe") == "probe"
    assert breaker.state is CircuitState.CLOSED


def test_base_exception_does_not_reset_consecutive_failures(make_breaker: Factory) -> None:
    """A KeyboardInterrupt between failures neither counts nor resets the consecutive count.

    Guards against circuitbreaker (fabfuel) resetting its failure count on KeyboardInterrupt.
    """
    breaker = make_breaker(failure_threshold=3)
    _fail(breaker)
    _fail(breaker)
    with pytest.raises(KeyboardInterrupt):
        breaker.call(_raise, KeyboardInterrupt())
    assert breaker.metrics.consecutive_failures == 2
    _fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_closing_a_generator_inside_the_breaker_frees_the_probe(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant
) -> None:
    """A generator closed early while holding a probe permit (GeneratorExit) gives it back."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0)
    _to_half_open(breaker, clock)

    def rows() -> Iterator[int]:
        with breaker.permit():
            yield 1
            yield 2

    gen = rows()
    assert next(gen) == 1
    gen.close()
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.HALF_OPEN
    assert m.total_calls == 1
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("in_half_open", [False, True])
@pytest.mark.parametrize("via", ASYNC_VIAS)
async def test_cancelled_task_is_not_counted_and_frees_its_permit(
    make_breaker: Factory,
    clock: FakeClock,
    assert_invariant: Invariant,
    via: str,
    in_half_open: bool,
) -> None:
    """Cancelling a task awaiting inside the breaker counts nothing and releases its permit.

    Guards against r4j#903 / r4j PR#333 (permits leaked by cancelled calls).
    """
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0)
    if in_half_open:
        _to_half_open(breaker, clock)
    total_before = breaker.metrics.total_calls
    entered = asyncio.Event()
    never = asyncio.Event()

    async def body() -> None:
        entered.set()
        await never.wait()

    task = asyncio.create_task(_invoke_async(breaker, via, body))
    await asyncio.wait_for(entered.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    m = breaker.metrics
    assert_invariant(m)
    assert m.total_calls == total_before
    assert m.state is (CircuitState.HALF_OPEN if in_half_open else CircuitState.CLOSED)
    assert await _invoke(breaker, via, lambda: "next") == "next"
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("record", "ignore", "exc", "outcome"),
    [
        pytest.param((Exception,), (ValueError,), ValueError("x"), "ignored", id="ignore-subclass"),
        pytest.param((ValueError,), (ValueError,), ValueError("x"), "ignored", id="in-both"),
        pytest.param((LookupError,), (KeyError,), KeyError("x"), "ignored", id="ignored-child"),
        pytest.param((KeyError,), (LookupError,), KeyError("x"), "ignored", id="ignored-parent"),
        pytest.param(
            (Boom,), (ConnectionError,), ConnectionRefusedError(), "ignored", id="grandchild"
        ),
        pytest.param((LookupError,), (KeyError,), IndexError("x"), "failed", id="sibling-recorded"),
        pytest.param((OSError,), (), ConnectionResetError(), "failed", id="record-subclass"),
        pytest.param((OSError, Boom), (), Boom(), "failed", id="record-tuple"),
        pytest.param((Exception,), (), ValueError("x"), "failed", id="default-record"),
        pytest.param((OSError,), (), ValueError("x"), "successful", id="other-exception"),
        pytest.param((Boom,), (KeyError,), IndexError("x"), "successful", id="neither"),
    ],
)
def test_ignore_wins_over_record_and_others_are_successes(
    make_breaker: Factory,
    assert_invariant: Invariant,
    record: tuple[type[Exception], ...],
    ignore: tuple[type[Exception], ...],
    exc: Exception,
    outcome: str,
) -> None:
    """ignore_exceptions beats record_exceptions; unmatched exceptions count as successes.

    Guards against r4j#2295 (ignore must win, including through subclasses).
    """
    breaker = make_breaker(
        failure_threshold=None, record_exceptions=record, ignore_exceptions=ignore
    )
    with pytest.raises(type(exc)) as info:
        breaker.call(_raise, exc)
    assert info.value is exc
    m = breaker.metrics
    assert_invariant(m)
    counts = {
        "failed": m.failed_calls,
        "ignored": m.ignored_calls,
        "successful": m.successful_calls,
    }
    assert counts == {kind: int(kind == outcome) for kind in counts}
    assert m.total_calls == 1


def test_unrecorded_exception_resets_consecutive_failures(make_breaker: Factory) -> None:
    """An exception outside record_exceptions is a success: it ends a run of failures."""
    breaker = make_breaker(failure_threshold=3, record_exceptions=(Boom,))
    _fail(breaker)
    _fail(breaker)
    with pytest.raises(ValueError, match="client bug"):
        breaker.call(_raise, ValueError("client bug"))
    _fail(breaker)
    m = breaker.metrics
    assert m.state is CircuitState.CLOSED
    assert m.consecutive_failures == 1


def test_ignored_exception_keeps_state_and_window(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """Ignored calls count as ignored and never enter the rate window."""
    breaker = make_breaker(
        failure_threshold=None,
        failure_rate_threshold=0.5,
        window_size=4,
        minimum_calls=2,
        ignore_exceptions=(KeyError,),
    )
    for _ in range(10):
        with pytest.raises(KeyError):
            breaker.call(_raise, KeyError("k"))
    m = breaker.metrics
    assert_invariant(m)
    assert m.ignored_calls == 10
    assert m.failure_rate is None
    assert m.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("value", "failed"),
    [(200, False), (404, False), (500, True), (503, True), (None, True)],
)
@pytest.mark.parametrize("via", RESULT_VIAS)
async def test_result_is_failure_classifies_return_values(
    make_breaker: Factory, assert_invariant: Invariant, via: str, value: int | None, failed: bool
) -> None:
    """A value that result_is_failure flags counts as a failure and is still returned."""
    breaker = make_breaker(
        failure_threshold=None, result_is_failure=lambda r: r is None or r >= 500
    )
    assert await _invoke(breaker, via, lambda: value) == value
    m = breaker.metrics
    assert_invariant(m)
    assert (m.failed_calls, m.successful_calls) == (int(failed), int(not failed))


def test_failing_results_open_the_breaker(make_breaker: Factory) -> None:
    """Results flagged by result_is_failure trip the consecutive-failure rule like exceptions."""
    breaker = make_breaker(failure_threshold=2, result_is_failure=lambda r: r == "error")
    assert breaker.call(lambda: "error") == "error"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(lambda: "error") == "error"
    assert breaker.state is CircuitState.OPEN


def test_result_is_failure_is_not_asked_about_exceptions(make_breaker: Factory) -> None:
    """The result predicate only sees return values, never raised exceptions."""
    seen: list[object] = []

    def predicate(result: object) -> bool:
        seen.append(result)
        return False

    breaker = make_breaker(failure_threshold=None, result_is_failure=predicate)
    _fail(breaker)
    assert breaker.call(lambda: "v") == "v"
    assert seen == ["v"]
    assert breaker.metrics.failed_calls == 1


def test_raising_result_is_failure_is_logged_and_counts_as_success(
    make_breaker: Factory, assert_invariant: Invariant, caplog: pytest.LogCaptureFixture
) -> None:
    """A result_is_failure that raises is logged, the result returned and counted as a success."""

    def predicate(result: object) -> bool:
        raise RuntimeError("predicate bug")

    breaker = make_breaker(failure_threshold=1, result_is_failure=predicate)
    with caplog.at_level(logging.WARNING):
        assert breaker.call(lambda: "value") == "value"
    m = breaker.metrics
    assert_invariant(m)
    assert (m.successful_calls, m.failed_calls) == (1, 0)
    assert m.state is CircuitState.CLOSED
    assert any(r.levelno >= logging.WARNING for r in caplog.records)


def _finish_late(breaker: CircuitBreaker, outcome: str, meanwhile: Callable[[], None]) -> None:
    """Admit one call now, run ``meanwhile`` while it is in flight, then end it with ``outcome``."""
    with contextlib.suppress(Boom), breaker.permit():
        meanwhile()
        if outcome == "failure":
            raise Boom


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_late_result_after_opening_updates_counters_only(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant, outcome: str
) -> None:
    """A call admitted in CLOSED that ends after the breaker opened cannot move the OPEN state."""
    breaker = make_breaker(failure_threshold=2, recovery_timeout=10.0, recovery_backoff=2.0)

    def trip() -> None:
        _fail(breaker)
        _fail(breaker)
        assert breaker.state is CircuitState.OPEN
        clock.advance(3.0)

    _finish_late(breaker, outcome, trip)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.OPEN
    assert m.times_opened == 1
    assert m.total_calls == 3
    assert m.failed_calls == (3 if outcome == "failure" else 2)
    assert m.retry_after == pytest.approx(7.0)  # the opening was neither extended nor backed off
    clock.advance(7.0)
    assert breaker.state is CircuitState.HALF_OPEN


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_late_result_in_half_open_is_not_a_probe(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant, outcome: str
) -> None:
    """A call admitted in CLOSED that ends in HALF_OPEN neither closes nor re-opens the breaker."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=1)

    def trip_and_wait() -> None:
        _to_half_open(breaker, clock)

    _finish_late(breaker, outcome, trip_and_wait)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.HALF_OPEN
    assert m.times_opened == 1
    assert breaker.call(lambda: "probe") == "probe"  # the probe permit is still free
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("reset", CircuitState.CLOSED),
        ("force_open", CircuitState.FORCED_OPEN),
        ("disable", CircuitState.DISABLED),
    ],
)
@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_late_probe_after_a_manual_transition_cannot_move_the_state(
    make_breaker: Factory,
    clock: FakeClock,
    assert_invariant: Invariant,
    action: str,
    expected: CircuitState,
    outcome: str,
) -> None:
    """A probe still in flight when reset()/force_open()/disable() runs only updates counters."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0)
    _to_half_open(breaker, clock)
    _finish_late(breaker, outcome, getattr(breaker, action))
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is expected
    assert m.total_calls == 2
    assert m.times_opened == 1
    if expected is CircuitState.CLOSED:
        assert m.consecutive_failures == 0


def test_late_probe_after_reopening_keeps_it_open(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant
) -> None:
    """A successful probe that ends after a sibling probe re-opened the breaker leaves it OPEN."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0, half_open_max_calls=2)
    _to_half_open(breaker, clock)
    _finish_late(breaker, "success", lambda: _fail(breaker))
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.OPEN
    assert m.times_opened == 2
    assert m.retry_after == pytest.approx(10.0)


@pytest.mark.parametrize("admitted_in", ["closed", "disabled"])
def test_late_failure_from_an_older_closed_phase_does_not_count(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant, admitted_in: str
) -> None:
    """A failure admitted before the breaker cycled back to CLOSED cannot trip the new phase."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0)
    if admitted_in == "disabled":
        breaker.disable()

    def cycle_back_to_closed() -> None:
        if admitted_in == "disabled":
            breaker.reset()
        else:
            _to_half_open(breaker, clock)
            breaker.call(lambda: None)
        assert breaker.state is CircuitState.CLOSED

    _finish_late(breaker, "failure", cycle_back_to_closed)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert m.consecutive_failures == 0
    assert breaker.call(lambda: "ok") == "ok"


def test_late_failure_admitted_before_reset_in_closed_does_not_count(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """reset() while CLOSED starts afresh: a failure admitted before it cannot trip the breaker."""
    breaker = make_breaker(failure_threshold=1)
    _finish_late(breaker, "failure", breaker.reset)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert m.failed_calls == 1
    assert m.consecutive_failures == 0


@pytest.mark.parametrize("entry", ["decorator", "call"])
def test_late_lock_free_success_cannot_reset_a_newer_failure_streak(
    make_breaker: Factory, assert_invariant: Invariant, entry: str
) -> None:
    """A plain success admitted before reset() and finished after it stays out of the new streak."""
    breaker = make_breaker(failure_threshold=3)

    def in_flight() -> str:
        breaker.reset()  # a new CLOSED phase starts while this call runs
        _fail(breaker)
        _fail(breaker)
        return "late"

    guarded = breaker(in_flight) if entry == "decorator" else (lambda: breaker.call(in_flight))
    assert guarded() == "late"
    assert breaker.metrics.consecutive_failures == 2  # the late success did not reset it
    _fail(breaker)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.OPEN
    assert m.successful_calls == 1
    assert m.failed_calls == 3


def _not_a_lookup_error(exc: BaseException) -> bool:
    return not isinstance(exc, LookupError)


@pytest.mark.parametrize("via", VIAS)
async def test_record_exceptions_predicate_carves_out_a_subclass(
    make_breaker: Factory, via: str
) -> None:
    """With a record_exceptions predicate, KeyError is a success and ValueError a failure."""
    breaker = make_breaker(failure_threshold=None, record_exceptions=_not_a_lookup_error)
    for exc in (KeyError("k"), ValueError("v"), IndexError(0)):
        with pytest.raises(type(exc)):
            await _invoke(breaker, via, lambda e=exc: _raise(e))
    m = breaker.metrics
    assert (m.successful_calls, m.failed_calls) == (2, 1)


def test_ignore_exceptions_predicate_wins_over_record(make_breaker: Factory) -> None:
    """An ignore predicate that matches makes the call ignored even though it is recorded."""
    breaker = make_breaker(ignore_exceptions=lambda exc: "retry later" in str(exc))
    with pytest.raises(ConnectionError):
        breaker.call(_raise, ConnectionError("retry later"))
    with pytest.raises(ConnectionError):
        breaker.call(_raise, ConnectionError("refused"))
    m = breaker.metrics
    assert (m.ignored_calls, m.failed_calls) == (1, 1)


def test_a_raising_record_predicate_is_logged_and_counts_a_failure(
    make_breaker: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A record_exceptions predicate that raises is logged; the call counts as a failure."""

    def broken(exc: BaseException) -> bool:
        raise RuntimeError("bug in predicate")

    breaker = make_breaker(record_exceptions=broken, ignore_exceptions=broken)
    with caplog.at_level(logging.ERROR, "engined.circuit_breaker"), pytest.raises(Boom):
        breaker.call(_raise, Boom())
    assert breaker.metrics.failed_calls == 1
    assert "record_exceptions" in caplog.text
    assert "ignore_exceptions" in caplog.text


def test_a_record_predicate_never_sees_base_exceptions(make_breaker: Factory) -> None:
    """Cancellation is released before any predicate runs: it is never counted."""
    seen: list[BaseException] = []
    breaker = make_breaker(record_exceptions=lambda exc: seen.append(exc) is None)
    with pytest.raises(KeyboardInterrupt):
        breaker.call(_raise, KeyboardInterrupt())
    assert seen == []
    assert breaker.metrics.total_calls == 0


def test_calling_a_decorated_function_through_call_counts_twice(make_breaker: Factory) -> None:
    """As documented: @breaker and breaker.call on the same call go through the breaker twice."""
    breaker = make_breaker()
    guarded = breaker(lambda: 1)
    assert breaker.call(guarded) == 1
    assert breaker.metrics.successful_calls == 2
