"""Timing and memory primitives, identical for every library and case.

Every timed loop runs with the cyclic garbage collector paused and reads
:func:`time.perf_counter_ns` once before and once after the loop. A call that raises is caught
and its exception dropped at once, so nothing from a call outlives it.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from time import perf_counter_ns
from typing import Any

SyncFn = Callable[[], Any]
AsyncFn = Callable[[], Awaitable[Any]]
Catch = type[BaseException] | None  # what each call is expected to raise; None: nothing


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, restoring its previous state afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_sync(fn: SyncFn, n: int, catch: Catch) -> int:
    """Call ``fn`` ``n`` times; return the elapsed nanoseconds."""
    rounds = range(n)
    with gc_paused():
        if catch is None:
            start = perf_counter_ns()
            for _ in rounds:
                fn()
            return perf_counter_ns() - start
        start = perf_counter_ns()
        for _ in rounds:
            try:  # noqa: SIM105 - contextlib.suppress would add its own cost to the timing
                fn()
            except catch:
                pass
        return perf_counter_ns() - start


async def run_async(fn: AsyncFn, n: int, catch: Catch) -> int:
    """Await ``fn()`` ``n`` times in the running loop; return the elapsed nanoseconds."""
    rounds = range(n)
    with gc_paused():
        if catch is None:
            start = perf_counter_ns()
            for _ in rounds:
                await fn()
            return perf_counter_ns() - start
        start = perf_counter_ns()
        for _ in rounds:
            try:  # noqa: SIM105 - contextlib.suppress would add its own cost to the timing
                await fn()
            except catch:
                pass
        return perf_counter_ns() - start


def throughput(fn: SyncFn, total: int, threads: int) -> float:
    """Call ``fn`` ``total`` times spread over ``threads`` threads; return calls per second.

    The span runs from the first thread's start to the last thread's end.
    """
    per_thread = max(1, total // threads)
    barrier = threading.Barrier(threads)
    spans: list[tuple[int, int]] = []

    def worker() -> None:
        rounds = range(per_thread)
        barrier.wait()
        start = perf_counter_ns()
        for _ in rounds:
            fn()
        spans.append((start, perf_counter_ns()))

    workers = [threading.Thread(target=worker, name=f"bench-{i}") for i in range(threads)]
    with gc_paused():
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    if len(spans) != threads:
        raise RuntimeError("a benchmark thread failed (its traceback is above)")
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return per_thread * threads * 1e9 / elapsed


def _traced_after_collect() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def retained_sync(fn: SyncFn, n: int, catch: Catch, warmup: int) -> float:
    """Bytes still allocated, per call, after ``n`` calls that follow ``warmup`` calls."""
    tracemalloc.start()
    try:
        run_sync(fn, warmup, catch)
        before = _traced_after_collect()
        run_sync(fn, n, catch)
        after = _traced_after_collect()
    finally:
        tracemalloc.stop()
    return (after - before) / n


async def retained_async(fn: AsyncFn, n: int, catch: Catch, warmup: int) -> float:
    """:func:`retained_sync` for a coroutine function, inside the running loop."""
    tracemalloc.start()
    try:
        await run_async(fn, warmup, catch)
        before = _traced_after_collect()
        await run_async(fn, n, catch)
        after = _traced_after_collect()
    finally:
        tracemalloc.stop()
    return (after - before) / n
