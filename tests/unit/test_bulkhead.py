"""Bulkhead: exact admission, FIFO hand-over, waits, cancellation and validation.

The rules live in docs/resilience-semantics.md (Bulkhead). ``max_wait`` is real time, so the
only tests that let a wait run out use ``max_wait=0.02``; everything else is released by
another call finishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import random
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from engined import SYSTEM_CLOCK, Bulkhead, BulkheadFullError, bulkhead

pytestmark = pytest.mark.usefixtures("fast_thread_switching")

SYNC_VIA = ["call", "decorator", "with"]
ASYNC_VIA = ["call_async", "decorator", "async_with"]


class Boom(Exception):
    """A failure raised inside a guarded call."""


def _eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` from a thread for up to ~5 s (real time)."""
    pause = threading.Event()
    for _ in range(5_000):
        if predicate():
            return
        pause.wait(0.001)
    raise AssertionError(f"timed out waiting for {what}")


async def _eventually_async(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` from a task, letting the loop run in between, for up to ~5 s."""
    for i in range(5_000):
        if predicate():
            return
        await SYSTEM_CLOCK.sleep_async(0 if i < 100 else 0.001)
    raise AssertionError(f"timed out waiting for {what}")


def _start_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"


def _enter_sync(bh: Bulkhead, via: str, fn: Callable[..., Any], *args: Any) -> Any:
    if via == "call":
        return bh.call(fn, *args)
    if via == "decorator":
        return bh(fn)(*args)
    with bh:
        return fn(*args)


async def _enter_async(
    bh: Bulkhead, via: str, fn: Callable[..., Awaitable[Any]], *args: Any
) -> Any:
    if via == "call_async":
        return await bh.call_async(fn, *args)
    if via == "decorator":
        return await bh(fn)(*args)
    async with bh:
        return await fn(*args)


def _assert_admits_max_concurrent_threads(bh: Bulkhead) -> None:
    """Hold ``max_concurrent`` calls at once from threads; all must be admitted."""
    n = bh.max_concurrent
    meet = threading.Barrier(n + 1, timeout=5)
    release = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        def body() -> None:
            meet.wait()
            assert release.wait(timeout=5)

        try:
            bh.call(body)
        except BaseException as err:  # reported below
            errors.append(err)
            meet.abort()

    threads = [_start_thread(worker) for _ in range(n)]
    with contextlib.suppress(threading.BrokenBarrierError):
        meet.wait()
    assert errors == []
    assert bh.active == n
    release.set()
    _join(threads)
    assert errors == []
    assert (bh.active, bh.waiting) == (0, 0)


async def _assert_admits_max_concurrent_tasks(bh: Bulkhead) -> None:
    """Hold ``max_concurrent`` calls at once from tasks; all must be admitted promptly."""
    n = bh.max_concurrent
    release = asyncio.Event()
    entered = 0

    async def body() -> None:
        nonlocal entered
        entered += 1
        await release.wait()

    tasks = [asyncio.create_task(bh.call_async(body)) for _ in range(n)]
    try:
        await _eventually_async(lambda: entered == n or any(t.done() for t in tasks), "admission")
        assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
        assert entered == n
        assert bh.active == n
    finally:
        release.set()
        _, pending = await asyncio.wait(tasks, timeout=5)
        for t in pending:
            t.cancel()
    assert not pending, "a call was never admitted: a slot leaked"
    assert all(t.result() is None for t in tasks)
    assert (bh.active, bh.waiting) == (0, 0)


# --- admission --------------------------------------------------------------------------------


def _race_16_threads(bh: Bulkhead, via: str) -> list[BulkheadFullError]:
    """Start 16 threads at once; check exactly max_concurrent get in; release; return refusals."""
    start = threading.Barrier(16, timeout=5)
    release = threading.Event()
    settled = threading.Condition()
    tally: Counter[str] = Counter()
    refused: list[BulkheadFullError] = []

    def body() -> str:
        with settled:
            tally["entered"] += 1
            settled.notify_all()
        assert release.wait(timeout=10)
        return "done"

    def worker() -> None:
        start.wait()
        try:
            result = _enter_sync(bh, via, body)
        except BulkheadFullError as err:
            with settled:
                refused.append(err)
                settled.notify_all()
        else:
            with settled:
                tally[result] += 1

    threads = [_start_thread(worker) for _ in range(16)]
    with settled:
        assert settled.wait_for(lambda: tally["entered"] + len(refused) == 16, 10)
        assert (tally["entered"], len(refused)) == (bh.max_concurrent, 16 - bh.max_concurrent)
    assert (bh.active, bh.waiting) == (bh.max_concurrent, 0)
    release.set()
    _join(threads)
    assert tally["done"] == bh.max_concurrent
    assert (bh.active, bh.waiting) == (0, 0)
    return refused


async def _race_16_tasks(bh: Bulkhead, via: str) -> list[BulkheadFullError]:
    """Start 16 tasks at once; check exactly max_concurrent get in; release; return refusals."""
    release = asyncio.Event()
    tally: Counter[str] = Counter()
    refused: list[BulkheadFullError] = []

    async def body() -> str:
        tally["entered"] += 1
        await release.wait()
        return "done"

    async def task() -> None:
        try:
            tally[await _enter_async(bh, via, body)] += 1
        except BulkheadFullError as err:
            refused.append(err)

    tasks = [asyncio.create_task(task()) for _ in range(16)]
    await _eventually_async(lambda: tally["entered"] + len(refused) == 16, "every task to settle")
    assert (tally["entered"], len(refused)) == (bh.max_concurrent, 16 - bh.max_concurrent)
    assert (bh.active, bh.waiting) == (bh.max_concurrent, 0)
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert tally["done"] == bh.max_concurrent
    assert (bh.active, bh.waiting) == (0, 0)
    return refused


@pytest.mark.parametrize("via", SYNC_VIA)
@pytest.mark.parametrize("max_concurrent", [1, 3, 8])
def test_exactly_max_concurrent_of_16_threads_run_and_the_rest_are_refused_at_once(
    max_concurrent: int, via: str
) -> None:
    """16 threads race in with max_wait=0: max_concurrent run, the rest get BulkheadFullError."""
    bh = Bulkhead("db", max_concurrent=max_concurrent, max_wait=0)
    for round_no in (1, 2):  # after a release, everything is admitted again
        refused = _race_16_threads(bh, via)
        assert bh.rejected == round_no * (16 - max_concurrent)
        assert {(err.name, err.max_concurrent) for err in refused} == {("db", max_concurrent)}


@pytest.mark.parametrize("via", ASYNC_VIA)
@pytest.mark.parametrize("max_concurrent", [1, 3, 8])
async def test_exactly_max_concurrent_of_16_tasks_run_and_the_rest_are_refused_at_once(
    max_concurrent: int, via: str
) -> None:
    """16 tasks race in with max_wait=0: max_concurrent run, the rest get BulkheadFullError."""
    bh = Bulkhead("db", max_concurrent=max_concurrent, max_wait=0)
    for round_no in (1, 2):  # after a release, everything is admitted again
        refused = await _race_16_tasks(bh, via)
        assert bh.rejected == round_no * (16 - max_concurrent)
        assert {(err.name, err.max_concurrent) for err in refused} == {("db", max_concurrent)}


def test_the_results_and_arguments_pass_through_every_sync_entry() -> None:
    """call() and the decorator pass positional and keyword arguments and return the result."""
    bh = Bulkhead("db", max_concurrent=1)

    def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    assert bh.call(add, 1, 2, scale=10) == 30
    assert bh(add)(3, 4, scale=2) == 14
    with bh:
        assert bh.active == 1
    assert bh.active == 0


async def test_the_results_and_arguments_pass_through_every_async_entry() -> None:
    """call_async() and the async decorator pass the arguments and return the awaited result."""
    bh = Bulkhead("db", max_concurrent=1)

    async def add(a: int, b: int, *, scale: int = 1) -> int:
        assert bh.active == 1
        return (a + b) * scale

    assert await bh.call_async(add, 1, 2, scale=10) == 30
    assert await bh(add)(3, 4, scale=2) == 14
    async with bh:
        assert bh.active == 1
    assert bh.active == 0


async def test_a_thread_holding_the_only_slot_refuses_a_task_and_vice_versa() -> None:
    """Sync and async callers count against one limit."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=0)
    release = threading.Event()
    entered = threading.Event()

    def hold() -> None:
        entered.set()
        assert release.wait(timeout=10)

    thread = _start_thread(lambda: bh.call(hold))
    await asyncio.to_thread(entered.wait, 5)
    assert bh.active == 1

    async def noop() -> str:
        return "ran"

    with pytest.raises(BulkheadFullError):
        await bh.call_async(noop)
    with pytest.raises(BulkheadFullError):
        async with bh:
            pass
    release.set()
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()
    assert bh.active == 0

    task_release = asyncio.Event()

    async def hold_async() -> None:
        await task_release.wait()

    task = asyncio.create_task(bh.call_async(hold_async))
    await _eventually_async(lambda: bh.active == 1, "the task to take the slot")
    refused: list[BaseException] = []

    def from_thread() -> None:
        try:
            bh.call(lambda: "ran")
        except BulkheadFullError as err:
            refused.append(err)

    await asyncio.to_thread(from_thread)
    assert len(refused) == 1
    assert bh.rejected == 3
    task_release.set()
    await asyncio.wait_for(task, timeout=5)
    assert bh.active == 0
    assert await bh.call_async(noop) == "ran"


@pytest.mark.parametrize("waiter", ["thread", "task"])
async def test_a_slot_freed_by_one_kind_of_caller_is_handed_to_a_waiter_of_the_other_kind(
    waiter: str,
) -> None:
    """A finishing thread wakes a queued task, and a finishing task wakes a queued thread."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=None)
    order: list[str] = []

    if waiter == "task":
        holder_release = threading.Event()
        holder_in = threading.Event()

        def hold() -> None:
            holder_in.set()
            assert holder_release.wait(timeout=10)
            order.append("holder")

        holder = _start_thread(lambda: bh.call(hold))
        await asyncio.to_thread(holder_in.wait, 5)

        async def waited() -> str:
            order.append("waiter")
            return "ok"

        task = asyncio.create_task(bh.call_async(waited))
        await _eventually_async(lambda: bh.waiting == 1, "the task to queue")
        assert bh.active == 1
        holder_release.set()
        assert await asyncio.wait_for(task, timeout=5) == "ok"
        await asyncio.to_thread(holder.join, 5)
    else:
        task_release = asyncio.Event()

        async def hold_async() -> None:
            await task_release.wait()
            order.append("holder")

        holder_task = asyncio.create_task(bh.call_async(hold_async))
        await _eventually_async(lambda: bh.active == 1, "the holder to take the slot")
        results: list[str] = []

        def waited_sync() -> str:
            order.append("waiter")
            return "ok"

        thread = _start_thread(lambda: results.append(bh.call(waited_sync)))
        await _eventually_async(lambda: bh.waiting == 1, "the thread to queue")
        task_release.set()
        await asyncio.wait_for(holder_task, timeout=5)
        await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive()
        assert results == ["ok"]
    assert order == ["holder", "waiter"]
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)


# --- waiting: FIFO hand-over ------------------------------------------------------------------


@pytest.mark.parametrize("max_wait", [None, 30.0])
def test_queued_threads_are_admitted_first_come_first_served(max_wait: float | None) -> None:
    """Threads queued behind a full bulkhead are admitted one by one in arrival order."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=max_wait)
    release = threading.Event()
    holder_in = threading.Event()
    order: list[int] = []

    def hold() -> None:
        holder_in.set()
        assert release.wait(timeout=10)

    threads = [_start_thread(lambda: bh.call(hold))]
    assert holder_in.wait(timeout=5)
    for i in range(5):
        threads.append(_start_thread(lambda i=i: bh.call(order.append, i)))
        _eventually(lambda i=i: bh.waiting == i + 1, f"waiter {i} to queue")
        assert bh.active == 1
    assert order == []
    release.set()
    _join(threads)
    assert order == [0, 1, 2, 3, 4]
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)


@pytest.mark.parametrize("via", ASYNC_VIA)
@pytest.mark.parametrize("max_wait", [None, 30.0])
async def test_queued_tasks_are_admitted_first_come_first_served(
    max_wait: float | None, via: str
) -> None:
    """Tasks queued behind a full bulkhead are admitted one by one in arrival order."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=max_wait)
    order: list[int] = []
    release = asyncio.Event()

    async def hold() -> None:
        await release.wait()

    holder = asyncio.create_task(bh.call_async(hold))
    await _eventually_async(lambda: bh.active == 1, "the holder")

    async def record(i: int) -> int:
        order.append(i)
        return i

    waiters = []
    for i in range(5):
        waiters.append(asyncio.create_task(_enter_async(bh, via, record, i)))
        await _eventually_async(lambda i=i: bh.waiting == i + 1, f"waiter {i} to queue")
        assert bh.active == 1
    release.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), timeout=5) == [0, 1, 2, 3, 4]
    await holder
    assert order == [0, 1, 2, 3, 4]
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)


async def test_a_newcomer_cannot_take_a_slot_handed_to_a_queued_waiter() -> None:
    """A caller arriving as a slot is handed over queues behind the waiters instead of taking it."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=None)
    order: list[str] = []

    async def record(label: str) -> None:
        order.append(label)

    with contextlib.ExitStack() as hold:
        hold.enter_context(bh)
        waiters = []
        for i in range(4):
            waiters.append(asyncio.create_task(bh.call_async(record, f"w{i}")))
            await _eventually_async(lambda i=i: bh.waiting == i + 1, f"w{i} to queue")
    # The holder has just finished; no queued task has run since.
    assert bh.active == 1, "the freed slot must go to the first waiter, not become free"
    queued = bh.waiting
    # A thread arrives before any waiter task got to run (the loop is blocked meanwhile).
    newcomer = _start_thread(lambda: bh.call(order.append, "newcomer"))
    _eventually(lambda: bh.waiting == queued + 1, "the newcomer to queue")
    assert order == []
    await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)
    await asyncio.to_thread(newcomer.join, 5)
    assert not newcomer.is_alive()
    assert order == ["w0", "w1", "w2", "w3", "newcomer"]
    assert (bh.active, bh.waiting) == (0, 0)


def test_two_freed_slots_go_to_the_two_oldest_queued_threads() -> None:
    """With two slots and three queued threads, the two oldest run first, then the third."""
    bh = Bulkhead("db", max_concurrent=2, max_wait=None)
    release = threading.Event()
    in_flight = threading.Barrier(3, timeout=5)
    proceed = threading.Event()
    order: list[str] = []

    def hold() -> None:
        in_flight.wait()
        assert release.wait(timeout=10)

    def waiter_body(label: str) -> None:
        order.append(label)
        assert proceed.wait(timeout=10)

    threads = [_start_thread(lambda: bh.call(hold)) for _ in range(2)]
    in_flight.wait()
    for i in range(3):
        threads.append(_start_thread(lambda i=i: bh.call(waiter_body, f"w{i}")))
        _eventually(lambda i=i: bh.waiting == i + 1, f"w{i} to queue")
    release.set()
    _eventually(lambda: len(order) == 2, "two waiters to be admitted")
    assert sorted(order) == ["w0", "w1"]
    assert (bh.active, bh.waiting) == (2, 1)
    proceed.set()
    _join(threads)
    assert sorted(order) == ["w0", "w1", "w2"]
    assert order[2] == "w2"
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)


# --- waiting: running out of time -------------------------------------------------------------


@pytest.mark.parametrize("max_concurrent", [1, 2])
def test_a_thread_that_waits_too_long_is_refused_and_leaves_the_queue(max_concurrent: int) -> None:
    """A thread whose max_wait runs out gets BulkheadFullError; no queue entry or slot remains."""
    bh = Bulkhead("db", max_concurrent=max_concurrent, max_wait=0.02)
    ran: list[str] = []
    with contextlib.ExitStack() as hold:
        for _ in range(max_concurrent):
            hold.enter_context(bh)
        errors: list[BaseException] = []

        def waiter() -> None:
            try:
                bh.call(ran.append, "waiter")
            except BulkheadFullError as err:
                errors.append(err)

        _join([_start_thread(waiter)])
        assert len(errors) == 1
        assert (errors[0].name, errors[0].max_concurrent) == ("db", max_concurrent)
        assert (bh.active, bh.waiting, bh.rejected) == (max_concurrent, 0, 1)
    assert ran == []
    assert (bh.active, bh.waiting) == (0, 0)
    _assert_admits_max_concurrent_threads(bh)


@pytest.mark.parametrize("via", ASYNC_VIA)
@pytest.mark.parametrize("max_concurrent", [1, 2])
async def test_a_task_that_waits_too_long_is_refused_and_leaves_the_queue(
    max_concurrent: int, via: str
) -> None:
    """A task whose max_wait runs out gets BulkheadFullError; no queue entry or slot remains."""
    bh = Bulkhead("db", max_concurrent=max_concurrent, max_wait=0.02)
    ran: list[str] = []

    async def body() -> None:
        ran.append("waiter")

    with contextlib.ExitStack() as hold:
        for _ in range(max_concurrent):
            hold.enter_context(bh)
        with pytest.raises(BulkheadFullError) as info:
            await asyncio.wait_for(_enter_async(bh, via, body), timeout=5)
        assert (info.value.name, info.value.max_concurrent) == ("db", max_concurrent)
        assert (bh.active, bh.waiting, bh.rejected) == (max_concurrent, 0, 1)
    assert ran == []
    assert (bh.active, bh.waiting) == (0, 0)
    await _assert_admits_max_concurrent_tasks(bh)


def test_a_thread_timing_out_as_the_slot_is_handed_to_it_leaks_nothing() -> None:
    """A thread whose wait runs out as a slot frees up either runs or is refused; nothing leaks."""
    rng = random.Random(7)
    outcomes: Counter[str] = Counter()
    for _ in range(12):
        bh = Bulkhead("db", max_concurrent=1, max_wait=0.02)
        release = threading.Event()
        holder_in = threading.Event()

        def hold(
            release: threading.Event = release, holder_in: threading.Event = holder_in
        ) -> None:
            holder_in.set()
            assert release.wait(timeout=10)

        holder = _start_thread(lambda bh=bh, hold=hold: bh.call(hold))
        assert holder_in.wait(timeout=5)
        result: list[str] = []

        def waiter(bh: Bulkhead = bh, result: list[str] = result) -> None:
            try:
                bh.call(result.append, "ran")
            except BulkheadFullError:
                result.append("refused")

        waiting = _start_thread(waiter)
        threading.Event().wait(rng.uniform(0.015, 0.025))
        release.set()
        _join([holder, waiting])
        assert len(result) == 1
        outcomes[result[0]] += 1
        assert (bh.active, bh.waiting) == (0, 0), result
        assert bh.rejected == (1 if result == ["refused"] else 0)
        _assert_admits_max_concurrent_threads(bh)
    assert sum(outcomes.values()) == 12


async def test_a_task_timing_out_as_the_slot_is_handed_to_it_leaks_nothing() -> None:
    """A task whose wait runs out as a slot frees up either runs or is refused; nothing leaks."""
    loop = asyncio.get_running_loop()
    rng = random.Random(11)
    for _ in range(12):
        bh = Bulkhead("db", max_concurrent=1, max_wait=0.02)
        release = asyncio.Event()

        async def hold(release: asyncio.Event = release) -> None:
            await release.wait()

        holder = asyncio.create_task(bh.call_async(hold))
        await _eventually_async(lambda bh=bh: bh.active == 1, "the holder")

        async def body() -> str:
            return "ran"

        waiter = asyncio.create_task(bh.call_async(body))
        await _eventually_async(lambda bh=bh: bh.waiting == 1, "the waiter to queue")
        loop.call_later(rng.uniform(0.015, 0.025), release.set)
        done = await asyncio.wait_for(
            asyncio.gather(holder, waiter, return_exceptions=True), timeout=5
        )
        assert done[0] is None
        assert done[1] == "ran" or isinstance(done[1], BulkheadFullError), done
        assert (bh.active, bh.waiting) == (0, 0), done
        await _assert_admits_max_concurrent_tasks(bh)


# --- cancellation -----------------------------------------------------------------------------


@pytest.mark.parametrize("via", ASYNC_VIA)
@pytest.mark.parametrize("point", ["before_start", "queued", "handed_over", "running"])
async def test_cancellation_at_every_await_point_leaks_no_slot(via: str, point: str) -> None:
    """A task cancelled before, while queued, as a slot reaches it, or while running frees all."""
    bh = Bulkhead("db", max_concurrent=2, max_wait=None)
    body_entered = asyncio.Event()
    body_ran: list[str] = []

    async def body() -> None:
        body_ran.append("ran")
        body_entered.set()
        await asyncio.Event().wait()  # hangs until cancelled

    hold = contextlib.ExitStack()
    if point in ("queued", "handed_over"):
        hold.enter_context(bh)
        hold.enter_context(bh)
    task = asyncio.create_task(_enter_async(bh, via, body))
    if point == "before_start":
        task.cancel()
    elif point == "queued":
        await _eventually_async(lambda: bh.waiting == 1, "the task to queue")
        task.cancel()
    elif point == "handed_over":
        await _eventually_async(lambda: bh.waiting == 1, "the task to queue")
        hold.close()  # hands one slot to the task ...
        task.cancel()  # ... which is cancelled before it could run again
    else:
        await asyncio.wait_for(body_entered.wait(), timeout=5)
        assert bh.active == 1
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert task.cancelled()
    assert body_ran == (["ran"] if point == "running" else [])
    hold.close()
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)
    await _assert_admits_max_concurrent_tasks(bh)


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_waiter_gets_the_slot() -> None:
    """Cancelling the first of two queued tasks lets the second take the slot when it frees."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=None)
    ran: list[str] = []

    async def record(label: str) -> str:
        ran.append(label)
        return label

    with contextlib.ExitStack() as hold:
        hold.enter_context(bh)
        first = asyncio.create_task(bh.call_async(record, "first"))
        await _eventually_async(lambda: bh.waiting == 1, "first to queue")
        second = asyncio.create_task(bh.call_async(record, "second"))
        await _eventually_async(lambda: bh.waiting == 2, "second to queue")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (bh.active, bh.waiting) == (1, 1)
    assert await asyncio.wait_for(second, timeout=5) == "second"
    assert ran == ["second"]
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)


@pytest.mark.parametrize("releaser", ["sync_exit", "async_holder"])
@pytest.mark.parametrize("order", ["release_then_cancel", "cancel_then_release"])
async def test_a_slot_handed_to_a_waiter_cancelled_in_the_same_loop_iteration_never_leaks(
    releaser: str, order: str
) -> None:
    """Releasing and cancelling the first waiter in one loop iteration passes the slot on, 300x."""
    for i in range(300):
        max_concurrent = 1 + i % 2
        behind = i % 3 != 0  # usually a second waiter queues behind the cancelled one
        bh = Bulkhead("db", max_concurrent=max_concurrent, max_wait=None)
        ran: list[str] = []

        async def record(label: str, ran: list[str] = ran) -> str:
            ran.append(label)
            return label

        gate = asyncio.Event()
        victim_box: list[asyncio.Task[str]] = []

        async def hold(
            bh: Bulkhead = bh,
            gate: asyncio.Event = gate,
            box: list[asyncio.Task[str]] = victim_box,
        ) -> None:
            async with bh:
                await gate.wait()
                if order == "cancel_then_release":
                    box[0].cancel()
            if order == "release_then_cancel":
                box[0].cancel()

        hold_stack = contextlib.ExitStack()
        holders: list[asyncio.Task[None]] = []
        if releaser == "sync_exit":
            for _ in range(max_concurrent):
                hold_stack.enter_context(bh)
        else:
            holders = [asyncio.create_task(hold()) for _ in range(max_concurrent)]
            await _eventually_async(lambda bh=bh, n=max_concurrent: bh.active == n, "holders")
        victim = asyncio.create_task(bh.call_async(record, "victim"))
        victim_box.append(victim)
        await _eventually_async(lambda bh=bh: bh.waiting == 1, "the victim to queue")
        others = []
        if behind:
            others.append(asyncio.create_task(bh.call_async(record, "next")))
            await _eventually_async(lambda bh=bh: bh.waiting == 2, "the next waiter to queue")

        if releaser == "sync_exit":
            if order == "release_then_cancel":
                hold_stack.close()
                victim.cancel()
            else:
                victim.cancel()
                hold_stack.close()
        else:
            gate.set()

        results = await asyncio.wait_for(
            asyncio.gather(victim, *others, *holders, return_exceptions=True), timeout=5
        )
        assert isinstance(results[0], asyncio.CancelledError), (i, results)
        assert results[1:] == (["next"] if behind else []) + [None] * len(holders), (i, results)
        assert ran == (["next"] if behind else []), i
        assert (bh.active, bh.waiting) == (0, 0), i
        await _assert_admits_max_concurrent_tasks(bh)


# --- exceptions -------------------------------------------------------------------------------


EXCEPTIONS: list[type[BaseException]] = [Boom, KeyboardInterrupt, SystemExit]


@pytest.mark.parametrize("exc_type", EXCEPTIONS)
@pytest.mark.parametrize("via", SYNC_VIA)
def test_an_exception_in_a_sync_call_propagates_and_releases_the_slot(
    via: str, exc_type: type[BaseException]
) -> None:
    """An Exception, KeyboardInterrupt or SystemExit raised inside propagates and frees the slot."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=0)
    raised = exc_type("inside")

    def body() -> None:
        assert bh.active == 1
        raise raised

    for _ in range(3):
        with pytest.raises(exc_type) as info:
            _enter_sync(bh, via, body)
        assert info.value is raised
        assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)
    assert bh.call(lambda: "after") == "after"


@pytest.mark.parametrize("exc_type", EXCEPTIONS)
@pytest.mark.parametrize("via", ASYNC_VIA)
async def test_an_exception_in_an_async_call_propagates_and_releases_the_slot(
    via: str, exc_type: type[BaseException]
) -> None:
    """An Exception, KeyboardInterrupt or SystemExit raised inside propagates and frees the slot."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=0)
    raised = exc_type("inside")

    async def body() -> None:
        assert bh.active == 1
        raise raised

    for _ in range(3):
        with pytest.raises(exc_type) as info:
            await _enter_async(bh, via, body)
        assert info.value is raised
        assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)

    async def after() -> str:
        return "after"

    assert await bh.call_async(after) == "after"


def test_a_failing_call_hands_its_slot_to_the_first_queued_thread() -> None:
    """A call that raises still hands its slot over to the waiter at the head of the queue."""
    bh = Bulkhead("db", max_concurrent=1, max_wait=None)
    release = threading.Event()
    holder_in = threading.Event()
    ran: list[str] = []

    def fail() -> None:
        holder_in.set()
        assert release.wait(timeout=10)
        raise Boom

    def holder() -> None:
        with contextlib.suppress(Boom):
            bh.call(fail)

    threads = [_start_thread(holder)]
    assert holder_in.wait(timeout=5)
    threads.append(_start_thread(lambda: bh.call(ran.append, "waiter")))
    _eventually(lambda: bh.waiting == 1, "the waiter to queue")
    release.set()
    _join(threads)
    assert ran == ["waiter"]
    assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)


# --- validation and introspection -------------------------------------------------------------


BAD: list[tuple[str, dict[str, Any]]] = [
    ("name", {"name": ""}),
    ("name", {"name": 3}),
    ("name", {"name": None}),
    ("max_concurrent", {"max_concurrent": 0}),
    ("max_concurrent", {"max_concurrent": -1}),
    ("max_concurrent", {"max_concurrent": True}),
    ("max_concurrent", {"max_concurrent": 2.0}),
    ("max_concurrent", {"max_concurrent": 2.5}),
    ("max_concurrent", {"max_concurrent": "4"}),
    ("max_concurrent", {"max_concurrent": None}),
    ("max_wait", {"max_wait": -1}),
    ("max_wait", {"max_wait": -0.001}),
    ("max_wait", {"max_wait": "1"}),
    ("max_wait", {"max_wait": True}),
    ("max_wait", {"max_wait": math.nan}),
    ("max_wait", {"max_wait": 1e10}),  # once an OverflowError when contended
]


@pytest.mark.parametrize("factory", [Bulkhead, bulkhead])
@pytest.mark.parametrize(("param", "config"), [pytest.param(p, c, id=f"{p}={c}") for p, c in BAD])
def test_a_bad_argument_is_refused_naming_the_field(
    factory: Callable[..., Bulkhead], param: str, config: dict[str, Any]
) -> None:
    """Bulkhead() and bulkhead() raise ValueError or TypeError whose message names the field."""
    config = dict(config)
    name = config.pop("name", "db")
    with pytest.raises((ValueError, TypeError), match=re.escape(param)):
        factory(name, **config)


@pytest.mark.parametrize(
    ("max_concurrent", "max_wait"), [(1, 0), (1, 0.0), (10, 0.5), (3, 2), (64, None)]
)
def test_the_properties_report_the_configuration(
    max_concurrent: int, max_wait: float | None
) -> None:
    """name, max_concurrent and max_wait read back what was given; the counters start at zero."""
    for bh in (
        Bulkhead("payments", max_concurrent=max_concurrent, max_wait=max_wait),
        bulkhead("payments", max_concurrent=max_concurrent, max_wait=max_wait),
    ):
        assert isinstance(bh, Bulkhead)
        assert bh.name == "payments"
        assert bh.max_concurrent == max_concurrent
        assert bh.max_wait == max_wait
        assert (bh.active, bh.waiting, bh.rejected) == (0, 0, 0)


def test_the_defaults_are_ten_slots_and_no_waiting() -> None:
    """Bulkhead(name) allows 10 concurrent calls and refuses the 11th at once."""
    bh = Bulkhead("db")
    assert (bh.max_concurrent, bh.max_wait) == (10, 0.0)
    with contextlib.ExitStack() as hold:
        for _ in range(10):
            hold.enter_context(bh)
        with pytest.raises(BulkheadFullError):
            bh.call(lambda: None)
    assert bh.rejected == 1


def test_bulkhead_full_error_is_an_exception_with_name_and_limit() -> None:
    """BulkheadFullError is an Exception (so retry, breaker and fallback see it) with attributes."""
    bh = Bulkhead("search", max_concurrent=1)
    with bh, pytest.raises(BulkheadFullError) as info:
        bh.call(lambda: None)
    assert isinstance(info.value, Exception)
    assert (info.value.name, info.value.max_concurrent) == ("search", 1)


def test_the_decorator_keeps_the_signature_of_a_sync_function() -> None:
    """@bh keeps __name__, __qualname__, __doc__ and __wrapped__ and stays a plain function."""
    bh = Bulkhead("db")

    def fetch(key: str) -> str:
        """Fetch a key."""
        return key

    wrapped = bh(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__qualname__ == fetch.__qualname__
    assert wrapped.__doc__ == "Fetch a key."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped("k") == "k"


async def test_the_decorator_keeps_an_async_function_a_coroutine_function() -> None:
    """@bh on an async function returns a coroutine function with the same metadata."""
    bh = Bulkhead("db")

    async def fetch(key: str) -> str:
        """Fetch a key."""
        return key

    wrapped = bh(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch a key."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert await wrapped("k") == "k"


def test_bulkhead_makes_a_new_limit_per_call_and_a_shared_bulkhead_shares_one() -> None:
    """Two @bulkhead(...) uses are independent; one Bulkhead on two functions is one limit."""
    first = bulkhead("db", max_concurrent=1)
    second = bulkhead("db", max_concurrent=1)
    assert first is not second

    @first
    def a() -> str:
        return "a"

    @second
    def b() -> str:
        return "b"

    with first:
        assert b() == "b"
        with pytest.raises(BulkheadFullError):
            a()

    shared = Bulkhead("db", max_concurrent=1)
    c = shared(lambda: "c")
    d = shared(lambda: "d")
    with shared:
        for fn in (c, d):
            with pytest.raises(BulkheadFullError):
                fn()
    assert (c(), d()) == ("c", "d")
    assert shared.rejected == 2
