"""One ``manager.watch()`` subscription shared by every open stream of a server.

Health ``Watch`` and ``WatchSystemHealth`` streams can be many (load balancers, probes,
dashboards: the tests hold 200 open). Each reads a *topic* of the feed
(:meth:`WatchFeed.topic`), not a subscription of its own: one task reads
``manager.watch()`` while at least one stream is open, works out each topic's part of
every value once, and wakes only the streams whose part changed. Readers skip values they
were too slow for and always get the latest, as ``watch()`` readers do.

A stream that ends, because its client went away (grpc.aio cancels its handler) or the
server shuts down, leaves nothing behind: the last one out cancels the feeding task, so a
server with no open stream holds no subscription and no task (grpc/grpc#17747, #43403:
Watch streams must neither pin threads nor stall each other).

A health ``Watch`` of one service reads one serving status: with 200 streams over 100
services, a status change wakes two streams instead of 200, which is most of the cost of
a busy server's watches. ``WatchSystemHealth`` reads :meth:`WatchFeed.updates`, the topic
of the whole health.

Two signals reach every stream at once: :meth:`WatchFeed.poke` makes every topic look at
the latest value again (graceful shutdown turns health to NOT_SERVING without any health
change), and :meth:`WatchFeed.close` ends every stream after its last value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Hashable
from typing import Any, Final, TypeVar

from engined import HealthCheckManager, SystemHealth

__all__ = ["FeedFailed", "WatchFeed"]

_log = logging.getLogger("engined.rpc")


T = TypeVar("T")


class FeedFailed(RuntimeError):
    """``manager.watch()`` ended or raised: streams cannot be served any more."""


def _whole(health: SystemHealth) -> SystemHealth:
    return health


_WHOLE: Final = object()
"""The key of the whole-health topic (:meth:`WatchFeed.updates`)."""


class _Topic:
    """One part of the health, its latest value and the streams waiting for a change."""

    __slots__ = ("changed", "generation", "select", "streams", "value")

    def __init__(self, select: Callable[[SystemHealth], Any]) -> None:
        self.select = select
        self.value: Any = None
        self.generation = 0  # 0: no value yet
        self.changed = asyncio.Event()  # replaced after each wake-up, as the feed's own
        self.streams = 0

    def update(self, health: SystemHealth) -> None:
        value = self.select(health)
        if self.generation == 0 or (value is not self.value and value != self.value):
            self.value = value
            self.generation += 1
            self.wake()

    def wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class WatchFeed:
    """Fans one ``manager.watch()`` subscription out to any number of streams.

    Everything runs on the server's event loop; nothing here is thread-safe, nor needs
    to be.

    Args:
        manager: The health manager whose changes are fed.
    """

    __slots__ = (
        "_closed",
        "_failed",
        "_latest",
        "_manager",
        "_streams",
        "_task",
        "_topics",
    )

    def __init__(self, manager: HealthCheckManager) -> None:
        self._manager = manager
        self._latest: SystemHealth | None = None
        self._streams = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failed = False
        self._topics: dict[Hashable, _Topic] = {}

    @property
    def streams(self) -> int:
        """How many streams are reading the feed now."""
        return self._streams

    @property
    def feeding(self) -> bool:
        """Whether a task is reading ``manager.watch()`` (only while a stream is open)."""
        return self._task is not None

    def updates(self) -> AsyncGenerator[SystemHealth, None]:
        """Yield the latest health at once, then each new value (the whole-health topic).

        Ends after :meth:`close`, once the latest value was handed out (a stream that
        had none yet gets the manager's snapshot).

        Raises:
            FeedFailed: ``manager.watch()`` failed; the stream should end with an error.
        """
        return self.topic(_WHOLE, _whole)

    async def topic(
        self, key: Hashable, select: Callable[[SystemHealth], T]
    ) -> AsyncGenerator[T, None]:
        """Yield ``select(health)`` at once, then again each time it changes.

        Streams of one ``key`` share one ``select`` (the first stream's): it runs once
        per health value for them all, and only they are woken when its value changes
        (or on :meth:`poke`, if the value it then selects differs). Ends after
        :meth:`close`, once the latest value was handed out (a stream that had none yet
        gets its part of the manager's snapshot).

        Raises:
            FeedFailed: ``manager.watch()`` failed; the stream should end with an error.
        """
        self._streams += 1
        self._start()
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = _Topic(select)
            if self._latest is not None:
                topic.update(self._latest)
        topic.streams += 1
        handed = 0
        try:
            while True:
                changed = topic.changed  # taken first: a wake-up after this is not lost
                if topic.generation != handed:
                    handed = topic.generation
                    yield topic.value
                    continue
                if self._failed:
                    msg = "the health manager's watch() ended"
                    raise FeedFailed(msg)
                if self._closed:
                    if handed == 0:  # opened after close, or closed before its first value
                        yield topic.select(self._manager.snapshot())
                    return
                await changed.wait()
        finally:
            topic.streams -= 1
            if topic.streams == 0 and self._topics.get(key) is topic:
                del self._topics[key]
            self._streams -= 1
            if self._streams == 0:
                self._stop()

    def poke(self) -> None:
        """Have every topic select from the latest value again; wake those that changed."""
        if self._latest is not None:
            self._update_topics(self._latest)

    def close(self) -> None:
        """End every stream, now and from now on, after it has had the latest value."""
        self._closed = True
        self._wake()

    def _update_topics(self, health: SystemHealth) -> None:
        for topic in list(self._topics.values()):
            topic.update(health)

    def _wake(self) -> None:
        for topic in list(self._topics.values()):
            topic.wake()

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._failed = False  # a new subscription gets a fresh chance
            self._task = asyncio.get_running_loop().create_task(
                self._feed(), name="engined-rpc-watch-feed"
            )

    def _stop(self) -> None:
        """The last stream left: drop the subscription, so nothing outlives the streams."""
        task, self._task = self._task, None
        self._latest = None  # a later stream must start from a fresh first value
        if task is not None:
            task.cancel()

    async def _feed(self) -> None:
        values = None
        try:
            values = self._manager.watch()
            async for health in values:
                self._latest = health
                self._update_topics(health)
        except Exception:
            _log.exception("engined rpc: the health manager's watch() failed")
        finally:
            # watch() is typed as an AsyncIterator but is an async generator: close it
            # now, so its watcher is unsubscribed at once rather than when collected.
            close = getattr(values, "aclose", None)
            if close is not None:
                await close()
        self._failed = True  # watch() never ends by itself: either way it is gone
        self._wake()
