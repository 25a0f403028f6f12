"""FakeDependency: scripted, seeded and switched failures, latency on the clock, exact counts."""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

import engined
from engined import testing
from engined.testing import FakeClock, FakeDependency

# Latencies far beyond the test timeout (60 s): a test using one passes only if nothing
# really sleeps.
HOUR = 3600.0


def outcomes(fn: Callable[[], object], n: int) -> list[object]:
    """Call ``fn`` n times; return each result, or the class of the exception it raised."""
    seen: list[object] = []
    for _ in range(n):
        try:
            seen.append(fn())
        except Exception as exc:
            seen.append(type(exc))
    return seen


def test_testing_exports_are_sorted_and_include_fake_dependency() -> None:
    """``engined.testing.__all__`` is sorted and names FakeDependency next to FakeClock."""
    assert testing.__all__ == sorted(testing.__all__)
    assert {"FakeClock", "FakeDependency"} <= set(testing.__all__)


# Results and scripts


def test_returns_none_by_default() -> None:
    """A dependency with no script and no failure rate returns None every time."""
    dep = FakeDependency()
    assert outcomes(dep, 3) == [None, None, None]
    assert (dep.calls, dep.successes, dep.failures) == (3, 3, 0)


def test_returns_the_configured_result() -> None:
    """``result=`` is what a successful call returns, and it may be reassigned."""
    dep = FakeDependency("db", result={"rows": 1})
    assert dep() == {"rows": 1}
    dep.result = {"rows": 2}
    assert dep.call() == {"rows": 2}


def test_script_raises_exception_classes_as_fresh_instances() -> None:
    """A scripted exception class is raised as a new instance naming the dependency and call."""
    dep = FakeDependency("db", script=[TimeoutError, TimeoutError])
    with pytest.raises(TimeoutError, match=r"db: scripted failure \(call 1\)") as first:
        dep()
    with pytest.raises(TimeoutError, match=r"call 2") as second:
        dep()
    assert first.value is not second.value


def test_script_raises_exception_instances_as_given() -> None:
    """A scripted exception instance is raised as it is."""
    error = PermissionError("denied")
    dep = FakeDependency(script=[error])
    with pytest.raises(PermissionError) as raised:
        dep()
    assert raised.value is error


def test_script_returns_other_values() -> None:
    """Scripted values that are not exceptions are returned, in order."""
    dep = FakeDependency(result=0, script=[1, ConnectionError, 2])
    assert outcomes(dep, 4) == [1, ConnectionError, 2, 0]


def test_script_may_raise_base_exceptions() -> None:
    """A BaseException such as KeyboardInterrupt can be scripted, and counts as a failure."""
    dep = FakeDependency(script=[KeyboardInterrupt])
    with pytest.raises(KeyboardInterrupt):
        dep()
    assert dep.failures == 1


def test_script_exhaustion_falls_back_to_the_steady_result() -> None:
    """When the script runs out, calls return ``result``."""
    dep = FakeDependency(result="ok", script=[ConnectionError, ConnectionError])
    assert dep.script_left == 2
    assert outcomes(dep, 4) == [ConnectionError, ConnectionError, "ok", "ok"]
    assert dep.script_left == 0


def test_script_exhaustion_falls_back_to_the_failure_rate() -> None:
    """After the script, ``failure_rate`` decides: with 1.0 every later call fails."""
    dep = FakeDependency(result="ok", script=["first"], failure_rate=1.0, error=OSError)
    assert outcomes(dep, 3) == ["first", OSError, OSError]


def test_script_is_read_once_from_any_iterable() -> None:
    """A generator script is consumed at construction and then played in order."""
    dep = FakeDependency(result=0, script=(n for n in (1, 2)))
    assert dep.script_left == 2
    assert outcomes(dep, 3) == [1, 2, 0]


def test_enqueue_appends_to_the_script() -> None:
    """``enqueue`` adds outcomes after what is left of the script."""
    dep = FakeDependency(result=0, script=[1])
    dep.enqueue(ConnectionError, 2)
    assert dep.script_left == 3
    assert outcomes(dep, 4) == [1, ConnectionError, 2, 0]


# Failure rate


def test_failure_rate_zero_never_fails() -> None:
    """The default rate 0 never fails and draws no random numbers."""
    rng = random.Random(1)
    state = rng.getstate()
    dep = FakeDependency(result=1, rng=rng)
    assert outcomes(dep, 100) == [1] * 100
    assert rng.getstate() == state


def test_failure_rate_one_always_fails_with_the_default_error() -> None:
    """Rate 1 fails every call with a fresh ConnectionError, without drawing."""
    rng = random.Random(1)
    state = rng.getstate()
    dep = FakeDependency("peer", failure_rate=1.0, rng=rng)
    with pytest.raises(ConnectionError, match=r"peer: injected failure \(call 1\)"):
        dep()
    assert outcomes(dep, 10) == [ConnectionError] * 10
    assert rng.getstate() == state


