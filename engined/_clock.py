"""Time, injected: the one module of engined that reads the real clock.

Everything in engined that waits or measures takes a :class:`Clock`, so tests can
swap in :class:`engined.testing.FakeClock` and never sleep.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time and a way to wait on it."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.sleep`, :func:`asyncio.sleep`.

    ``monotonic`` is :func:`time.monotonic` itself rather than a method wrapping it: the
    breaker reads it on every rejection, and a Python frame there would cost more than
    the read.
    """

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)

    def sleep(self, seconds: float) -> None:
        """Sleep the thread; negative values sleep for zero seconds."""
        time.sleep(max(seconds, 0.0))

    async def sleep_async(self, seconds: float) -> None:
        """Sleep the task; negative values still yield to the loop once."""
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Final[Clock] = SystemClock()
