"""Nothing accumulates or complains: register/unregister cycles, and checks outliving their loop.

A manager driven only by ``run_check``/``run_all`` never pops its due-heap, whose stale
entries used to keep every unregistered component alive (54 MiB after 20,000 cycles).
A sync check still running after ``stop()`` and its loop's close used to log an ERROR
traceback ("Event loop is closed") when it finally returned.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import tracemalloc

import pytest

from engined import HealthCheckManager, HealthStatus
from engined.core._health_scheduler import Scheduler
from engined.testing import FakeClock

CYCLES = 20_000


def _heap_size(manager: HealthCheckManager) -> int:
    scheduler = manager._scheduler  # the one private look: the heap is what used to grow
    assert isinstance(scheduler, Scheduler)
    return scheduler.heap_size


def _payload() -> bytes:
    return bytes(2048)  # something a component's check might hold


def test_register_unregister_cycles_keep_memory_and_the_heap_bounded() -> None:
    """20,000 register/unregister cycles beside 10 live components: heap and memory stay flat."""
    manager = HealthCheckManager(clock=FakeClock())
    for i in range(10):
        manager.register(f"live-{i}", lambda: True)
    for _ in range(1000):  # warm up: caches, the heap's first rebuild
        data = _payload()
        manager.register("cycled", lambda data=data: bool(data))
        manager.unregister("cycled")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        peak_heap = 0
        for _ in range(CYCLES):
            data = _payload()
            manager.register("cycled", lambda data=data: bool(data))
            manager.unregister("cycled")
            peak_heap = max(peak_heap, _heap_size(manager))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert peak_heap <= 2 * 10 + 64 + 1  # stale entries never outnumber the live ones for long
    assert grown < 256 * 1024, f"{grown} bytes kept after {CYCLES} cycles"
    assert sorted(manager.snapshot().components) == [f"live-{i}" for i in range(10)]


def test_unregistered_components_are_not_kept_alive_by_the_heap() -> None:
    """After the cycles, none of the unregistered components' checks is still referenced."""

    class Check:
        alive = 0

        def __init__(self) -> None:
            Check.alive += 1

        def __del__(self) -> None:
            Check.alive -= 1

        def __call__(self) -> bool:
            return True

    manager = HealthCheckManager(clock=FakeClock())
    for _ in range(5000):
        manager.register("cycled", Check())
        manager.unregister("cycled")
    gc.collect()
    assert Check.alive <= 64  # at most one rebuild's worth of stale entries
    assert _heap_size(manager) <= 64


def test_a_sync_check_finishing_after_stop_and_loop_close_ends_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The thread of a timed-out check returns after its loop closed: no ERROR, no traceback."""
    manager = HealthCheckManager(clock=FakeClock())
    release = threading.Event()
    returned = threading.Event()

    def hangs() -> bool:
        try:
            release.wait(10.0)
            return True
        finally:
            returned.set()

    manager.register("hung", hangs, timeout=0.05)
    loop = asyncio.new_event_loop()
    workers_before = {t for t in threading.enumerate() if t.name.startswith("engined-health")}
    with caplog.at_level(logging.DEBUG):
        health = loop.run_until_complete(manager.run_check("hung"))
        loop.run_until_complete(manager.stop())
        loop.close()
        workers = {t for t in threading.enumerate() if t.name.startswith("engined-health")}
        release.set()
        assert returned.wait(5.0)
        for thread in workers - workers_before:
            thread.join(5.0)  # the worker ends after its job: stop() let the idle ones go
            assert not thread.is_alive()
    assert health.last_result is not None
    assert (health.status, health.last_result.error) == (HealthStatus.UNHEALTHY, "timeout")
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert all(r.exc_info is None for r in caplog.records)