def test_error_class_is_configurable() -> None:
    """``error=`` sets what drawn failures raise: a class, or an instance as it is."""
    assert outcomes(FakeDependency(failure_rate=1, error=TimeoutError), 1) == [TimeoutError]
    error = OSError("disk")
    dep = FakeDependency(failure_rate=1, error=error)
    with pytest.raises(OSError, match="disk") as raised:
        dep()
    assert raised.value is error


def test_seeded_failures_are_deterministic() -> None:
    """The same seed fails the same calls; another seed fails others, at about the rate."""
    first = outcomes(FakeDependency(result=1, failure_rate=0.3, seed=42), 1000)
    again = outcomes(FakeDependency(result=1, failure_rate=0.3, seed=42), 1000)
    other = outcomes(FakeDependency(result=1, failure_rate=0.3, seed=43), 1000)
    assert first == again
    assert first != other
    assert 200 < first.count(ConnectionError) < 400


def test_rng_draws_like_the_same_seed() -> None:
    """Passing ``rng=random.Random(s)`` gives the same pattern as ``seed=s``."""
    seeded = outcomes(FakeDependency(result=1, failure_rate=0.5, seed=7), 200)
    with_rng = outcomes(FakeDependency(result=1, failure_rate=0.5, rng=random.Random(7)), 200)
    assert seeded == with_rng


def test_draws_are_deterministic_without_a_seed() -> None:
    """Without seed or rng the draws are still repeatable (seed 0)."""
    unseeded = outcomes(FakeDependency(result=1, failure_rate=0.5), 200)
    assert unseeded == outcomes(FakeDependency(result=1, failure_rate=0.5, seed=0), 200)


# Latency


def test_latency_is_slept_on_the_clock_in_sync_calls() -> None:
    """Each sync call sleeps ``latency`` on the injected clock, which records it."""
    clock = FakeClock()
    dep = FakeDependency(result=1, latency=HOUR, clock=clock)
    assert outcomes(dep, 3) == [1, 1, 1]
    assert clock.sleeps == [HOUR] * 3
    assert clock.monotonic() == 3 * HOUR


async def test_latency_is_awaited_on_the_clock_in_async_calls() -> None:
    """Each async call awaits ``latency`` on the injected clock, which records it."""
    clock = FakeClock()
    dep = FakeDependency(result=1, latency=HOUR, clock=clock)
    assert [await dep.call_async() for _ in range(3)] == [1, 1, 1]
    assert clock.sleeps == [HOUR] * 3


def test_latency_applies_to_failures_too() -> None:
    """A failing call also takes its latency before it raises."""
    clock = FakeClock()
    dep = FakeDependency(script=[ConnectionError], latency=0.5, clock=clock)
    dep.down()
    assert outcomes(dep, 1) == [ConnectionError]
    dep.up()
    assert outcomes(dep, 1) == [ConnectionError]
    assert clock.sleeps == [0.5, 0.5]


async def test_zero_latency_does_not_touch_the_clock() -> None:
    """With no latency, neither sync nor async calls sleep at all."""
    clock = FakeClock()
    dep = FakeDependency(clock=clock)
    dep()
    await dep.call_async()
    assert clock.sleeps == []


def test_latency_can_be_changed_mid_test() -> None:
    """Setting ``latency`` makes later calls slower, validated like the constructor."""
    clock = FakeClock()
    dep = FakeDependency(clock=clock)
    dep()
    dep.latency = 2
    dep()
    assert dep.latency == 2.0
    assert clock.sleeps == [2.0]
    with pytest.raises(ValueError, match="latency"):
        dep.latency = -1


# Outages


def test_down_raises_fresh_instances_of_the_default_error() -> None:
    """While down, every call raises a new instance of the constructor's error class."""
    dep = FakeDependency("db", result=1, error=TimeoutError)
    dep.down()
    assert dep.is_down
    with pytest.raises(TimeoutError, match=r"db is down \(call 1\)") as first:
        dep()
    with pytest.raises(TimeoutError) as second:
        dep()
    assert first.value is not second.value
    assert (dep.calls, dep.successes, dep.failures) == (2, 0, 2)


def test_down_takes_an_error_class_or_instance() -> None:
    """``down(error=...)`` overrides the error: a class per call, or the instance itself."""
    dep = FakeDependency()
    dep.down(error=BrokenPipeError)
    assert outcomes(dep, 2) == [BrokenPipeError, BrokenPipeError]
    error = ConnectionResetError("reset")
    dep.down(error=error)
    with pytest.raises(ConnectionResetError) as raised:
        dep()
    assert raised.value is error


