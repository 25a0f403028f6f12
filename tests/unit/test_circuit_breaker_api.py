"""Public surface: decorators, context managers, call/call_async, the error, enums, metrics."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from types import TracebackType

import pytest

import engined
from engined import (
    CircuitBreaker,
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitState,
)
from engined.core import circuit_breaker as cb_module
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]


class Boom(Exception):
    """The recorded failure."""


def _raise(exc: BaseException) -> None:
    raise exc


def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise, Boom())


def _sync_with(breaker: CircuitBreaker, exc: BaseException | None) -> None:
    with breaker.permit():
        if exc is not None:
            raise exc


async def _async_with(breaker: CircuitBreaker, exc: BaseException | None) -> None:
    async with breaker.permit():
        if exc is not None:
            raise exc


def test_public_names_are_one_set_of_objects() -> None:
    """The engined package re-exports the very objects of engined.core.circuit_breaker."""
    for name in (
        "CircuitBreaker",
        "CircuitState",
        "CircuitBreakerOpenError",
        "CircuitBreakerMetrics",
        "StateChange",
        "CircuitBreakerRegistry",
        "default_registry",
        "circuit_breaker",
    ):
        assert getattr(engined, name) is getattr(cb_module, name)
        assert name in engined.__all__


def test_circuit_state_is_a_lower_case_str_enum() -> None:
    """CircuitState members are strings equal to their lower-case values."""
    assert {s.value for s in CircuitState} == {
        "closed",
        "open",
        "half_open",
        "forced_open",
        "disabled",
    }
    for state in CircuitState:
        assert isinstance(state, str)
        assert state == state.value
        assert CircuitState(state.value) is state
        assert str(state) == state.value


def test_decorator_preserves_sync_function_identity(make_breaker: Factory) -> None:
    """@breaker keeps __name__, __doc__, __wrapped__ and the signature of a sync function."""
    breaker = make_breaker()

    def fetch(user_id: int, *, verbose: bool = False) -> str:
        """Fetch a user."""
        return f"{user_id}:{verbose}"

    wrapped = breaker(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch a user."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped(3, verbose=True) == "3:True"
    assert breaker.metrics.successful_calls == 1


async def test_decorator_preserves_async_function_identity(make_breaker: Factory) -> None:
    """@breaker on an async function gives a coroutine function with the same name and doc."""
    breaker = make_breaker()

    async def fetch(user_id: int, *, verbose: bool = False) -> str:
        """Fetch a user asynchronously."""
        return f"{user_id}:{verbose}"

    wrapped = breaker(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch a user asynchronously."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert await wrapped(5, verbose=True) == "5:True"
    assert breaker.metrics.successful_calls == 1


def test_call_passes_arguments_and_returns_the_result(make_breaker: Factory) -> None:
    """call(fn, *args, **kwargs) forwards arguments and returns fn's value."""
    breaker = make_breaker()
    assert breaker.call(lambda a, b, *, c: (a, b, c), 1, 2, c=3) == (1, 2, 3)


async def test_call_async_passes_arguments_and_returns_the_result(make_breaker: Factory) -> None:
    """Awaiting call_async(fn, *args, **kwargs) forwards arguments and returns the awaited value."""
    breaker = make_breaker()

    async def add(a: int, b: int, *, c: int) -> int:
        return a + b + c

    assert await breaker.call_async(add, 1, 2, c=3) == 6
    assert breaker.metrics.successful_calls == 1


