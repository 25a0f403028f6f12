"""The status page's recent events: a bounded ring fed by health and breaker listeners.

The page shows what just happened (a component went UNHEALTHY, a heal ran, a breaker
opened) beside what is, so an operator who opens it after the fact still sees the story.
Only the last :data:`CAPACITY` events are kept: the page is a window, the log lines
(:mod:`engined.daemon._logging`) are the record.

Events are stamped with the wall clock when they are recorded, through an injected
``wall_time_ns`` callable: the manager's and breakers' own instants are monotonic
readings, meaningless to a person. Listeners run in whatever thread caused the event (a
breaker's in its caller's), so the ring takes a lock; and recording never raises into
the manager or a breaker's caller.

Breakers appear in a registry at any time (a gRPC interceptor creates one on its first
call) and the registry has no hook for that, so :meth:`EventRing.follow_breakers`
attaches to those not yet followed; the daemon calls it at start, on every health event
and on every status page or API request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from engined import CircuitBreaker, CircuitBreakerRegistry, HealthEvent, StateChange

__all__ = ["CAPACITY", "EventRing", "PageEvent", "utc_text"]

CAPACITY: Final = 50
"""How many events the ring keeps; older ones are dropped first."""

_log = logging.getLogger("engined.daemon")


def utc_text(ns: int) -> str:
    """``ns`` nanoseconds since the epoch as ISO 8601 UTC with milliseconds and a ``Z``."""
    stamp = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class PageEvent:
    """One recorded event, in the words the page shows.

    Attributes:
        seq: 1 for the first event recorded, then one more for each.
        at_ns: Wall-clock nanoseconds since the epoch when it was recorded.
        source: ``"component"`` or ``"breaker"``.
        name: The component's or breaker's name.
        kind: ``"transition"``, ``"heal_started"``, ``"heal_finished"``,
            ``"heal_exhausted"`` (components) or ``"state_change"`` (breakers).
        from_state: The status or state left (upper case), for transitions.
        to_state: The status or state entered (upper case), for transitions.
        attempt: The heal attempt, for heal events.
        error: Why a heal failed (a type name, ``"timeout"``...), or ``None``.
    """

    seq: int
    at_ns: int
    source: Literal["component", "breaker"]
    name: str
    kind: str
    from_state: str | None = None
    to_state: str | None = None
    attempt: int | None = None
    error: str | None = None

    @property
    def summary(self) -> str:
        """One short line: ``HEALTHY → UNHEALTHY``, ``heal 2 failed: timeout``..."""
        if self.kind in ("transition", "state_change"):
            return f"{self.from_state} → {self.to_state}"
        if self.kind == "heal_started":
            return f"heal {self.attempt} started"
        if self.kind == "heal_finished":
            if self.error is None:
                return f"heal {self.attempt} succeeded"
            return f"heal {self.attempt} failed: {self.error}"
        if self.kind == "heal_exhausted":
            return f"heals exhausted after {self.attempt} attempts; checks go on"
        return self.kind

    def as_json(self) -> dict[str, Any]:
        """The event as ``/api/v1/events`` sends it (docs/daemon.md)."""
        return {
            "seq": self.seq,
            "time": utc_text(self.at_ns),
            "source": self.source,
            "name": self.name,
            "kind": self.kind,
            "from": self.from_state,
            "to": self.to_state,
            "attempt": self.attempt,
            "error": self.error,
            "summary": self.summary,
        }


class EventRing:
    """The last :data:`CAPACITY` health and breaker events, newest last.

    Use the ring itself as the manager's listener (``manager.add_listener(ring)``).

    Args:
        wall_time_ns: Nanoseconds since the epoch, now; the only time the ring reads.
        breakers: The registry whose breakers :meth:`follow_breakers` attaches to.
        capacity: How many events to keep.
    """

    def __init__(
        self,
        wall_time_ns: Callable[[], int],
        *,
        breakers: CircuitBreakerRegistry | None = None,
        capacity: int = CAPACITY,
    ) -> None:
        if capacity < 1:
            msg = f"capacity must be >= 1, got {capacity}"
            raise ValueError(msg)
        self._wall_time_ns = wall_time_ns
        self._registry = breakers
        self._capacity = capacity
        self._lock = threading.Lock()
        self._events: deque[PageEvent] = deque(maxlen=capacity)
        self._seq = 0
        self._followed: dict[str, CircuitBreaker] = {}

    @property
    def capacity(self) -> int:
        """How many events the ring keeps."""
        return self._capacity

    def events(self) -> list[PageEvent]:
        """The events kept, oldest first."""
        with self._lock:
            return list(self._events)

    def as_json(self) -> dict[str, Any]:
        """``/api/v1/events``: ``{"capacity": 50, "events": [...newest first]}``."""
        return {
            "capacity": self._capacity,
            "events": [event.as_json() for event in reversed(self.events())],
        }

    # ------------------------------------------------------------------ recording

    def __call__(self, event: HealthEvent) -> None:
        """Record a health manager event; never raises into the manager.

        It also follows breakers created since the last event (a check may make one).
        """
        try:
            self._add(
                "component",
                event.component,
                event.kind,
                from_state=_upper(event.from_status),
                to_state=_upper(event.to_status),
                attempt=event.attempt,
                error=event.error,
            )
        except Exception:
            _log.exception("the status page could not record %r", event)
        try:
            self.follow_breakers()
        except Exception:
            _log.exception("the status page could not follow the circuit breakers")

    def breaker_changed(self, change: StateChange) -> None:
        """Record a breaker's state change; never raises into the breaker's caller."""
        try:
            self._add(
                "breaker",
                change.name,
                "state_change",
                from_state=_upper(change.from_state),
                to_state=_upper(change.to_state),
            )
        except Exception:
            _log.exception("the status page could not record %r", change)

    def follow_breakers(self) -> None:
        """Listen to every breaker of the registry not yet followed (cheap when none is new).

        A breaker removed from the registry and created anew under its name is followed
        again; the old one keeps its listener, which is harmless.
        """
        if self._registry is None:
            return
        for breaker in self._registry:
            if self._followed.get(breaker.name) is breaker:
                continue
            with self._lock:
                if self._followed.get(breaker.name) is breaker:
                    continue
                self._followed[breaker.name] = breaker
            breaker.add_listener(self.breaker_changed)

    def _add(
        self,
        source: Literal["component", "breaker"],
        name: str,
        kind: str,
        *,
        from_state: str | None = None,
        to_state: str | None = None,
        attempt: int | None = None,
        error: str | None = None,
    ) -> None:
        at_ns = self._wall_time_ns()
        with self._lock:
            self._seq += 1
            event = PageEvent(
                self._seq, at_ns, source, name, kind, from_state, to_state, attempt, error
            )
            self._events.append(event)


def _upper(value: str | None) -> str | None:
    """A status or state enum (a ``StrEnum``) as the page's upper-case word."""
    return None if value is None else str.__str__(value).upper()
