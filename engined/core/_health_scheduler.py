"""When each component's check is due, and the one task that starts checks on time.

One scheduler task wakes when the next check is due and starts each due component's
tick on its own, so a hanging check never delays another component. A component without
parents is launched without a task of its own (a callback records its outcome): that is
the common case, and it keeps a round of a thousand checks cheap. A child's tick is a task
that first waits for its parents' ticks of the same round, so parents are checked before
children.

Due times sit in a heap with lazy deletion: rescheduling or unregistering a component
leaves its old entry behind, and the scheduler drops stale entries when it pops them. A
manager driven only by ``run_check``/``run_all`` never pops, so the heap is rebuilt from
the live components whenever stale entries outnumber them: register/unregister cycles
cannot grow it without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from engined._clock import Clock
from engined.core._health_component import Component
from engined.core._health_graph import Dependencies
from engined.core._health_model import HealthCheckResult

__all__ = ["COALESCE", "Scheduler"]

JITTER_MAX = 1.0  # first run: a random delay up to min(interval, 1 s) spreads the load
COALESCE = 0.002  # checks due within 2 ms of each other start on the same wake
_SLACK = 64  # stale heap entries tolerated beyond the live ones before a rebuild


class Host(Protocol):
    """What the scheduler needs from the manager to run one component's check."""

    def _launch(self, component: Component) -> asyncio.Future[Any] | None:
        """Start a check whose outcome a callback records; return its future, if any."""
        ...

    async def _check_once(self, component: Component) -> HealthCheckResult:
        """Run a check and return its result, not yet recorded."""
        ...

    def _conclude(self, component: Component, result: HealthCheckResult) -> None:
        """Record a result and start a heal that became due."""
        ...


class Scheduler:
    """The due-time heap and the task that starts due checks.

    Args:
        host: The manager.
        clock: Its clock.
        rng: Random source for the first-run jitter.
        lock: The manager's lock, which guards ``components`` and the heap.
        components: The manager's registered components by name.
        graph: Their dependencies.
    """

    def __init__(
        self,
        host: Host,
        *,
        clock: Clock,
        rng: random.Random,
        lock: threading.Lock,
        components: Mapping[str, Component],
        graph: Dependencies,
    ) -> None:
        self._host = host
        self._clock = clock
        self._rng = rng
        self._lock = lock
        self._components = components
        self._graph = graph
        # (due time, tie-breaker, component); an entry is stale when the component was
        # unregistered or rescheduled since (its next_at differs).
        self._heap: list[tuple[float, int, Component]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._sleeping = self._poked = False

    @property
    def heap_size(self) -> int:
        """Entries in the due heap, stale ones included (for tests and benchmarks)."""
        return len(self._heap)

    # ------------------------------------------------------------------ the heap

    def place(self, component: Component) -> None:
        """Schedule a new component's first check; the lock is held.

        The first run comes after ``initial_delay`` plus a jitter. A child whose parent has
        the same interval starts on its parent's phase, whichever registered first.
        """
        config = component.state.config
        jitter = self._rng.random() * min(config.interval, JITTER_MAX)
        first = self._clock.monotonic() + config.initial_delay + jitter
        for parent in config.depends_on:
            other = self._components.get(parent)
            if other is not None and other.state.config.interval == config.interval:
                first = max(first, other.next_at)
        self._push(component, first)
        for name in self._graph.children(component.name):  # registered before their parent
            child = self._components.get(name)
            if child is not None and child.state.config.interval == config.interval:
                self._push(child, max(child.next_at, component.next_at))

    def forget(self) -> None:
        """A component was unregistered: rebuild the heap if stale entries now dominate."""
        if len(self._heap) > 2 * len(self._components) + _SLACK:
            self._heap = [(c.next_at, next(self._order), c) for c in self._components.values()]
            heapq.heapify(self._heap)

    def _push(self, component: Component, when: float) -> None:
        """Set ``component``'s next run; an older heap entry for it goes stale."""
        component.next_at = when
        heapq.heappush(self._heap, (when, next(self._order), component))
        self.forget()

    def _pop_due(self, now: float) -> list[Component]:
        """Take every component due by ``now`` off the heap and put it back for its next round."""
        due: list[Component] = []
        while self._heap and self._heap[0][0] <= now:  # ``now`` includes the coalescing slack
            when, _, component = heapq.heappop(self._heap)
            if self._components.get(component.name) is not component:
                continue  # unregistered
            if when != component.next_at:
                continue  # stale: rescheduled since
            due.append(component)
            component.due_at = component.next_at
            interval = component.state.config.interval
            self._push(component, max(component.next_at + interval, now - COALESCE))
        return due

    # ------------------------------------------------------------------ the task

    def start(self) -> None:
        """Start the scheduler task on the running loop, unless it already runs there.

        Raises:
            RuntimeError: It runs on another event loop that is still open.
        """
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and not task.get_loop().is_closed():
            if task.get_loop() is loop:
                return
            msg = "the health manager is already started on another event loop"
            raise RuntimeError(msg)
        self._task = loop.create_task(self._run(), name="engined-health-scheduler")

    def detach(self) -> asyncio.Task[None] | None:
        """Forget the scheduler task and return it for the caller to cancel."""
        task, self._task = self._task, None
        self._poked = False
        return task

    def poke(self) -> None:
        """Wake a sleeping scheduler: the schedule changed under it (from any thread)."""
        task = self._task
        if task is None or task.done():
            return
        loop = task.get_loop()
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:  # called outside any loop, e.g. from another thread
            here = False
        if not here:
            with contextlib.suppress(RuntimeError):  # its loop closed: nothing to wake
                loop.call_soon_threadsafe(self.poke)
            return
        if self._sleeping and not self._poked:
            self._poked = True
            task.cancel()

    async def _run(self) -> None:
        while True:
            now = self._clock.monotonic()
            with self._lock:
                due = self._pop_due(now + COALESCE)
                upcoming = self._heap[0][0] if self._heap else None
            for component in due:  # parents' ticks exist before their children start
                if component.state.config.depends_on:
                    component.tick = asyncio.create_task(self._tick(component))
                else:  # the common case, without a task of its own: a callback records it
                    component.tick = self._host._launch(component)
            self._sleeping = True
            try:
                if upcoming is None:
                    await asyncio.get_running_loop().create_future()  # until poked
                else:
                    await self._clock.sleep_async(max(upcoming - self._clock.monotonic(), 0.0))
            except asyncio.CancelledError:
                if not self._poked:
                    raise  # stop()
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            finally:
                self._sleeping = self._poked = False

    async def _tick(self, component: Component) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        parents = [self._components.get(p) for p in component.state.config.depends_on]
        pending = [
            tick
            for tick in (p.tick for p in parents if p is not None)
            if tick is not None and not tick.done() and tick is not me and tick.get_loop() is loop
        ]
        if pending:  # a parent's check of this round (or a late one) comes first
            await asyncio.wait(pending)
        self._host._conclude(component, await self._host._check_once(component))
