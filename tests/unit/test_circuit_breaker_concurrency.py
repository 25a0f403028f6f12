"""Thread and asyncio safety: exact half-open admission, exact counts, no lock around user code."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from engined import (
    CircuitBreaker,
    CircuitBreakerMetrics,
    CircuitBreakerOpenError,
    CircuitState,
    StateChange,
)
from engined.testing import FakeClock

pytestmark = pytest.mark.usefixtures("fast_thread_switching")

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]

S = CircuitState
VALID_TRANSITIONS = {
    (S.CLOSED, S.OPEN),
    (S.OPEN, S.HALF_OPEN),
    (S.HALF_OPEN, S.CLOSED),
    (S.HALF_OPEN, S.OPEN),
}


class Boom(Exception):
    """The recorded failure."""


def _raise(exc: BaseException) -> None:
    raise exc


def _run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"


def _half_open(make_breaker: Factory, clock: FakeClock, **config: object) -> CircuitBreaker:
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0, **config)
    with pytest.raises(Boom):
        breaker.call(_raise, Boom())
    clock.advance(10.0)
    assert breaker.state is S.HALF_OPEN
    return breaker


@pytest.mark.parametrize("max_calls", [1, 3, 8])
def test_half_open_admits_exactly_max_calls_among_16_threads(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant, max_calls: int
) -> None:
    """16 threads racing into HALF_OPEN: exactly half_open_max_calls run, the rest are rejected.

    Guards against the thundering herd of Polly#216 (and circuitbreaker/aiobreaker/purgatory).
    """
    breaker = _half_open(make_breaker, clock, half_open_max_calls=max_calls)
    start = threading.Barrier(16, timeout=5)
    release = threading.Event()
    settled = threading.Condition()
    tally: Counter[str] = Counter()

    def probe() -> str:
        with settled:
            tally["entered"] += 1
            settled.notify_all()
        assert release.wait(timeout=10)
        return "done"

    def worker(_: int) -> None:
        start.wait()
        try:
            breaker.call(probe)
        except CircuitBreakerOpenError as err:
            with settled:
                tally[f"rejected_{err.state}"] += 1
                tally["rejected"] += 1
                settled.notify_all()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(16)]
    for t in threads:
        t.start()
    with settled:
        assert settled.wait_for(lambda: tally["entered"] + tally["rejected"] == 16, timeout=10)
        assert (tally["entered"], tally["rejected"]) == (max_calls, 16 - max_calls)
        assert tally["rejected_half_open"] == 16 - max_calls
    assert breaker.metrics.rejected_calls == 16 - max_calls
    release.set()
    for t in threads:
        t.join(timeout=10)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is S.CLOSED
    assert (m.total_calls, m.successful_calls, m.rejected_calls) == (
        1 + max_calls,
        max_calls,
        16 - max_calls,
    )


@pytest.mark.parametrize("via", ["call_async", "async_with"])
@pytest.mark.parametrize("max_calls", [1, 3])
async def test_half_open_admits_exactly_max_calls_among_16_tasks(
    make_breaker: Factory,
    clock: FakeClock,
    assert_invariant: Invariant,
    max_calls: int,
    via: str,
) -> None:
    """16 tasks racing into HALF_OPEN: exactly half_open_max_calls run, the rest are rejected."""
    breaker = _half_open(make_breaker, clock, half_open_max_calls=max_calls)
    release = asyncio.Event()
    all_settled = asyncio.Event()
    tally: Counter[str] = Counter()

    def note(kind: str) -> None:
        tally[kind] += 1
        if tally["entered"] + tally["rejected"] == 16:
            all_settled.set()

    async def probe() -> str:
        note("entered")
        await release.wait()
        return "done"

    async def task() -> None:
        try:
            if via == "call_async":
                await breaker.call_async(probe)
            else:
                async with breaker.permit():
                    await probe()
        except CircuitBreakerOpenError:
            note("rejected")

    tasks = [asyncio.create_task(task()) for _ in range(16)]
    await asyncio.wait_for(all_settled.wait(), timeout=10)
    assert (tally["entered"], tally["rejected"]) == (max_calls, 16 - max_calls)
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is S.CLOSED
    assert (m.successful_calls, m.rejected_calls) == (max_calls, 16 - max_calls)


def test_counters_are_exact_under_8_threads_of_mixed_calls(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """8 threads x 5,000 calls of every outcome on a never-opening breaker lose no update."""
    breaker = make_breaker(
        failure_threshold=None, record_exceptions=(Boom,), ignore_exceptions=(KeyError,)
    )
    per_thread = 5_000
    start = threading.Barrier(8, timeout=5)
    outcomes: list[BaseException | None] = [None, Boom(), KeyError("k"), ValueError("v")]
    wrong: list[str] = []

    def worker(_: int) -> None:
        start.wait()
        for i in range(per_thread):
            exc = outcomes[i % 4]
            try:
                if exc is None:
                    breaker.call(lambda: None)
                else:
                    breaker.call(_raise, exc)
            except (Boom, KeyError, ValueError) as err:
                if err is not exc:
                    wrong.append(repr(err))

    _run_threads(worker, 8)
    assert wrong == []
    m = breaker.metrics
    assert_invariant(m)
    quarter = 8 * per_thread // 4
    assert m.total_calls == 8 * per_thread
    assert m.successful_calls == 2 * quarter  # plain successes + unrecorded ValueErrors
    assert m.failed_calls == quarter
    assert m.ignored_calls == quarter
    assert m.rejected_calls == 0
    assert m.state is S.CLOSED


@pytest.mark.parametrize("via", ["call", "decorator", "with"])
@pytest.mark.parametrize("state", ["closed", "half_open"])
def test_no_lock_is_held_while_user_code_runs(
    make_breaker: Factory, clock: FakeClock, via: str, state: str
) -> None:
    """Four calls meet at a Barrier inside the breaker; if calls were serialized it would break.

    Guards against pybreaker#55 (and pybreaker#3): a lock held around the user call.
    """
    if state == "half_open":
        breaker = _half_open(make_breaker, clock, half_open_max_calls=4, success_threshold=4)
    else:
        breaker = make_breaker(failure_threshold=None)
    meet = threading.Barrier(4, timeout=5)
    results: list[int] = []
    decorated = breaker(meet.wait)

    def worker(_: int) -> None:
        if via == "call":
            results.append(breaker.call(meet.wait))
        elif via == "decorator":
            results.append(decorated())
        else:
            with breaker.permit():
                results.append(meet.wait())

    _run_threads(worker, 4)
    assert sorted(results) == [0, 1, 2, 3], "the barrier broke: calls were serialized"
    m = breaker.metrics
    assert m.failed_calls == (1 if state == "half_open" else 0)
    assert m.state is S.CLOSED


@pytest.mark.parametrize("via", ["call_async", "async_with"])
async def test_no_lock_is_held_across_an_await(make_breaker: Factory, via: str) -> None:
    """Four tasks meet at an asyncio.Barrier inside the breaker: awaits are never serialized.

    Guards against pybreaker#55 and aiobreaker#3 (a blocking lock under asyncio).
    """
    breaker = make_breaker(failure_threshold=None)
    meet = asyncio.Barrier(4)

    async def task() -> int:
        if via == "call_async":
            return await breaker.call_async(meet.wait)
        async with breaker.permit():
            return await meet.wait()

    results = await asyncio.wait_for(asyncio.gather(*(task() for _ in range(4))), timeout=5)
    assert sorted(results) == [0, 1, 2, 3]
    assert breaker.metrics.successful_calls == 4


async def test_threads_and_tasks_hammering_a_tripping_breaker_keep_every_count(
    make_breaker: Factory, clock: FakeClock, assert_invariant: Invariant
) -> None:
    """Threads and tasks hammer a breaker that opens and recovers; every counter stays exact."""
    breaker = make_breaker(
        failure_threshold=3,
        recovery_timeout=1.0,
        half_open_max_calls=2,
        success_threshold=2,
        record_exceptions=(Boom,),
        ignore_exceptions=(KeyError,),
    )
    events: list[StateChange] = []
    events_lock = threading.Lock()

    def listener(event: StateChange) -> None:
        with events_lock:
            events.append(event)

    breaker.add_listener(listener)
    tallies: list[Counter[str]] = []
    tallies_lock = threading.Lock()
    snapshots_ok = threading.Event()
    stop_reader = threading.Event()
    kinds: list[tuple[str, BaseException | None]] = [
        ("success", None),
        ("failed", Boom()),
        ("ignored", KeyError("k")),
        ("other", ValueError("v")),
    ]

    def pick(rng: random.Random) -> tuple[str, BaseException | None]:
        kind, exc = rng.choice(kinds)
        if rng.random() < 0.05:
            clock.advance(0.25)
        return kind, exc

    def thread_worker(seed: int) -> None:
        rng = random.Random(seed)
        tally: Counter[str] = Counter()
        for _ in range(2_000):
            kind, exc = pick(rng)

            def body(kind: str = kind, exc: BaseException | None = exc) -> None:
                tally[kind] += 1
                if exc is not None:
                    raise exc

            try:
                breaker.call(body)
            except CircuitBreakerOpenError:
                tally["rejected"] += 1
            except (Boom, KeyError, ValueError):
                pass
        with tallies_lock:
            tallies.append(tally)

    async def task_worker(seed: int) -> None:
        rng = random.Random(seed)
        tally: Counter[str] = Counter()
        for _ in range(500):
            kind, exc = pick(rng)

            async def body(kind: str = kind, exc: BaseException | None = exc) -> None:
                tally[kind] += 1
                await clock.sleep_async(0)
                if exc is not None:
                    raise exc

            try:
                await breaker.call_async(body)
            except CircuitBreakerOpenError:
                tally["rejected"] += 1
            except (Boom, KeyError, ValueError):
                pass
        with tallies_lock:
            tallies.append(tally)

    def reader() -> None:
        ok = True
        while not stop_reader.is_set():
            m = breaker.metrics
            if m.total_calls != m.successful_calls + m.failed_calls + m.ignored_calls:
                ok = False
        if ok:
            snapshots_ok.set()

    reader_thread = threading.Thread(target=reader, daemon=True)
    reader_thread.start()
    threads = [threading.Thread(target=thread_worker, args=(i,), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
    await asyncio.wait_for(asyncio.gather(*(task_worker(100 + i) for i in range(6))), timeout=30)
    for t in threads:
        await asyncio.to_thread(t.join, 30)
    stop_reader.set()
    reader_thread.join(timeout=10)
    assert len(tallies) == 12
    assert snapshots_ok.is_set(), "a metrics snapshot broke the invariant"

    total: Counter[str] = Counter()
    for tally in tallies:
        total.update(tally)
    m = breaker.metrics
    assert_invariant(m)
    assert m.successful_calls == total["success"] + total["other"]
    assert m.failed_calls == total["failed"]
    assert m.ignored_calls == total["ignored"]
    assert m.rejected_calls == total["rejected"]
    assert m.total_calls == sum(total[k] for k in ("success", "other", "failed", "ignored"))
    assert m.times_opened >= 1, "the scenario should have tripped the breaker"

    transitions = dict(m.transitions)
    assert set(transitions) <= VALID_TRANSITIONS
    assert sum(transitions.values()) == len(events)
    assert Counter((e.from_state, e.to_state) for e in events) == Counter(transitions)
    assert m.times_opened == transitions.get((S.CLOSED, S.OPEN), 0) + transitions.get(
        (S.HALF_OPEN, S.OPEN), 0
    )
