"""Publication of health changes to ``watch()`` readers: coalesced, and from any loop.

A watcher sees the overall status and every component's status and heal state. Building
a full snapshot for each recorded result made a round of N checks cost O(N²) as soon as
one reader watched, so publication is incremental:

- after recording, the manager hands over what a watcher would see of the component (its
  status and heal state); if that differs from what was last published, one flush is
  queued on the running loop, at most one at a time (while one is queued, nothing needs
  comparing: it has not taken its snapshot yet);
- the flush builds one snapshot for all watchers, once per loop iteration at most, and
  hands it to every watcher whose last value differs (a change undone before the flush
  publishes nothing).

Nothing is done at all while nobody watches. Each watcher belongs to the loop it was
created on: it waits on a future of that loop, and a flush on another loop hands it the
value with ``call_soon_threadsafe``. A reader that falls behind skips values and always
gets the latest one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

from engined.core._health_model import HealState, HealthStatus, SystemHealth

__all__ = ["Publisher", "Seen"]

Seen = tuple[HealthStatus, HealState]  # what a watcher sees of one component


class _Watcher:
    __slots__ = ("latest", "loop", "signature", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.latest: SystemHealth | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.signature: object = None  # of the last value handed over

    def deliver(self, health: SystemHealth) -> None:
        """Keep ``health`` as the next value; runs on the watcher's own loop."""
        self.latest = health
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self) -> SystemHealth:
        while self.latest is None:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        health, self.latest = self.latest, None
        return health


def _signature(health: SystemHealth) -> tuple[HealthStatus, dict[str, Seen]]:
    seen = {name: (c.status, c.heal_state) for name, c in health.components.items()}
    return health.overall_status, seen


class Publisher:
    """Hands coalesced health changes to every watcher.

    Args:
        snapshot: Builds the current :class:`SystemHealth` (takes the manager's lock; the
            publisher never holds its own lock while calling it from a flush).
    """

    __slots__ = ("_last", "_lock", "_pending", "_published", "_snapshot", "_watchers")

    def __init__(self, snapshot: Callable[[], SystemHealth]) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()
        self._watchers: set[_Watcher] = set()
        self._published: dict[str, Seen] = {}
        self._last: object = None  # signature of the last flush
        self._pending: asyncio.AbstractEventLoop | None = None  # loop with a flush queued

    @property
    def active(self) -> bool:
        """Whether a change now needs looking at: someone watches and no flush is queued.

        A queued flush has not taken its snapshot yet, so it will include any change
        made before this is read; callers skip working out what changed.
        """
        return bool(self._watchers) and not self._queued()

    def touch(self, name: str, seen: Seen) -> None:
        """A component changed; publish if a watcher would now see it differently."""
        if not self._watchers:
            return
        with self._lock:
            if self._queued() or self._published.get(name) == seen:
                return
            now = self._schedule()
        if now:
            self._flush()

    def changed(self) -> None:
        """Components were added or removed: publish."""
        if not self._watchers:
            return
        with self._lock:
            if self._queued():
                return
            now = self._schedule()
        if now:
            self._flush()

    def _queued(self) -> bool:
        """Whether a flush is queued on a loop that will still run it."""
        pending = self._pending
        return pending is not None and not pending.is_closed()

    def _schedule(self) -> bool:
        """Queue a flush on the running loop; the lock is held. True: no loop runs, flush now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return True
        self._pending = loop
        loop.call_soon(self._flush)
        return False

    def _flush(self) -> None:
        with self._lock:
            self._pending = None
            if not self._watchers:
                return
        health = self._snapshot()  # without our lock: it takes the manager's
        signature = _signature(health)
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        with self._lock:
            previous, self._last, self._published = self._last, signature, signature[1]
            changed = signature != previous  # one comparison for every up-to-date watcher
            lost = []
            for watcher in self._watchers:
                # One subscribed since the last flush compares with its own first value.
                due = changed if watcher.signature is previous else watcher.signature != signature
                watcher.signature = signature
                if due and not self._send(watcher, health, here):
                    lost.append(watcher)
            self._watchers.difference_update(lost)

    @staticmethod
    def _send(
        watcher: _Watcher, health: SystemHealth, here: asyncio.AbstractEventLoop | None
    ) -> bool:
        if watcher.loop is here:
            watcher.deliver(health)
            return True
        try:
            watcher.loop.call_soon_threadsafe(watcher.deliver, health)
        except RuntimeError:  # its loop is closed: the reader is gone
            return False
        return True

    async def watch(self) -> AsyncIterator[SystemHealth]:
        """Yield the current health at once, then each published change."""
        watcher = _Watcher(asyncio.get_running_loop())
        with self._lock:
            self._watchers.add(watcher)  # first: a change after the snapshot is then seen
            first = self._snapshot()
            signature = watcher.signature = _signature(first)
            if len(self._watchers) == 1:  # the baseline of what was published is this
                self._last, self._published = signature, signature[1]
        try:
            yield first
            while True:
                yield await watcher.next()
        finally:
            with self._lock:
                self._watchers.discard(watcher)
