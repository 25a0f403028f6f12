"""The Clock protocol, the system clock and FakeClock."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest

from engined._clock import SYSTEM_CLOCK, Clock, SystemClock
from engined.testing import FakeClock


@pytest.mark.parametrize("start", [0.0, 12.5, 1e6])
def test_fake_clock_starts_where_told(start: float) -> None:
    """FakeClock(start).monotonic() reads start and no sleeps are recorded."""
    clock = FakeClock(start)
    assert clock.monotonic() == start
    assert clock.sleeps == []


def test_fake_clock_advance_moves_time_without_recording_a_sleep() -> None:
    """advance() adds to the reading and is not a sleep."""
    clock = FakeClock()
    clock.advance(1.5)
    clock.advance(0.0)
    clock.advance(2.25)
    assert clock.monotonic() == 3.75
    assert clock.sleeps == []


@pytest.mark.parametrize("seconds", [-1.0, -1e-9])
def test_fake_clock_refuses_negative_advance(seconds: float) -> None:
    """A negative advance raises ValueError and leaves time where it was."""
    clock = FakeClock(5.0)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(seconds)
    assert clock.monotonic() == 5.0


def test_fake_clock_sleep_records_and_advances() -> None:
    """sleep() returns at once, records the request and advances time by it."""
    clock = FakeClock(1.0)
    clock.sleep(0.5)
    clock.sleep(2.0)
    assert clock.sleeps == [0.5, 2.0]
    assert clock.monotonic() == 3.5


def test_fake_clock_negative_sleep_is_recorded_but_never_goes_back() -> None:
    """A negative sleep is recorded as asked but does not move time backwards."""
    clock = FakeClock(4.0)
    clock.sleep(-1.0)
    assert clock.sleeps == [-1.0]
    assert clock.monotonic() == 4.0


async def test_fake_clock_sleep_async_records_advances_and_yields() -> None:
    """sleep_async() records, advances time and lets another ready task run."""
    clock = FakeClock()
    ran = asyncio.Event()

    async def other() -> None:
        ran.set()

    task = asyncio.create_task(other())
    await clock.sleep_async(3.0)
    assert ran.is_set()
    assert clock.sleeps == [3.0]
    assert clock.monotonic() == 3.0
    await task


def test_fake_clock_is_thread_safe() -> None:
    """Concurrent advances and sleeps from 8 threads add up exactly."""
    clock = FakeClock()
    start = threading.Barrier(8, timeout=5)

    def worker() -> None:
        start.wait()
        for _ in range(1000):
            clock.advance(1.0)
            clock.sleep(1.0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert clock.monotonic() == 16_000.0
    assert len(clock.sleeps) == 8_000


@pytest.mark.parametrize("clock", [SystemClock(), SYSTEM_CLOCK, FakeClock()], ids=repr)
def test_clocks_satisfy_the_clock_protocol(clock: object) -> None:
    """SystemClock and FakeClock are runtime instances of the Clock protocol."""
    assert isinstance(clock, Clock)


@pytest.mark.parametrize("thing", [object(), 1.0, "clock"])
def test_non_clocks_do_not_satisfy_the_protocol(thing: object) -> None:
    """Objects without the clock methods are not Clocks."""
    assert not isinstance(thing, Clock)


def test_system_clock_is_non_decreasing() -> None:
    """SystemClock.monotonic never goes backwards over many reads."""
    readings = [SYSTEM_CLOCK.monotonic() for _ in range(10_000)]
    assert all(b >= a for a, b in itertools.pairwise(readings))
    assert isinstance(readings[0], float)


def test_system_clock_negative_sleep_returns_at_once() -> None:
    """A negative sleep on the real clock returns immediately instead of raising."""
    before = SYSTEM_CLOCK.monotonic()
    SYSTEM_CLOCK.sleep(-5.0)
    assert SYSTEM_CLOCK.monotonic() - before < 1.0


async def test_system_clock_negative_sleep_async_returns_at_once() -> None:
    """A negative async sleep on the real clock returns immediately instead of raising."""
    before = SYSTEM_CLOCK.monotonic()
    await SYSTEM_CLOCK.sleep_async(-5.0)
    assert SYSTEM_CLOCK.monotonic() - before < 1.0


def test_clock_reprs() -> None:
    """Both clocks have an informative repr."""
    assert repr(SystemClock()) == "SystemClock()"
    clock = FakeClock(2.0)
    clock.sleep(1.0)
    assert "3.0" in repr(clock)
    assert "FakeClock" in repr(clock)
