"""Cumulative attempt counts of named retries, for metrics read at scrape time.

``@retry(name="db", ...)`` counts into the counters of ``"db"``, shared by every function
decorated with that name. The counters are :class:`~engined.core._counter.AtomicCounter`
objects, bumped without a lock (one C call each), created once at decoration, never per
call. An unnamed retry has no counters and pays nothing: its code path is unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from engined.core._counter import AtomicCounter

__all__ = ["RetryCounters", "RetryStats", "counters_for", "retry_stats"]


@dataclass(frozen=True, slots=True)
class RetryStats:
    """What the retries called ``name`` have done since the process started.

    Attributes:
        name: The retry's name, as given to ``retry(name=...)``.
        calls: Calls of decorated functions (first attempts).
        attempts: Attempts in all, first attempts included; ``attempts - calls`` retries.
    """

    name: str
    calls: int
    attempts: int

    @property
    def retries(self) -> int:
        """Attempts beyond the first of each call."""
        return self.attempts - self.calls


class RetryCounters:
    """The live counters of one name; ``attempt`` and ``retried`` are lock-free C calls."""

    __slots__ = ("_attempts", "_retries", "attempt", "name", "retried")

    def __init__(self, name: str) -> None:
        self.name = name
        self._attempts = AtomicCounter()
        self._retries = AtomicCounter()
        self.attempt = self._attempts.increment  # every attempt, the first included
        self.retried = self._retries.increment  # every attempt after the first

    def stats(self) -> RetryStats:
        """A snapshot; retries are read before attempts, so ``calls`` is never negative."""
        retries = self._retries.value
        attempts = self._attempts.value
        return RetryStats(self.name, attempts - retries, attempts)


_LOCK = threading.Lock()
_BY_NAME: dict[str, RetryCounters] = {}


def counters_for(name: str) -> RetryCounters:
    """Return the counters of ``name``, creating them on first use (at decoration)."""
    with _LOCK:
        counters = _BY_NAME.get(name)
        if counters is None:
            counters = _BY_NAME[name] = RetryCounters(name)
        return counters


def retry_stats() -> Mapping[str, RetryStats]:
    """Every named retry's counts, by name, sorted by name."""
    with _LOCK:
        named = sorted(_BY_NAME.items())
    return {name: counters.stats() for name, counters in named}
