"""One stay of a circuit breaker in one state, and the lock-free books of a plain CLOSED stay.

Every state change makes a fresh ``Phase``; a call is admitted into one and reports back
to it, so a result that arrives after the state moved on (a late result) can be told
apart and never moves the newer state. HALF_OPEN keeps its probe accounting here.

A *plain* breaker (the consecutive-failure rule only: no rate rule, no timing, no
``result_is_failure``) keeps the books of its CLOSED phase without the breaker's lock,
because that is where a service spends its life and where every call pays:

- ``tally`` is the ``__next__`` of an ``itertools.count``: each finished call, success or
  failure, draws one ticket in one atomic C call, so tickets number the calls in the
  order they ended. A success does nothing else.
- A failure also appends its ticket to ``fails`` (``deque.append``, atomic) and extends
  the failure run: when its ticket is ``seen`` (the one after the previous failure's),
  no call ended in between, so the run goes on; otherwise a success did, and a new run
  starts. Two failures racing can only split a run (tripping a call late), never join
  runs across a success, so the breaker never opens early.
- The window (the last ``window_size`` tickets) is read from ``fails`` when someone asks
  for the metrics; ``fails`` is trimmed to the window now and then, so it stays bounded.

Readers peek at the ticket counter without drawing a ticket, so reading never looks like
a call to the run logic.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

from engined.core._breaker_types import CircuitState

__all__ = ["Phase", "peek"]


class Phase:
    """One stay in one state (see the module docstring for the plain CLOSED books)."""

    __slots__ = ("counter", "fails", "probe_successes", "probes", "run", "seen", "state", "tally")

    counter: itertools.count[int] | None
    tally: Callable[[], int] | None  # None unless plain CLOSED books
    fails: deque[int] | None

    def __init__(self, state: CircuitState, *, plain: bool) -> None:
        self.state = state
        self.probes = 0
        self.probe_successes = 0
        self.run = 0  # failures in a row, ending at ticket ``seen - 1``
        self.seen = 0
        if plain and state is CircuitState.CLOSED:
            self.counter = counter = itertools.count()
            self.tally = counter.__next__
            self.fails = deque()
        else:
            self.counter = self.tally = self.fails = None

    def window(self, size: int) -> tuple[int, int]:
        """Return ``(calls, failures)`` among the last ``size`` calls of plain books."""
        assert self.counter is not None
        assert self.fails is not None
        recent = tuple(self.fails)  # one C call, so no append can interleave with it
        drawn = peek(self.counter)  # after the copy: every ticket in it is below this
        horizon = drawn - size
        return min(drawn, size), sum(1 for ticket in recent if ticket >= horizon)

    def consecutive_failures(self) -> int:
        """The failure run of plain books, if the last call to end was a failure."""
        assert self.counter is not None
        return self.run if self.seen == peek(self.counter) else 0

    def trim(self, size: int, latest: int) -> None:
        """Drop failure tickets older than the window ending at ticket ``latest``.

        The caller holds the breaker's lock, so only one trimmer runs; appends may race
        with it, and a ticket appended out of order only stops the trim early.
        """
        assert self.fails is not None
        fails, horizon = self.fails, latest + 1 - size
        while fails and fails[0] < horizon:
            fails.popleft()


def peek(counter: itertools.count[int]) -> int:
    """The next ticket ``counter`` would give, without drawing it (``repr`` is ``count(n)``)."""
    return int(repr(counter)[6:-1])
