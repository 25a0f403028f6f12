"""A counter that threads may bump without a lock."""

from __future__ import annotations

import itertools
import threading

__all__ = ["AtomicCounter"]


class AtomicCounter:
    """Count events from many threads at the cost of one C call each.

    ``increment`` is ``itertools.count().__next__``: a single call into C, which the GIL
    makes atomic (the standard library's ``threading`` numbers its threads the same way).
    Reading draws a ticket too, so :attr:`value` subtracts the earlier reads; reads are
    serialized by a lock of their own, which the hot path never touches.
    """

    __slots__ = ("_lock", "_reads", "increment")

    def __init__(self) -> None:
        self.increment = itertools.count().__next__
        self._reads = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        """How many times :meth:`increment` has been called."""
        with self._lock:
            drawn = self.increment()
            self._reads += 1
            return drawn - (self._reads - 1)

    def __repr__(self) -> str:
        return f"AtomicCounter({self.value})"
