"""Bulkhead: cap how many calls to one dependency run at once.

Sync and async callers share one count. A caller that finds every slot taken either
fails at once with :class:`BulkheadFullError` (``max_wait=0``, the default) or queues for
up to ``max_wait`` seconds. Queued callers are served first come, first served: a
finishing call hands its slot straight to the first waiter, so a newcomer never jumps
the queue. Threads wait on a ``threading.Event`` and tasks on a future of their own
loop, so the event loop is never blocked; ``max_wait`` is therefore measured by those
primitives, in real time, also under a FakeClock.

Every exit releases: an exception or a cancellation inside the call, a waiter timing
out, and a waiter cancelled at the very moment a slot was handed to it (it passes the
slot on).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING

from engined._clock import SYSTEM_CLOCK
from engined.core import _validate as check
from engined.core._guard import Guard
from engined.core.errors import RejectedError

__all__ = ["Bulkhead", "BulkheadFullError", "bulkhead"]


class BulkheadFullError(RejectedError):
    """Raised when every slot of a bulkhead is taken and waiting is not allowed or ran out.

    Args:
        name: The bulkhead's name.
        max_concurrent: Its limit.
    """

    __slots__ = ()

    args: tuple[str, int]

    if TYPE_CHECKING:
        # Only declared: BaseException's C initializer stores the arguments in ``args``.
        def __init__(self, name: str, max_concurrent: int, /) -> None: ...

    @property
    def name(self) -> str:
        """The name of the bulkhead that refused the call."""
        return self.args[0]

    @property
    def max_concurrent(self) -> int:
        """How many calls it lets run at once."""
        return self.args[1]

    def __str__(self) -> str:
        return f"bulkhead {self.name!r} is full ({self.max_concurrent} calls running)"


class _ThreadWaiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.granted = False
        self.event = threading.Event()

    def grant(self) -> bool:
        self.granted = True
        self.event.set()
        return True


class _TaskWaiter:
    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.granted = False
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def grant(self) -> bool:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # its loop is closed: nobody is left to take the slot
            return False
        self.granted = True
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Bulkhead(Guard):
    """Let at most ``max_concurrent`` calls through at once.

    Use it like a circuit breaker: ``@bh`` on sync or async functions, ``bh.call(fn)``,
    ``await bh.call_async(fn)``, and blocks: ``with bh:`` and ``async with bh:``. Slots
    are interchangeable, so a block holds no slot of its own: it may end in another
    thread, task or context than it began in, and blocks need not nest.

    Args:
        name: Names the bulkhead in errors.
        max_concurrent: Calls allowed to run at once.
        max_wait: Seconds a caller may queue for a slot; 0 refuses at once, ``None``
            waits as long as it takes.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.
    """

    __slots__ = (
        "_active",
        "_lock",
        "_monotonic",
        "_queue",
        "_rejected_count",
        "max_concurrent",
        "max_wait",
        "name",
    )

    # No fast permit, no refusal window, nothing to time: every call is admitted here.
    _fast = None
    _refuse_until = -math.inf
    _plain = _plain_failures = False
    _timed = False

    def __init__(self, name: str, *, max_concurrent: int = 10, max_wait: float | None = 0.0):
        self.name = check.check_name("name", name)
        super().__init__(f"bulkhead {self.name!r}")
        self.max_concurrent = check.check_int("max_concurrent", max_concurrent, minimum=1)
        self.max_wait = None if max_wait is None else _check_max_wait(max_wait)
        self._monotonic = SYSTEM_CLOCK.monotonic
        self._lock = threading.Lock()
        self._active = 0
        self._rejected_count = 0
        self._queue: deque[_ThreadWaiter | _TaskWaiter] = deque()

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, max_concurrent={self.max_concurrent}, "
            f"max_wait={self.max_wait!r}, active={self._active}, waiting={len(self._queue)})"
        )

    @property
    def active(self) -> int:
        """Calls running now."""
        return self._active

    @property
    def waiting(self) -> int:
        """Callers queued for a slot now."""
        return len(self._queue)

    @property
    def rejected(self) -> int:
        """Callers refused so far."""
        return self._rejected_count

    def _try_enter(self) -> bool:
        """Take a free slot if nobody is queued; the lock is held."""
        if self._active < self.max_concurrent and not self._queue:
            self._active += 1
            return True
        return False

    def _refuse(self) -> BulkheadFullError:
        """Count a refusal; the lock is held."""
        self._rejected_count += 1
        return BulkheadFullError(self.name, self.max_concurrent)

    def _admit(self) -> bool:
        with self._lock:
            if self._try_enter():
                return True
            if self.max_wait == 0:
                raise self._refuse()
            waiter = _ThreadWaiter()
            self._queue.append(waiter)
        try:
            waiter.event.wait(self.max_wait)
        except BaseException:
            self._abandon(waiter)
            raise
        with self._lock:
            if waiter.granted:  # woken, or handed over just as the wait timed out
                return True
            self._queue.remove(waiter)
            raise self._refuse()

    async def _admit_async(self) -> bool:
        with self._lock:
            if self._try_enter():
                return True
            if self.max_wait == 0:
                raise self._refuse()
            waiter = _TaskWaiter(asyncio.get_running_loop())
            self._queue.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter.future
        except TimeoutError:
            with self._lock:
                if waiter.granted:  # handed over as the timer fired: take it
                    return True
                self._queue.remove(waiter)
                raise self._refuse() from None
        except BaseException:
            self._abandon(waiter)
            raise
        return True

    def _abandon(self, waiter: _ThreadWaiter | _TaskWaiter) -> None:
        """Leave the queue for good; a slot handed over meanwhile is passed on."""
        with self._lock:
            if not waiter.granted:
                self._queue.remove(waiter)
                return
        self._release_slot()

    def _release_slot(self) -> None:
        with self._lock:
            while self._queue:
                if self._queue.popleft().grant():
                    return  # the slot moves to the waiter; the count stays
            self._active -= 1

    def _on_result(self, permit: bool, result: object, start: float) -> None:
        self._release_slot()

    def _on_exception(self, permit: bool, exc: BaseException, start: float) -> None:
        self._release_slot()

    def _give_back(self, permit: bool) -> None:
        self._release_slot()

    def __enter__(self) -> None:
        self._admit()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release_slot()

    async def __aenter__(self) -> None:
        await self._admit_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release_slot()


def _check_max_wait(value: object) -> float:
    """``max_wait`` must fit the waits it is passed to: ``threading.TIMEOUT_MAX`` at most."""
    seconds = check.check_positive("max_wait", value, inclusive=True)
    if seconds > threading.TIMEOUT_MAX:
        msg = (
            f"max_wait must be at most {threading.TIMEOUT_MAX:g} seconds, got {value!r}; "
            "use max_wait=None to wait as long as it takes"
        )
        raise ValueError(msg)
    return seconds


def bulkhead(name: str, *, max_concurrent: int = 10, max_wait: float | None = 0.0) -> Bulkhead:
    """Return a new :class:`Bulkhead`, which is itself a decorator.

    Each call makes a new bulkhead; to share one limit between functions, create a
    ``Bulkhead`` once and decorate each of them with it.
    """
    return Bulkhead(name, max_concurrent=max_concurrent, max_wait=max_wait)
