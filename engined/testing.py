"""Helpers for testing code that uses engined, without sleeping.

:class:`FakeClock` is virtual time: pass it as ``clock=`` and move time with
:meth:`FakeClock.advance`. Sleeps return at once, advance the clock by what they
asked for and record it in :attr:`FakeClock.sleeps`, so a test can assert on the
exact schedule a retry or a health loop followed.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`engined.Clock` whose time moves only when told to.

    Thread-safe: several threads may sleep or advance it at once.

    Args:
        start: The initial reading of :meth:`monotonic`.

    Attributes:
        sleeps: Every sleep requested through :meth:`sleep` or :meth:`sleep_async`, in order.
    """

    __slots__ = ("_lock", "_now", "sleeps")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the current virtual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``.

        Raises:
            ValueError: If ``seconds`` is negative; a monotonic clock never goes back.
        """
        if seconds < 0:
            msg = f"seconds must be >= 0, got {seconds!r}"
            raise ValueError(msg)
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance time by it, returning at once."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    async def sleep_async(self, seconds: float) -> None:
        """Record the sleep, advance time by it, and yield to the event loop once."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleeps={len(self.sleeps)})"
