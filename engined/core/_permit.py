"""Permits: one admitted call's right to run, settled once by whoever holds it.

A permit is an object, not an entry on a per-thread or per-context stack, so it belongs
to itself: two generators that each hold a block across a ``yield`` and are consumed in
turn settle their own permits, and a block that ends in another thread, task or event
loop (``asyncio.to_thread(next, it)``, ``asyncio.wait_for(agen.__anext__(), t)``) settles
the permit it began with. The first settle wins, atomically; later ones do nothing.

A permit dropped unsettled gives its HALF_OPEN probe slot back when it is collected, so a
forgotten permit can never wedge a breaker in HALF_OPEN. Collection may happen at any
moment, even while the breaker holds its lock in the same thread, so ``__del__`` takes no
lock: it hands the permit's phase to the breaker, which reclaims the slot at its next
admission.
"""

from __future__ import annotations

import itertools
from types import TracebackType
from typing import TYPE_CHECKING, Any

from engined.core._classify import FAILURE
from engined.core._guard import NO_RESULT

if TYPE_CHECKING:
    from engined.core._breaker import CircuitBreaker

__all__ = ["Permit", "PermitBlock"]


class Permit:
    """The right to make one call through a circuit breaker, from :meth:`CircuitBreaker.acquire`.

    Settle it exactly once with :meth:`record_success`, :meth:`record_failure`,
    :meth:`record_exception` or :meth:`release`; later settles do nothing. Use it where a
    call cannot be one block: gRPC interceptors, streams, callbacks. A result that arrives
    after the breaker changed state is counted but cannot move the newer state.
    """

    __slots__ = ("_breaker", "_claim", "_phase", "_settled", "_start")

    def __init__(self, breaker: CircuitBreaker, phase: Any, start: float) -> None:
        self._settled = False
        self._breaker = breaker
        self._phase = phase
        self._start = start
        self._claim = itertools.count().__next__  # one atomic C call: 0 for the first taker

    def _take(self) -> bool:
        """Claim the permit for settling; only the first caller gets ``True``."""
        if self._claim():
            return False
        self._settled = True
        return True

    @property
    def settled(self) -> bool:
        """Whether the permit has been settled (or released)."""
        return self._settled

    def record_success(self) -> None:
        """The call succeeded: count a success."""
        if self._take():
            breaker, phase = self._breaker, self._phase
            if breaker._plain and phase.tally is not None:  # the lock-free CLOSED success
                phase.tally()
                breaker._succeeded()
            else:
                breaker._on_result(phase, NO_RESULT, self._start)

    def record_failure(self) -> None:
        """The call failed: count a failure, whatever raised or did not."""
        if self._take():
            self._breaker._settle(self._phase, FAILURE, self._start)

    def record_exception(self, exc: BaseException) -> None:
        """The call raised ``exc``: classify it as the breaker's decorator would.

        A ``BaseException`` that is not an ``Exception`` (cancellation, ``GeneratorExit``)
        is not counted and gives the permit back; ``ignore_exceptions`` count as ignored;
        ``record_exceptions`` as failures; any other exception as a success.
        """
        if self._take():
            self._breaker._on_exception(self._phase, exc, self._start)

    def release(self) -> None:
        """Give the permit back without counting anything: the call never really ran."""
        if self._take():
            self._breaker._give_back(self._phase)

    def __del__(self) -> None:
        if not self._settled:
            self._breaker._dropped.append(self._phase)  # deque.append: atomic, no lock

    def __repr__(self) -> str:
        what = "settled" if self._settled else "unsettled"
        return f"<Permit of circuit breaker {self._breaker.name!r}, {what}>"


class PermitBlock:
    """``with breaker.permit() as permit:``: one fresh permit around one block.

    The block's outcome settles the permit on exit (an exception is classified as by
    :meth:`Permit.record_exception`), unless the block settled it itself. Single use:
    each ``breaker.permit()`` call makes a new block object that owns its permit.
    """

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: Permit | None = None

    def __enter__(self) -> Permit:
        if self._permit is not None:
            msg = "a breaker.permit() block is single-use; call breaker.permit() for each block"
            raise RuntimeError(msg)
        self._permit = self._breaker.acquire()
        return self._permit

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit = self._permit
        assert permit is not None  # __enter__ ran
        if exc is None:
            permit.record_success()
        else:
            permit.record_exception(exc)

    async def __aenter__(self) -> Permit:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
