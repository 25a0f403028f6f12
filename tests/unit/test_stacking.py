"""The documented stack, outermost first: fallback > retry > circuit breaker > timeout > bulkhead.

docs/resilience-semantics.md (Stacking): a timeout counts as a breaker failure, an open breaker's
CircuitBreakerOpenError is never retried, so retries stop at once and the fallback answers.
Retries sleep on the FakeClock; only @timeout runs on real time, and it is kept at 10 ms.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from engined import (
    SYSTEM_CLOCK,
    Backoff,
    Bulkhead,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitState,
    fallback,
    retry,
    timeout,
)
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]

# Exact schedule: 1 s before the 2nd attempt, then 2, 4, 8.
BACKOFF = Backoff(initial=1.0, multiplier=2.0, max=10.0, jitter="none")
KINDS = ["sync", "async"]


class Boom(Exception):
    """The dependency's failure."""


@dataclass
class Fallback:
    """A fallback handler that records what it was given and answers ``"fallback"``."""

    seen: list[tuple[BaseException, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def sync(self, exc: BaseException, *args: Any, **kwargs: Any) -> str:
        self.seen.append((exc, args, kwargs))
        return "fallback"

    async def async_(self, exc: BaseException, *args: Any, **kwargs: Any) -> str:
        await SYSTEM_CLOCK.sleep_async(0)
        return self.sync(exc, *args, **kwargs)

    def for_kind(self, kind: str) -> Callable[..., Any]:
        return self.sync if kind == "sync" else self.async_


@dataclass
class Dependency:
    """A dependency that raises a fresh ``Boom`` for each of its first ``failures`` calls."""

    failures: int
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    raised: list[Boom] = field(default_factory=list)

    def sync(self, x: int, *, key: str = "k") -> str:
        self.calls.append((x, key))
        if len(self.calls) <= self.failures:
            self.raised.append(Boom(f"failure {len(self.calls)}"))
            raise self.raised[-1]
        return f"value {x} {key}"

    async def async_(self, x: int, *, key: str = "k") -> str:
        await SYSTEM_CLOCK.sleep_async(0)
        return self.sync(x, key=key)


def _stack(
    kind: str,
    dependency: Callable[..., Any],
    *,
    handler: Callable[..., Any],
    breaker: CircuitBreaker,
    bh: Bulkhead,
    clock: FakeClock,
    attempts: int,
    seconds: float = 1.0,
) -> Callable[..., Any]:
    """Wrap ``dependency`` in the documented order (the sync stack has no timeout)."""
    inner = bh(dependency)
    if kind == "async":
        inner = timeout(seconds)(inner)
    guarded = retry(on=Exception, attempts=attempts, backoff=BACKOFF, clock=clock)(breaker(inner))
    return fallback(handler, on=Exception)(guarded)


async def _invoke(kind: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if kind == "sync":
        return fn(*args, **kwargs)
    return await asyncio.wait_for(fn(*args, **kwargs), timeout=5)


def _notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


# --- a flaky dependency -----------------------------------------------------------------------


def test_a_flaky_sync_dependency_is_retried_to_its_real_value(
    clock: FakeClock, make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """Two failures then a success: the caller gets the value after sleeps of 1 and 2 seconds."""
    breaker = make_breaker(failure_threshold=3)
    bh = Bulkhead("dep", max_concurrent=2)
    dep = Dependency(failures=2)
    handler = Fallback()

    @fallback(handler.sync, on=Exception)
    @retry(on=Exception, attempts=3, backoff=BACKOFF, clock=clock)
    @breaker
    @bh
    def fetch(x: int, *, key: str = "k") -> str:
        """Fetch from the flaky dependency."""
        return dep.sync(x, key=key)

    assert fetch(7, key="id") == "value 7 id"
    assert fetch.__name__ == "fetch"
    assert dep.calls == [(7, "id")] * 3
    assert clock.sleeps == [1.0, 2.0]
    assert handler.seen == []
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert (m.total_calls, m.failed_calls, m.successful_calls) == (3, 2, 1)
    assert m.consecutive_failures == 0
    assert (bh.active, bh.rejected) == (0, 0)


async def test_a_flaky_async_dependency_is_retried_to_its_real_value(
    clock: FakeClock, make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """Two failures then a success through the async stack, timeout included."""
    breaker = make_breaker(failure_threshold=3)
    bh = Bulkhead("dep", max_concurrent=2)
    dep = Dependency(failures=2)
    handler = Fallback()

    @fallback(handler.async_, on=Exception)
    @retry(on=Exception, attempts=3, backoff=BACKOFF, clock=clock)
    @breaker
    @timeout(1.0)
    @bh
    async def fetch(x: int, *, key: str = "k") -> str:
        """Fetch from the flaky dependency."""
        return await dep.async_(x, key=key)

    assert asyncio.iscoroutinefunction(fetch)
    assert await asyncio.wait_for(fetch(7, key="id"), timeout=5) == "value 7 id"
    assert dep.calls == [(7, "id")] * 3
    assert clock.sleeps == [1.0, 2.0]
    assert handler.seen == []
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert (m.total_calls, m.failed_calls, m.successful_calls) == (3, 2, 1)
    assert (bh.active, bh.rejected) == (0, 0)


# --- a dead dependency ------------------------------------------------------------------------


DEAD_CASES = [
    # attempts, failure_threshold, calls reaching it, sleeps, fallback sees, note, breaker state
    pytest.param(
        5, 3, 3, [1.0, 2.0, 4.0], "open", "gave up after 4 attempts (not retryable)", "open",
        id="breaker-opens-before-attempts-run-out",
    ),
    pytest.param(
        3, 3, 3, [1.0, 2.0], "boom", "gave up after 3 attempts (attempts exhausted)", "open",
        id="breaker-opens-on-the-last-attempt",
    ),
    pytest.param(
        2, 3, 2, [1.0], "boom", "gave up after 2 attempts (attempts exhausted)", "closed",
        id="attempts-run-out-first",
    ),
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("attempts", "threshold", "reached", "sleeps", "sees", "note", "state"), DEAD_CASES
)
async def test_a_dead_dependency_opens_the_breaker_and_the_fallback_answers(
    clock: FakeClock,
    make_breaker: Factory,
    assert_invariant: Invariant,
    kind: str,
    attempts: int,
    threshold: int,
    reached: int,
    sleeps: list[float],
    sees: str,
    note: str,
    state: str,
) -> None:
    """Failures open the breaker; its rejection is not retried; the fallback gets the last error."""
    breaker = make_breaker(failure_threshold=threshold)
    bh = Bulkhead("dep", max_concurrent=2)
    dep = Dependency(failures=1_000)
    handler = Fallback()
    dependency = dep.sync if kind == "sync" else dep.async_
    fetch = _stack(
        kind,
        dependency,
        handler=handler.for_kind(kind),
        breaker=breaker,
        bh=bh,
        clock=clock,
        attempts=attempts,
    )

    assert await _invoke(kind, fetch, 7, key="id") == "fallback"
    assert len(dep.calls) == reached
    assert clock.sleeps == sleeps
    assert len(handler.seen) == 1
    exc, args, kwargs = handler.seen[0]
    assert (args, kwargs) == ((7,), {"key": "id"})
    if sees == "open":
        assert isinstance(exc, CircuitBreakerOpenError)
        assert (exc.name, exc.state) == ("dep", CircuitState.OPEN)
    else:
        assert exc is dep.raised[-1]
    assert _notes(exc) == [f"engined.retry: {note}"]
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState(state)
    assert (m.failed_calls, m.successful_calls) == (reached, 0)
    assert m.rejected_calls == (1 if sees == "open" else 0)
    assert m.times_opened == (1 if state == "open" else 0)
    assert (bh.active, bh.rejected) == (0, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_meeting_an_open_breaker_goes_straight_to_the_fallback(
    clock: FakeClock, make_breaker: Factory, kind: str
) -> None:
    """With the breaker already open, the first attempt is refused: no sleep, no call, no note."""
    breaker = make_breaker(failure_threshold=1)
    dep = Dependency(failures=1_000)
    handler = Fallback()
    fetch = _stack(
        kind,
        dep.sync if kind == "sync" else dep.async_,
        handler=handler.for_kind(kind),
        breaker=breaker,
        bh=Bulkhead("dep"),
        clock=clock,
        attempts=5,
    )
    breaker.force_open()
    for i in range(3):
        assert await _invoke(kind, fetch, i) == "fallback"
    assert dep.calls == []
    assert clock.sleeps == []
    assert [type(exc) for exc, _, _ in handler.seen] == [CircuitBreakerOpenError] * 3
    assert [args for _, args, _ in handler.seen] == [(0,), (1,), (2,)]
    assert all(_notes(exc) == [] for exc, _, _ in handler.seen), "a first-attempt refusal"
    assert breaker.metrics.rejected_calls == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_after_the_open_duration_the_stack_reaches_the_recovered_dependency(
    clock: FakeClock, make_breaker: Factory, assert_invariant: Invariant, kind: str
) -> None:
    """Once the breaker half-opens, one probe reaches the now-healthy dependency and closes it."""
    breaker = make_breaker(failure_threshold=2, recovery_timeout=30.0)
    dep = Dependency(failures=2)
    handler = Fallback()
    fetch = _stack(
        kind,
        dep.sync if kind == "sync" else dep.async_,
        handler=handler.for_kind(kind),
        breaker=breaker,
        bh=Bulkhead("dep"),
        clock=clock,
        attempts=4,
    )
    assert await _invoke(kind, fetch, 1) == "fallback"
    assert (len(dep.calls), clock.sleeps) == (2, [1.0, 2.0])
    clock.advance(30.0)
    assert breaker.state is CircuitState.HALF_OPEN
    assert await _invoke(kind, fetch, 2) == "value 2 k"
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.CLOSED
    assert (m.failed_calls, m.successful_calls, m.rejected_calls) == (2, 1, 1)


# --- a hanging dependency ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "threshold", "sleeps", "sees", "state"),
    [
        pytest.param(5, 3, [1.0, 2.0, 4.0], "open", "open", id="timeouts-open-the-breaker"),
        pytest.param(3, 5, [1.0, 2.0], "timeout", "closed", id="attempts-run-out-first"),
    ],
)
async def test_a_hanging_dependency_times_out_opens_the_breaker_and_the_fallback_answers(
    clock: FakeClock,
    make_breaker: Factory,
    assert_invariant: Invariant,
    attempts: int,
    threshold: int,
    sleeps: list[float],
    sees: str,
    state: str,
) -> None:
    """Each 10 ms timeout is a breaker failure and is retried; then the fallback answers."""
    breaker = make_breaker(failure_threshold=threshold)
    bh = Bulkhead("dep", max_concurrent=1)
    handler = Fallback()
    entered: list[int] = []
    cancelled: list[int] = []

    async def hang(x: int) -> str:
        entered.append(x)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return "never"

    fetch = _stack(
        "async",
        hang,
        handler=handler.async_,
        breaker=breaker,
        bh=bh,
        clock=clock,
        attempts=attempts,
        seconds=0.01,
    )
    started = SYSTEM_CLOCK.monotonic()
    assert await asyncio.wait_for(fetch(9), timeout=2) == "fallback"
    assert SYSTEM_CLOCK.monotonic() - started < 0.5

    timeouts = 3  # min(attempts, threshold) in both cases
    assert entered == cancelled == [9] * timeouts
    assert clock.sleeps == sleeps
    [(exc, args, kwargs)] = handler.seen
    assert (args, kwargs) == ((9,), {})
    if sees == "open":
        assert isinstance(exc, CircuitBreakerOpenError)
        assert _notes(exc) == ["engined.retry: gave up after 4 attempts (not retryable)"]
    else:
        assert isinstance(exc, CallTimeoutError)
        assert isinstance(exc, TimeoutError)
        assert exc.seconds == 0.01
        assert isinstance(exc.__cause__, TimeoutError)
        assert _notes(exc) == ["engined.retry: gave up after 3 attempts (attempts exhausted)"]
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState(state)
    assert (m.failed_calls, m.successful_calls) == (timeouts, 0)
    assert m.rejected_calls == (1 if sees == "open" else 0)
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0), "a timed-out call kept its slot"


# --- a full bulkhead at the bottom ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("counted", ["recorded", "ignored"])
async def test_a_full_bulkhead_is_a_breaker_failure_unless_ignored_and_the_fallback_answers(
    clock: FakeClock, make_breaker: Factory, assert_invariant: Invariant, kind: str, counted: str
) -> None:
    """BulkheadFullError opens a default breaker (it is an Exception); ignored, it only retries."""
    config: dict[str, Any] = {"failure_threshold": 3}
    if counted == "ignored":
        config["ignore_exceptions"] = (BulkheadFullError,)
    breaker = make_breaker(**config)
    bh = Bulkhead("dep", max_concurrent=1, max_wait=0)
    dep = Dependency(failures=0)
    handler = Fallback()
    fetch = _stack(
        kind,
        dep.sync if kind == "sync" else dep.async_,
        handler=handler.for_kind(kind),
        breaker=breaker,
        bh=bh,
        clock=clock,
        attempts=5,
    )
    with bh:  # someone else holds the only slot
        assert await _invoke(kind, fetch, 3) == "fallback"
    assert dep.calls == []
    [(exc, args, _)] = handler.seen
    assert args == (3,)
    m = breaker.metrics
    assert_invariant(m)
    if counted == "recorded":
        assert isinstance(exc, CircuitBreakerOpenError)
        assert _notes(exc) == ["engined.retry: gave up after 4 attempts (not retryable)"]
        assert clock.sleeps == [1.0, 2.0, 4.0]
        assert bh.rejected == 3
        assert m.state is CircuitState.OPEN
        assert (m.failed_calls, m.ignored_calls, m.rejected_calls) == (3, 0, 1)
    else:
        assert isinstance(exc, BulkheadFullError)
        assert (exc.name, exc.max_concurrent) == ("dep", 1)
        assert _notes(exc) == ["engined.retry: gave up after 5 attempts (attempts exhausted)"]
        assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
        assert bh.rejected == 5
        assert m.state is CircuitState.CLOSED
        assert (m.failed_calls, m.ignored_calls, m.rejected_calls) == (0, 5, 0)
        assert await _invoke(kind, fetch, 4) == "value 4 k"  # slot free again: the call runs
    assert bh.active == 0


# --- concurrency ------------------------------------------------------------------------------


class PerCallFlaky:
    """Fails the first two attempts of every call (keyed by call id), then succeeds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: Counter[int] = Counter()
        self.failures = 0
        self.successes = 0

    def __call__(self, call_id: int) -> int:
        with self.lock:
            self.attempts[call_id] += 1
            failing = self.attempts[call_id] <= 2
            if failing:
                self.failures += 1
            else:
                self.successes += 1
        if failing:
            raise Boom(call_id)
        return call_id * 10


@pytest.mark.usefixtures("fast_thread_switching")
@pytest.mark.parametrize("trips", [False, True], ids=["never-opens", "trips-and-recovers"])
def test_eight_threads_through_the_sync_stack_keep_exact_breaker_counts(
    clock: FakeClock, make_breaker: Factory, assert_invariant: Invariant, trips: bool
) -> None:
    """8 threads x 150 calls on a flaky dependency: every breaker counter matches what happened."""
    per_thread = 150
    calls = 8 * per_thread
    breaker = make_breaker(
        failure_threshold=2 if trips else None, recovery_timeout=2.0, half_open_max_calls=1
    )
    bh = Bulkhead("dep", max_concurrent=3, max_wait=None)
    dep = PerCallFlaky()
    fallbacks: list[BaseException] = []
    fallback_lock = threading.Lock()

    def handler(exc: BaseException, call_id: int) -> int:
        with fallback_lock:
            fallbacks.append(exc)
        clock.advance(0.5)  # lets an open breaker recover while the threads keep going
        return -1

    fetch = _stack("sync", dep, handler=handler, breaker=breaker, bh=bh, clock=clock, attempts=3)
    start = threading.Barrier(8, timeout=5)
    wrong: list[tuple[int, int]] = []
    answered: Counter[str] = Counter()
    answered_lock = threading.Lock()

    def worker(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            call_id = t * per_thread + i
            result = fetch(call_id)
            with answered_lock:
                answered["fallback" if result == -1 else "value"] += 1
                if result not in (-1, call_id * 10):
                    wrong.append((call_id, result))

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"

    assert wrong == []
    assert answered["value"] + answered["fallback"] == calls
    m = breaker.metrics
    assert_invariant(m)
    assert m.total_calls == dep.failures + dep.successes == sum(dep.attempts.values())
    assert m.failed_calls == dep.failures
    assert m.successful_calls == dep.successes == answered["value"]
    assert m.ignored_calls == 0
    assert m.rejected_calls == len(fallbacks) == answered["fallback"]
    assert all(isinstance(exc, CircuitBreakerOpenError) for exc in fallbacks)
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)
    if trips:
        assert m.times_opened >= 1, "the first two recorded failures precede any success"
        assert answered["fallback"] > 0
    else:
        assert (m.total_calls, m.failed_calls, m.successful_calls) == (3 * calls, 2 * calls, calls)
        assert fallbacks == []
        assert sorted(clock.sleeps) == [1.0] * calls + [2.0] * calls


async def test_tasks_and_threads_share_the_bulkhead_at_the_bottom_of_two_stacks(
    clock: FakeClock, make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """A sync and an async stack over one Bulkhead(max_concurrent=1) see one shared limit."""
    breaker = make_breaker(failure_threshold=None)
    bh = Bulkhead("dep", max_concurrent=1, max_wait=0)
    release = threading.Event()
    inside = threading.Event()
    handler = Fallback()

    def slow(x: int) -> str:
        inside.set()
        assert release.wait(timeout=5)
        return f"slow {x}"

    async def quick(x: int) -> str:
        return f"quick {x}"

    sync_fetch = _stack(
        "sync", slow, handler=handler.sync, breaker=breaker, bh=bh, clock=clock, attempts=1
    )
    async_fetch = _stack(
        "async", quick, handler=handler.async_, breaker=breaker, bh=bh, clock=clock, attempts=1
    )
    thread_result: list[str] = []
    thread = threading.Thread(target=lambda: thread_result.append(sync_fetch(1)), daemon=True)
    thread.start()
    await asyncio.to_thread(inside.wait, 5)
    assert await asyncio.wait_for(async_fetch(2), timeout=5) == "fallback"
    [(exc, args, _)] = handler.seen
    assert isinstance(exc, BulkheadFullError)
    assert args == (2,)
    release.set()
    await asyncio.to_thread(thread.join, 5)
    assert thread_result == ["slow 1"]
    assert await asyncio.wait_for(async_fetch(3), timeout=5) == "quick 3"
    m = breaker.metrics
    assert_invariant(m)
    assert (m.successful_calls, m.failed_calls) == (2, 1)
    assert (bh.active, bh.rejected) == (0, 1)