async def test_every_entry_point_records_failures_and_successes(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """Decorators, call, call_async, with and async with all feed the same counters."""
    breaker = make_breaker(failure_threshold=None)

    @breaker
    def sync_fn(fail: bool) -> str:
        if fail:
            raise Boom
        return "s"

    @breaker
    async def async_fn(fail: bool) -> str:
        if fail:
            raise Boom
        return "a"

    for fail in (False, True):
        exc = Boom() if fail else None
        runs = [
            lambda f=fail: sync_fn(f),
            lambda f=fail: breaker.call(sync_fn.__wrapped__, f),
            lambda e=exc: _sync_with(breaker, e),
        ]
        for run in runs:
            if fail:
                with pytest.raises(Boom):
                    run()
            else:
                run()
        for coro_fn in (
            lambda f=fail: async_fn(f),
            lambda f=fail: breaker.call_async(async_fn.__wrapped__, f),
            lambda e=exc: _async_with(breaker, e),
        ):
            if fail:
                with pytest.raises(Boom):
                    await coro_fn()
            else:
                await coro_fn()
    m = breaker.metrics
    assert_invariant(m)
    assert (m.successful_calls, m.failed_calls) == (6, 6)


async def test_open_breaker_rejects_every_entry_point_without_running_the_body(
    make_breaker: Factory,
) -> None:
    """In OPEN, decorators, call, call_async, with and async with all raise before the body runs."""
    breaker = make_breaker(failure_threshold=1)
    _fail(breaker)
    ran: list[str] = []

    def body() -> None:
        ran.append("body")

    async def abody() -> None:
        ran.append("abody")

    with pytest.raises(CircuitBreakerOpenError):
        breaker(body)()
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(body)
    with pytest.raises(CircuitBreakerOpenError):
        _sync_with(breaker, Boom())
    with pytest.raises(CircuitBreakerOpenError):
        await breaker(abody)()
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call_async(abody)
    with pytest.raises(CircuitBreakerOpenError):
        await _async_with(breaker, Boom())
    m = breaker.metrics
    assert ran == []
    assert (m.rejected_calls, m.total_calls) == (6, 1)


def test_recursive_decorated_function_nests_calls(make_breaker: Factory) -> None:
    """A decorated function may call itself through the same breaker; each level is one call."""
    breaker = make_breaker()

    @breaker
    def depth(n: int) -> int:
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(5) == 5
    assert breaker.metrics.successful_calls == 6

    with breaker.permit(), breaker.permit():
        pass
    assert breaker.metrics.successful_calls == 8


def test_name_property(make_breaker: Factory) -> None:
    """breaker.name is the name it was created with."""
    assert make_breaker("inventory-db").name == "inventory-db"


def test_open_error_is_an_exception_carrying_name_state_retry_after(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """CircuitBreakerOpenError is an Exception with name, state, retry_after, naming the breaker."""
    breaker = make_breaker("billing-api", failure_threshold=1, recovery_timeout=20.0)
    _fail(breaker)
    clock.advance(5.0)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(lambda: None)
    err = info.value
    assert isinstance(err, Exception)
    assert err.name == "billing-api"
    assert err.state is CircuitState.OPEN
    assert err.retry_after == pytest.approx(15.0)
    assert "billing-api" in str(err)


def _tb_depth(tb: TracebackType | None) -> int:
    depth = 0
    while tb is not None:
        depth += 1
        tb = tb.tb_next
    return depth


def _context_depth(exc: BaseException) -> int:
    depth = 0
    seen: BaseException | None = exc.__context__
    while seen is not None and depth < 100:
        depth += 1
        seen = seen.__context__
    return depth


@pytest.mark.parametrize("via", ["call", "decorator", "with"])
def test_rejections_are_fresh_errors_with_bounded_tracebacks(
    make_breaker: Factory, via: str
) -> None:
    """1000 rejections raise 1000 distinct errors whose tracebacks and contexts do not grow.

    Guards against re-raising one shared exception object, whose __traceback__ grows at every raise.
    """
    breaker = make_breaker(failure_threshold=1)
    _fail(breaker)
    decorated = breaker(lambda: None)
    errors: list[CircuitBreakerOpenError] = []
    for _ in range(1000):
        try:
            if via == "call":
                breaker.call(lambda: None)
            elif via == "decorator":
                decorated()
            else:
                _sync_with(breaker, None)
        except CircuitBreakerOpenError as err:
            errors.append(err)
    assert len(errors) == 1000
    assert len({id(e) for e in errors}) == 1000
    depths = {_tb_depth(e.__traceback__) for e in errors}
    assert max(depths) <= 8, depths
    assert len(depths) == 1, depths
    assert max(_context_depth(e) for e in errors) <= 1
    assert breaker.metrics.rejected_calls == 1000


async def test_async_rejections_are_fresh_errors(make_breaker: Factory) -> None:
    """Async rejections are distinct objects with bounded tracebacks too."""
    breaker = make_breaker(failure_threshold=1)
    _fail(breaker)

    async def noop() -> None:
        return None

    errors: list[CircuitBreakerOpenError] = []
    for _ in range(500):
        try:
            await breaker.call_async(noop)
        except CircuitBreakerOpenError as err:
            errors.append(err)
    assert len({id(e) for e in errors}) == 500
    assert max(_tb_depth(e.__traceback__) for e in errors) <= 8


def test_metrics_is_a_frozen_slotted_snapshot(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """The metrics property returns an immutable, slotted dataclass later calls do not change."""
    breaker = make_breaker("snap")
    breaker.call(lambda: None)
    snap = breaker.metrics
    assert isinstance(snap, CircuitBreakerMetrics)
    assert dataclasses.is_dataclass(snap)
    assert not hasattr(snap, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.total_calls = 99  # type: ignore[misc]
    _fail(breaker)
    breaker.force_open()
    assert snap.total_calls == 1
    assert snap.state is CircuitState.CLOSED
    assert dict(snap.transitions) == {}  # not a view of the live counters
    assert breaker.metrics.total_calls == 2
    assert snap.name == "snap"
    assert_invariant(snap)
    fields = {f.name for f in dataclasses.fields(snap)}
    assert fields >= {
        "name",
        "state",
        "total_calls",
        "successful_calls",
        "failed_calls",
        "ignored_calls",
        "rejected_calls",
        "slow_calls",
        "consecutive_failures",
        "failure_rate",
        "slow_call_rate",
        "times_opened",
        "retry_after",
        "transitions",
    }


def test_fresh_breaker_metrics_are_zero(make_breaker: Factory) -> None:
    """A new breaker is CLOSED with every counter at zero and no rates."""
    m = make_breaker().metrics
    assert m.state is CircuitState.CLOSED
    assert (m.total_calls, m.rejected_calls, m.slow_calls, m.times_opened) == (0, 0, 0, 0)
    assert m.failure_rate is None
    assert m.retry_after is None
    assert dict(m.transitions) == {}


def test_metrics_transitions_count_each_edge(make_breaker: Factory, clock: FakeClock) -> None:
    """metrics.transitions maps (from_state, to_state) to how often that transition happened."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=1.0)
    s = CircuitState
    for _ in range(2):
        _fail(breaker)
        clock.advance(1.0)
        breaker.call(lambda: None)
    _fail(breaker)
    clock.advance(1.0)
    _fail(breaker)
    breaker.force_open()
    breaker.reset()
    breaker.disable()
    assert dict(breaker.metrics.transitions) == {
        (s.CLOSED, s.OPEN): 3,
        (s.OPEN, s.HALF_OPEN): 3,
        (s.HALF_OPEN, s.CLOSED): 2,
        (s.HALF_OPEN, s.OPEN): 1,
        (s.OPEN, s.FORCED_OPEN): 1,
        (s.FORCED_OPEN, s.CLOSED): 1,
        (s.CLOSED, s.DISABLED): 1,
    }