def test_up_ends_the_outage() -> None:
    """After ``up``, calls succeed again; ``up`` without an outage does nothing."""
    dep = FakeDependency(result="ok")
    dep.up()
    dep.down()
    assert outcomes(dep, 1) == [ConnectionError]
    dep.up()
    assert not dep.is_down
    assert outcomes(dep, 1) == ["ok"]


def test_down_consumes_neither_script_nor_draws() -> None:
    """An outage leaves the script and the seeded draws where they were."""
    plain = outcomes(FakeDependency(result=1, script=[2, 3], failure_rate=0.5, seed=9), 20)
    dep = FakeDependency(result=1, script=[2, 3], failure_rate=0.5, seed=9)
    first = outcomes(dep, 1)
    dep.down()
    assert outcomes(dep, 5) == [ConnectionError] * 5
    dep.up()
    assert first + outcomes(dep, 19) == plain


async def test_down_applies_to_async_calls() -> None:
    """``call_async`` raises the outage's error as well."""
    dep = FakeDependency()
    dep.down(error=TimeoutError)
    with pytest.raises(TimeoutError):
        await dep.call_async()


# Calling conventions and records


def test_call_and_calling_the_object_are_the_same() -> None:
    """``dep(...)`` and ``dep.call(...)`` consume the same script."""
    dep = FakeDependency(result=0, script=[1, 2])
    assert dep() == 1
    assert dep.call() == 2


async def test_call_async_is_a_coroutine_function() -> None:
    """``call_async`` is an ``async def``, so decorators take their async path."""
    dep = FakeDependency(result=5, script=[4])
    assert inspect.iscoroutinefunction(dep.call_async)
    assert await dep.call_async() == 4
    assert await dep.call_async() == 5


def test_last_arguments_are_recorded() -> None:
    """The latest call's positional and keyword arguments are kept."""
    dep = FakeDependency()
    assert (dep.last_args, dep.last_kwargs) == ((), {})
    dep("SELECT 1", timeout=2)
    dep.call("SELECT 2")
    assert (dep.last_args, dep.last_kwargs) == (("SELECT 2",), {})


def test_reset_counts_zeroes_the_counters_only() -> None:
    """``reset_counts`` clears the counts and last arguments, not the script or the outage."""
    dep = FakeDependency(result=0, script=[ConnectionError, 1, 2])
    outcomes(dep, 2)
    dep.down()
    dep.reset_counts()
    assert (dep.calls, dep.successes, dep.failures) == (0, 0, 0)
    assert (dep.last_args, dep.last_kwargs) == ((), {})
    assert dep.is_down
    assert dep.script_left == 1
    dep.up()
    assert outcomes(dep, 1) == [2]


def test_repr_shows_name_state_and_counts() -> None:
    """The repr says which dependency, whether it is down, and what it counted."""
    dep = FakeDependency("db", script=[ConnectionError, 1])
    outcomes(dep, 1)
    assert repr(dep) == (
        "FakeDependency('db', up, calls=1, successes=0, failures=1, script_left=1)"
    )
    dep.down()
    assert "'db', down," in repr(dep)


# Exact counts under concurrency


@pytest.mark.usefixtures("fast_thread_switching")
def test_counts_are_exact_under_threads() -> None:
    """8 threads x 1,000 calls: every call counted once, failures as a sequential run draws."""
    dep = FakeDependency(result=1, failure_rate=0.3, seed=5, latency=0.001, clock=FakeClock())
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        outcomes(dep, 1000)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sequential = outcomes(FakeDependency(result=1, failure_rate=0.3, seed=5), 8000)
    assert dep.calls == 8000
    assert dep.failures == sequential.count(ConnectionError)
    assert dep.successes == 8000 - dep.failures


async def test_counts_are_exact_under_asyncio_tasks() -> None:
    """100 interleaving tasks x 10 calls: every call counted once, script consumed in order."""
    clock = FakeClock()
    dep = FakeDependency(
        result=1, script=[ConnectionError] * 50, failure_rate=0.5, seed=3, latency=0.01, clock=clock
    )

    async def task() -> int:
        failed = 0
        for _ in range(10):
            try:
                await dep.call_async()
            except ConnectionError:
                failed += 1
        return failed

    failed = sum(await asyncio.gather(*(task() for _ in range(100))))
    sequential = outcomes(
        FakeDependency(result=1, script=[ConnectionError] * 50, failure_rate=0.5, seed=3), 1000
    )
    assert dep.calls == 1000
    assert dep.failures == failed == sequential.count(ConnectionError)
    assert dep.successes == 1000 - failed
    assert len(clock.sleeps) == 1000


