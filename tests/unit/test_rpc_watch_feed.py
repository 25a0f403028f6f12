"""WatchFeed topics: one selection per value for all a topic's streams, woken only on change.

Health ``Watch`` streams read one service's serving status each; the feed selects it once
per health value per service and wakes only the streams whose value changed, so a busy
server with hundreds of streams does not resume every one of them on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from engined import HealthCheckManager, HealthStatus, SystemHealth
from engined._clock import SYSTEM_CLOCK
from engined.rpc._watch_feed import FeedFailed, WatchFeed
from engined.testing import FakeClock

S = HealthStatus


class Switch:
    """A check returning whatever status the test sets."""

    def __init__(self) -> None:
        self.status = S.HEALTHY

    def __call__(self) -> HealthStatus:
        return self.status


class Counted:
    """A selector of one component's status that counts its calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def __call__(self, health: SystemHealth) -> str:
        self.calls += 1
        component = health.components.get(self.name)
        return "absent" if component is None else component.status.value


async def _settle() -> None:
    for _ in range(30):
        await SYSTEM_CLOCK.sleep_async(0)


class Reader:
    """Reads one topic in a task of its own, recording every value."""

    def __init__(self, feed: WatchFeed, key: str, select: Callable[[SystemHealth], str]) -> None:
        self.seen: list[str] = []
        self.task = asyncio.create_task(self._read(feed, key, select))

    async def _read(self, feed: WatchFeed, key: str, select: Callable[[SystemHealth], str]) -> None:
        async with contextlib.aclosing(feed.topic(key, select)) as values:
            async for value in values:
                self.seen.append(value)

    async def cancel(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def setup() -> AsyncIterator[tuple[HealthCheckManager, dict[str, Switch], WatchFeed]]:
    """A manager on a fake clock with components a and b, both checked once, and its feed."""
    manager = HealthCheckManager(clock=FakeClock())
    checks = {"a": Switch(), "b": Switch()}
    for name, check in checks.items():
        manager.register(name, check, failure_threshold=1)
    await manager.run_all()
    yield manager, checks, WatchFeed(manager)
    await manager.stop()


async def test_a_topic_selects_once_per_value_for_all_its_streams(
    setup: tuple[HealthCheckManager, dict[str, Switch], WatchFeed],
) -> None:
    """50 streams of topic a: each change of a runs the selector once and reaches all 50."""
    manager, checks, feed = setup
    select = Counted("a")
    readers = [Reader(feed, "a", select) for _ in range(50)]
    await _settle()
    assert {tuple(r.seen) for r in readers} == {("healthy",)}
    calls = select.calls
    checks["a"].status = S.UNHEALTHY
    await manager.run_check("a")
    await _settle()
    assert {tuple(r.seen) for r in readers} == {("healthy", "unhealthy")}
    assert select.calls == calls + 1
    for reader in readers:
        await reader.cancel()
    assert feed.streams == 0
    assert not feed.feeding


async def test_a_change_elsewhere_never_wakes_a_topic(
    setup: tuple[HealthCheckManager, dict[str, Switch], WatchFeed],
) -> None:
    """Flipping b ten times sends a's streams nothing and leaves their waits untouched."""
    manager, checks, feed = setup
    a = Reader(feed, "a", Counted("a"))
    b = Reader(feed, "b", Counted("b"))
    await _settle()
    waiting = feed._topics["a"].changed
    for flip in range(10):
        checks["b"].status = S.UNHEALTHY if flip % 2 == 0 else S.HEALTHY
        await manager.run_check("b")
        await _settle()
    assert a.seen == ["healthy"]
    assert b.seen == ["healthy", *["unhealthy", "healthy"] * 5]
    assert feed._topics["a"].changed is waiting
    assert not waiting.is_set()
    await a.cancel()
    await b.cancel()


async def test_a_late_stream_gets_the_topics_current_value_at_once(
    setup: tuple[HealthCheckManager, dict[str, Switch], WatchFeed],
) -> None:
    """A stream joining a topic after a change starts from the value now, not the first."""
    manager, checks, feed = setup
    first = Reader(feed, "a", Counted("a"))
    await _settle()
    checks["a"].status = S.DEGRADED
    await manager.run_check("a")
    await _settle()
    late = Reader(feed, "a", Counted("a"))
    await _settle()
    assert (first.seen, late.seen) == (["healthy", "degraded"], ["degraded"])
    await first.cancel()
    await late.cancel()


async def test_close_ends_topic_streams_after_their_latest_value(
    setup: tuple[HealthCheckManager, dict[str, Switch], WatchFeed],
) -> None:
    """close() ends every topic stream; a later one gets the snapshot's value, then ends."""
    _, _, feed = setup
    reader = Reader(feed, "a", Counted("a"))
    await _settle()
    feed.close()
    await asyncio.wait_for(reader.task, 1)
    after = Reader(feed, "b", Counted("b"))
    await asyncio.wait_for(after.task, 1)
    assert (reader.seen, after.seen) == (["healthy"], ["healthy"])


async def test_poke_reevaluates_topics_with_the_same_health(
    setup: tuple[HealthCheckManager, dict[str, Switch], WatchFeed],
) -> None:
    """After poke() a selector whose answer changed without a health change is heard."""
    _, _, feed = setup
    verdict = {"now": "serving"}
    reader = Reader(feed, "a", lambda _: verdict["now"])
    await _settle()
    verdict["now"] = "not serving"
    feed.poke()
    await _settle()
    assert reader.seen == ["serving", "not serving"]
    await reader.cancel()


async def test_a_failed_watch_ends_topic_streams_with_feed_failed() -> None:
    """When the manager's watch() raises, a topic stream raises FeedFailed."""

    class Broken(HealthCheckManager):
        def watch(self) -> AsyncIterator[SystemHealth]:
            raise RuntimeError("gone")

    manager = Broken(clock=FakeClock())
    feed = WatchFeed(manager)
    values = feed.topic("a", Counted("a"))
    with pytest.raises(FeedFailed):
        await asyncio.wait_for(values.__anext__(), 1)
    await values.aclose()
    await _settle()
    assert feed.streams == 0
    assert not feed.feeding
