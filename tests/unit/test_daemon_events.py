"""The status page's event ring: bounded, ordered, stamped with injected wall time, safe."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from engined import (
    CircuitBreakerRegistry,
    HealthCheckManager,
    HealthEvent,
    HealthStatus,
)
from engined.daemon._events import CAPACITY, EventRing, utc_text
from engined.testing import FakeClock

T0 = 1_796_289_137_123_000_000  # 2026-12-03T09:12:17.123Z


def ticking(start: int = T0, step: int = 1_000_000_000) -> Callable[[], int]:
    """A wall clock that moves one ``step`` per reading."""
    now = [start - step]

    def read() -> int:
        now[0] += step
        return now[0]

    return read


def transition(name: str, old: HealthStatus, new: HealthStatus) -> HealthEvent:
    return HealthEvent("transition", name, 0.0, old, new)


def test_the_ring_keeps_the_last_50_oldest_dropped_first() -> None:
    """Sixty events leave the last fifty, numbered 11..60, oldest first in events()."""
    ring = EventRing(ticking())
    for i in range(60):
        ring(HealthEvent("heal_started", f"c{i}", 0.0, attempt=1))
    kept = ring.events()
    assert CAPACITY == 50
    assert len(kept) == 50
    assert [e.seq for e in kept] == list(range(11, 61))
    assert [e.name for e in kept][:2] == ["c10", "c11"]


def test_the_json_lists_the_newest_first_with_the_capacity() -> None:
    """/api/v1/events carries the capacity and the events newest first."""
    ring = EventRing(ticking(), capacity=3)
    for name in "abcd":
        ring(transition(name, HealthStatus.HEALTHY, HealthStatus.UNHEALTHY))
    document = ring.as_json()
    assert document["capacity"] == 3
    assert [e["name"] for e in document["events"]] == ["d", "c", "b"]
    assert [e["seq"] for e in document["events"]] == [4, 3, 2]


def test_events_are_stamped_with_the_injected_wall_time_in_utc() -> None:
    """The time is the injected clock's reading when recorded, ISO 8601 UTC in milliseconds."""
    ring = EventRing(ticking())
    ring(transition("db", HealthStatus.UNKNOWN, HealthStatus.HEALTHY))
    ring(transition("db", HealthStatus.HEALTHY, HealthStatus.UNHEALTHY))
    times = [e["time"] for e in ring.as_json()["events"]]
    assert times == ["2026-12-03T09:12:18.123Z", "2026-12-03T09:12:17.123Z"]
    assert utc_text(T0) == "2026-12-03T09:12:17.123Z"


def test_each_kind_of_health_event_reads_as_one_line() -> None:
    """Transitions show the statuses in upper case; heal events their attempt and error."""
    ring = EventRing(ticking())
    ring(transition("db", HealthStatus.HEALTHY, HealthStatus.UNHEALTHY))
    ring(HealthEvent("heal_started", "db", 0.0, attempt=2))
    ring(HealthEvent("heal_finished", "db", 0.0, attempt=2, error="timeout"))
    ring(HealthEvent("heal_finished", "db", 0.0, attempt=3))
    ring(HealthEvent("heal_exhausted", "db", 0.0, attempt=3))
    events = list(reversed(ring.as_json()["events"]))
    assert events[0] == {
        "seq": 1,
        "time": "2026-12-03T09:12:17.123Z",
        "source": "component",
        "name": "db",
        "kind": "transition",
        "from": "HEALTHY",
        "to": "UNHEALTHY",
        "attempt": None,
        "error": None,
        "summary": "HEALTHY → UNHEALTHY",
    }
    assert [e["summary"] for e in events[1:]] == [
        "heal 2 started",
        "heal 2 failed: timeout",
        "heal 3 succeeded",
        "heals exhausted after 3 attempts; checks go on",
    ]


async def test_a_manager_feeds_the_ring_as_a_listener(clock: FakeClock) -> None:
    """Registered as a listener, the ring hears a component's transitions in order."""
    results = iter([True, False, True])
    manager = HealthCheckManager(clock=clock)
    manager.register("api", lambda: next(results))
    ring = EventRing(ticking())
    manager.add_listener(ring)
    for _ in range(3):
        await manager.run_check("api")
    assert [(e.from_state, e.to_state) for e in ring.events()] == [
        ("UNKNOWN", "HEALTHY"),
        ("HEALTHY", "UNHEALTHY"),
        ("UNHEALTHY", "HEALTHY"),
    ]


def test_breaker_changes_are_recorded_once_per_change(clock: FakeClock) -> None:
    """A followed breaker's change is one event however often follow_breakers runs."""
    registry = CircuitBreakerRegistry()
    first = registry.get_or_create("rpc:a", clock=clock)
    ring = EventRing(ticking(), breakers=registry)
    ring.follow_breakers()
    ring.follow_breakers()
    first.force_open()
    later = registry.get_or_create("rpc:b", clock=clock)
    later.force_open()  # not followed yet: missed
    ring.follow_breakers()
    later.reset()
    events = ring.as_json()["events"]
    assert [(e["source"], e["name"], e["summary"]) for e in reversed(events)] == [
        ("breaker", "rpc:a", "CLOSED → FORCED_OPEN"),
        ("breaker", "rpc:b", "FORCED_OPEN → CLOSED"),
    ]
    assert all(e["kind"] == "state_change" for e in events)


def test_a_breaker_made_anew_under_a_name_is_followed_again(clock: FakeClock) -> None:
    """A breaker removed and created again under its name gets the listener too."""
    registry = CircuitBreakerRegistry()
    registry.get_or_create("b", clock=clock)
    ring = EventRing(ticking(), breakers=registry)
    ring.follow_breakers()
    registry.remove("b")
    fresh = registry.get_or_create("b", clock=clock)
    ring.follow_breakers()
    fresh.disable()
    assert [e.summary for e in ring.events()] == ["CLOSED → DISABLED"]


def test_a_health_event_reaching_the_ring_follows_new_breakers(clock: FakeClock) -> None:
    """Breakers a check created get followed on the next health event."""
    registry = CircuitBreakerRegistry()
    ring = EventRing(ticking(), breakers=registry)
    breaker = registry.get_or_create("made-by-a-check", clock=clock)
    ring(transition("c", HealthStatus.UNKNOWN, HealthStatus.HEALTHY))
    breaker.force_open()
    assert [e.name for e in ring.events()] == ["c", "made-by-a-check"]


def test_a_failure_to_record_never_reaches_the_manager_or_the_breaker(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """A wall clock that raises is logged; the listener calls return normally."""

    def broken() -> int:
        raise RuntimeError("clock gone")

    registry = CircuitBreakerRegistry()
    breaker = registry.get_or_create("b", clock=clock)
    ring = EventRing(broken, breakers=registry)
    with caplog.at_level(logging.ERROR, logger="engined.daemon"):
        ring(transition("c", HealthStatus.UNKNOWN, HealthStatus.HEALTHY))
        breaker.force_open()
    assert ring.events() == []
    assert caplog.text.count("the status page could not record") == 2


def test_a_capacity_below_one_is_refused() -> None:
    """A ring that could hold nothing is a mistake, refused at construction."""
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        EventRing(ticking(), capacity=0)
