"""Sliding windows of call outcomes, O(1) per call, for the breaker's rate rules.

Both windows answer one question: of the calls recorded lately, how many were counted,
how many failed and how many were slow. The caller holds the breaker's lock.

``CountWindow`` keeps the last ``size`` calls. Instead of a ring of every outcome it keeps
the sequence numbers of the failed and of the slow calls only, so a success, the common
case, is one integer increment.

``TimeWindow`` keeps the last ``duration`` seconds in ``BUCKETS`` buckets (Polly's
design): a call ages out between 0.9 and 1.0 times ``duration`` after it was recorded.
Buckets are advanced lazily when a call or a reader arrives, so no timer runs.
"""

from __future__ import annotations

from collections import deque

__all__ = ["BUCKETS", "CountWindow", "TimeWindow"]

BUCKETS = 10


class CountWindow:
    """The last ``size`` recorded calls.

    ``seq`` counts the calls recorded since the last clear; recording a success is
    ``seq += 1`` and nothing more. Failed and slow calls also
    leave their sequence number in a queue; numbers that fell out of the window are
    dropped lazily, when a failure is added or the counts are read, so each is dropped
    once and the queues never hold more than ``size`` live entries.
    """

    __slots__ = ("_failures", "_size", "_slow", "seq")

    def __init__(self, size: int) -> None:
        self._size = size
        self.seq = 0
        self._failures: deque[int] = deque()
        self._slow: deque[int] = deque()

    @property
    def size(self) -> int:
        """How many calls the window holds."""
        return self._size

    def add(self, failed: bool, slow: bool, now: float) -> None:
        """Record one call; ``now`` is unused (the signature matches :class:`TimeWindow`)."""
        seq = self.seq = self.seq + 1
        horizon = seq - self._size
        if failed:
            failures = self._failures
            failures.append(seq)
            while failures[0] <= horizon:
                failures.popleft()
        if slow:
            slows = self._slow
            slows.append(seq)
            while slows[0] <= horizon:
                slows.popleft()

    def _expire(self, queue: deque[int]) -> None:
        horizon = self.seq - self._size
        while queue and queue[0] <= horizon:
            queue.popleft()

    def counts(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow)`` in the window."""
        self._expire(self._failures)
        self._expire(self._slow)
        return min(self.seq, self._size), len(self._failures), len(self._slow)

    def clear(self) -> None:
        """Forget every call."""
        self.seq = 0
        self._failures.clear()
        self._slow.clear()


class TimeWindow:
    """The calls recorded in the last ``duration`` seconds."""

    __slots__ = ("_calls", "_failures", "_head", "_slow", "_totals", "_width", "duration")

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self._width = duration / BUCKETS
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS
        self._slow = [0] * BUCKETS
        self._totals = [0, 0, 0]
        self._head: int | None = None

    def _advance(self, now: float) -> int:
        """Age out the buckets older than the window and return the bucket for ``now``."""
        tick = int(now // self._width)
        head = self._head
        if head is None:
            self._head = tick
        elif tick > head:
            totals = self._totals
            for step in range(1, min(tick - head, BUCKETS) + 1):
                i = (head + step) % BUCKETS
                totals[0] -= self._calls[i]
                totals[1] -= self._failures[i]
                totals[2] -= self._slow[i]
                self._calls[i] = self._failures[i] = self._slow[i] = 0
            self._head = tick
        return tick % BUCKETS

    def add(self, failed: bool, slow: bool, now: float) -> None:
        """Record one call finished at ``now``."""
        i = self._advance(now)
        totals = self._totals
        self._calls[i] += 1
        totals[0] += 1
        if failed:
            self._failures[i] += 1
            totals[1] += 1
        if slow:
            self._slow[i] += 1
            totals[2] += 1

    def counts(self, now: float) -> tuple[int, int, int]:
        """Return ``(calls, failures, slow)`` recorded in the window ending at ``now``."""
        self._advance(now)
        calls, failures, slow = self._totals
        return calls, failures, slow

    def clear(self) -> None:
        """Forget every call."""
        for bucket in (self._calls, self._failures, self._slow):
            bucket[:] = [0] * BUCKETS
        self._totals[:] = [0, 0, 0]
        self._head = None