async def test_a_call_cancelled_in_its_latency_counts_as_a_call_only() -> None:
    """A task cancelled while waiting out its latency neither succeeded nor failed."""
    clock = FakeClock()
    dep = FakeDependency(latency=1.0, clock=clock)
    call = asyncio.ensure_future(dep.call_async())
    await asyncio.sleep(0)  # noqa: TID251  # let the call start and reach its one yield
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (dep.calls, dep.successes, dep.failures) == (1, 0, 0)


# Composition with engined


def test_breaker_opens_after_threshold_scripted_failures() -> None:
    """Behind a breaker, failure_threshold scripted failures open it; later calls never arrive."""
    clock = FakeClock()
    dep = FakeDependency("db", result="row", script=[ConnectionError] * 3, clock=clock)
    breaker = engined.CircuitBreaker("db", failure_threshold=3, recovery_timeout=10.0, clock=clock)
    guarded = breaker(dep.call)
    assert outcomes(guarded, 5) == [ConnectionError] * 3 + [engined.CircuitBreakerOpenError] * 2
    opened = breaker.state
    assert dep.calls == 3
    clock.advance(10.0)
    assert guarded() == "row"  # the probe reaches the dependency, whose script ran out
    closed = breaker.state
    assert (opened, closed) == (engined.CircuitState.OPEN, engined.CircuitState.CLOSED)


async def test_async_breaker_opens_after_threshold_scripted_failures() -> None:
    """``@breaker`` on ``call_async`` takes the async path and opens the same way."""
    clock = FakeClock()
    dep = FakeDependency(script=[ConnectionError] * 2, clock=clock)
    breaker = engined.CircuitBreaker("peer", failure_threshold=2, clock=clock)
    guarded = breaker(dep.call_async)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await guarded()
    with pytest.raises(engined.CircuitBreakerOpenError):
        await guarded()
    assert dep.calls == 2


def test_retry_retries_a_scripted_failure_then_succeeds() -> None:
    """``@retry`` over a dependency scripted to fail once returns the second call's result."""
    clock = FakeClock()
    dep = FakeDependency(result="ok", script=[ConnectionError], latency=0.1, clock=clock)
    backoff = engined.Backoff(initial=0.5, jitter="none")
    retried = engined.retry(on=ConnectionError, attempts=3, backoff=backoff, clock=clock)(dep.call)
    assert retried() == "ok"
    assert (dep.calls, dep.successes, dep.failures) == (2, 1, 1)
    assert clock.sleeps == [0.1, 0.5, 0.1]  # latency, backoff, latency


async def test_async_retry_retries_a_scripted_failure_then_succeeds() -> None:
    """``@retry`` on ``call_async`` awaits the backoff on the clock and succeeds."""
    clock = FakeClock()
    dep = FakeDependency(result=7, script=[TimeoutError, TimeoutError], clock=clock)
    backoff = engined.Backoff(initial=1.0, multiplier=2.0, jitter="none")
    retried = engined.retry(on=TimeoutError, attempts=3, backoff=backoff, clock=clock)(
        dep.call_async
    )
    assert await retried() == 7
    assert dep.calls == 3
    assert clock.sleeps == [1.0, 2.0]


# Validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": 3}, TypeError, "name"),
        ({"failure_rate": -0.1}, ValueError, "failure_rate"),
        ({"failure_rate": 1.5}, ValueError, "failure_rate must be in"),
        ({"failure_rate": 50}, ValueError, "not a percentage: use 0.5"),
        ({"failure_rate": math.nan}, ValueError, "failure_rate"),
        ({"failure_rate": True}, TypeError, "failure_rate"),
        ({"failure_rate": "0.5"}, TypeError, "failure_rate"),
        ({"seed": True}, TypeError, "seed"),
        ({"seed": "abc"}, TypeError, "seed"),
        ({"rng": 5}, TypeError, "rng"),
        ({"seed": 1, "rng": random.Random(1)}, ValueError, "seed or rng"),
        ({"latency": -1}, ValueError, "latency"),
        ({"latency": math.inf}, ValueError, "latency"),
        ({"latency": "1"}, TypeError, "latency"),
        ({"error": "boom"}, TypeError, "error"),
        ({"error": int}, TypeError, "error"),
        ({"clock": None}, TypeError, "clock"),
        ({"script": "fail"}, TypeError, "script"),
        ({"script": 3}, TypeError, "script"),
    ],
)
def test_construction_validates_arguments_naming_them(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """A wrong argument raises at construction, with the parameter named."""
    with pytest.raises(error, match=match):
        FakeDependency(**kwargs)


def test_down_validates_its_error() -> None:
    """``down`` refuses an error that is neither an exception class nor an instance."""
    dep = FakeDependency()
    with pytest.raises(TypeError, match="error"):
        dep.down(error="boom")  # type: ignore[arg-type]
    assert not dep.is_down
