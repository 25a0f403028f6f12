"""HealthCheckManager: run checks on their schedules, heal what breaks, serve a snapshot.

One scheduler task wakes when the next check is due and starts each due component's tick
as a task of its own, so a hanging check never delays another component. A child's tick
first waits for its parents' ticks of the same round, so parents are checked before
children. Heals run as tasks too, under a global limit, so checks keep their cadence
while a heal runs. Readers (``snapshot``, ``get_system_health``, ``watch``) only ever read
the latest state: no request runs a check.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core import _validate as validate
from engined.core._health_model import (
    ComponentHealth,
    ComponentType,
    HealthCheckConfig,
    HealthCheckResult,
    HealthEvent,
    HealthStatus,
    SystemHealth,
    aggregate,
)
from engined.core._health_run import (
    Busy,
    CheckFn,
    HealFn,
    Runner,
    failed,
    normalize,
    raised_by_callee,
)
from engined.core._health_state import ComponentState
from engined.core._listeners import Listeners

__all__ = ["HealthCheckManager"]

_log = logging.getLogger("engined.health")

C = TypeVar("C", bound=Callable[..., Any])

_JITTER_MAX = 1.0  # first run: a random delay up to min(interval, 1 s) spreads the load
_COALESCE = 0.002  # checks due within 2 ms of each other start on the same wake


@dataclass(eq=False)
class _Component:
    check: CheckFn
    state: ComponentState
    heal: HealFn | None
    next_at: float = 0.0
    due_at: float = 0.0  # when the current round's tick was due (tick lag = start - due_at)
    checking: Busy = field(default_factory=Busy)  # the check really runs (threads outlive limits)
    heal_busy: Busy = field(default_factory=Busy)
    tick: asyncio.Future[Any] | None = None  # the current round's tick (a task or a launch)
    healing: asyncio.Task[None] | None = None
    exhaustion_told: bool = False  # the heal_exhausted event went out for this exhaustion


class HealthCheckManager:
    """Run health checks periodically, apply thresholds, heal, and roll everything up.

    Args:
        clock: Time source for schedules, thresholds and backoff.
        max_concurrent_heals: Heals allowed to run at once across all components.
        max_check_threads: Worker threads for sync checks and heals.
        rng: Random source for the first-run jitter.
    """

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_concurrent_heals: int = 4,
        max_check_threads: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._max_heals = validate.check_int(
            "max_concurrent_heals", max_concurrent_heals, minimum=1
        )
        self._threads = validate.check_int("max_check_threads", max_check_threads, minimum=1)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # guards _components and every ComponentState
        self._components: dict[str, _Component] = {}
        # (due time, tie-breaker, component); entries of unregistered components are
        # dropped when popped, so unregistering never searches the heap.
        self._due: list[tuple[float, int, _Component]] = []
        self._order = itertools.count()
        self._runner: Runner | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._sleeping = self._poked = False
        self._heal_slots: asyncio.Semaphore | None = None
        self._watchers: dict[asyncio.Queue[SystemHealth], tuple[Any, ...]] = {}
        self._listeners: Listeners[HealthEvent] = Listeners("the health manager")

    # ------------------------------------------------------------------ registration

    def register(
        self,
        name: str,
        check: CheckFn,
        *,
        component_type: ComponentType | str = ComponentType.CUSTOM,
        config: HealthCheckConfig | None = None,
        heal: HealFn | None = None,
    ) -> None:
        """Add a component; its check is a no-argument callable, sync or async.

        Raises:
            ValueError: The name is taken, or ``depends_on`` would close a cycle.
        """
        validate.check_name("name", name)
        validate.check_callable("check", check)
        if heal is not None:
            validate.check_callable("heal", heal)
        kind = ComponentType(component_type)
        settings = config if config is not None else HealthCheckConfig()
        with self._lock:
            if name in self._components:
                msg = f"a component named {name!r} is already registered"
                raise ValueError(msg)
            self._refuse_cycle(name, settings.depends_on)
            state = ComponentState(name, kind, settings, has_heal=heal is not None)
            component = _Component(check, state, heal)
            jitter = self._rng.random() * min(settings.interval, _JITTER_MAX)
            component.next_at = self._clock.monotonic() + settings.initial_delay + jitter
            for parent in settings.depends_on:  # share a parent's phase: checked right after it
                other = self._components.get(parent)
                if other is not None and other.state.config.interval == settings.interval:
                    component.next_at = max(component.next_at, other.next_at)
            self._components[name] = component
            self._schedule_at(component, component.next_at)
            for child in self._components.values():  # children registered before their parent
                config = child.state.config
                if name in config.depends_on and config.interval == settings.interval:
                    self._schedule_at(child, max(child.next_at, component.next_at))
        self._poke()

    def _refuse_cycle(self, name: str, parents: tuple[str, ...]) -> None:
        stack, seen = list(parents), set()
        while stack:
            parent = stack.pop()
            if parent == name:
                msg = f"depends_on of {name!r} would close a cycle"
                raise ValueError(msg)
            if parent in seen or parent not in self._components:
                continue
            seen.add(parent)
            stack.extend(self._components[parent].state.config.depends_on)

    def unregister(self, name: str) -> None:
        """Remove a component; its running check or heal is cancelled."""
        with self._lock:
            component = self._components.pop(name, None)
        if component is None:
            raise KeyError(name)
        for task in (component.tick, component.healing):
            if task is not None:
                task.cancel()
        self._publish()

    def check(
        self,
        name: str,
        *,
        component_type: ComponentType | str = ComponentType.CUSTOM,
        **config: Any,
    ) -> Callable[[C], C]:
        """Decorator form of :meth:`register`; keyword arguments are HealthCheckConfig fields."""
        settings = HealthCheckConfig(**config)

        def decorate(fn: C) -> C:
            self.register(name, fn, component_type=component_type, config=settings)
            return fn

        return decorate

    def healer(self, name: str) -> Callable[[C], C]:
        """Decorator that attaches a heal to the already registered component ``name``."""

        def decorate(fn: C) -> C:
            validate.check_callable("heal", fn)
            with self._lock:
                component = self._get(name)
                component.heal = fn
                component.state.has_heal = True
            return fn

        return decorate

    def add_listener(self, listener: Callable[[HealthEvent], object]) -> None:
        """Call ``listener(event)`` for transitions and heal attempts; one that raises is logged."""
        self._listeners.add(listener)

    def remove_listener(self, listener: Callable[[HealthEvent], object]) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def _get(self, name: str) -> _Component:
        try:
            return self._components[name]
        except KeyError:
            msg = f"no component named {name!r}"
            raise KeyError(msg) from None

    # ------------------------------------------------------------------ lifecycle

    def _runtime(self) -> tuple[Runner, asyncio.Semaphore]:
        """The worker pool and the heal limit, made on first use (start or run_check)."""
        if self._runner is None or self._heal_slots is None:
            self._runner = Runner(self._threads)
            self._heal_slots = asyncio.Semaphore(self._max_heals)
        return self._runner, self._heal_slots

    async def start(self) -> None:
        """Start the scheduler on the running loop."""
        if self._scheduler is not None:
            return
        self._runtime()
        self._scheduler = asyncio.create_task(self._schedule(), name="engined-health-scheduler")

    async def stop(self) -> None:
        """Stop promptly: cancel the scheduler, ticks and heals without waiting on hung ones."""
        scheduler, self._scheduler = self._scheduler, None
        self._poked = False
        tasks: list[asyncio.Future[Any]] = [] if scheduler is None else [scheduler]
        with self._lock:
            for component in self._components.values():
                tasks.extend(t for t in (component.tick, component.healing) if t is not None)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self._runner is not None:
            self._runner.shutdown()
            self._runner = self._heal_slots = None

    async def __aenter__(self) -> HealthCheckManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _poke(self) -> None:
        """Wake a sleeping scheduler: the schedule changed under it."""
        scheduler = self._scheduler
        if scheduler is not None and self._sleeping and not self._poked:
            self._poked = True
            scheduler.cancel()

    async def _schedule(self) -> None:
        while True:
            now = self._clock.monotonic()
            with self._lock:
                due = self._pop_due(now + _COALESCE)
                upcoming = self._due[0][0] if self._due else None
            for component in due:  # parents' ticks exist before their children start
                if component.state.config.depends_on:
                    component.tick = asyncio.create_task(self._tick(component))
                else:  # the common case, without a task of its own: callbacks record it
                    component.tick = self._launch(component)
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

    def _schedule_at(self, component: _Component, when: float) -> None:
        """Set ``component``'s next run; an older heap entry for it goes stale."""
        component.next_at = when
        heapq.heappush(self._due, (when, next(self._order), component))

    def _pop_due(self, now: float) -> list[_Component]:
        """Take every component due by ``now`` off the heap and put it back for its next round."""
        due: list[_Component] = []
        while self._due and self._due[0][0] <= now:  # ``now`` includes the coalescing slack
            when, _, component = heapq.heappop(self._due)
            if self._components.get(component.state.name) is not component:
                continue  # unregistered
            if when != component.next_at:
                continue  # stale: rescheduled since
            due.append(component)
            component.due_at = component.next_at
            interval = component.state.config.interval
            self._schedule_at(component, max(component.next_at + interval, now - _COALESCE))
        return due

    async def _tick(self, component: _Component) -> None:
        parents = [self._components.get(p) for p in component.state.config.depends_on]
        pending = [p.tick for p in parents if p is not None and p.tick is not None]
        pending = [t for t in pending if not t.done() and t is not asyncio.current_task()]
        if pending:  # a parent's check of this round (or a late one) comes first
            await asyncio.wait(pending)
        self._conclude(component, await self._run_check(component))

    # ------------------------------------------------------------------ checks and heals

    def _launch(self, component: _Component) -> asyncio.Future[Any] | None:
        """Start a scheduled check; its outcome is recorded by a callback."""
        state, (runner, _) = component.state, self._runtime()
        started = self._clock.monotonic()
        if component.checking.running:
            self._conclude(component, self._stuck(state, started))
            return None
        outcome = runner.launch(
            component.check, (), state.config.effective_timeout, component.checking
        )

        def record(done: asyncio.Future[tuple[bool, Any]]) -> None:
            if done.cancelled():
                return  # stop() or unregister()
            error = done.exception()
            finished, raw = (True, None) if error is not None else done.result()
            self._conclude(component, self._result(state, started, finished, raw, error))

        outcome.add_done_callback(record)
        return outcome

    def _conclude(self, component: _Component, result: HealthCheckResult) -> None:
        heal = self._record(component, result)
        if heal is not None:
            component.healing = asyncio.ensure_future(heal)

    async def _run_check(self, component: _Component) -> HealthCheckResult:
        state, (runner, _) = component.state, self._runtime()
        started = self._clock.monotonic()
        if component.checking.running:
            return self._stuck(state, started)
        try:
            finished, raw = await runner.run(
                component.check, (), state.config.effective_timeout, component.checking
            )
        except (Exception, asyncio.CancelledError) as exc:
            if not isinstance(exc, Exception) and not raised_by_callee(exc):
                raise
            return self._result(state, started, True, None, exc)
        return self._result(state, started, finished, raw, None)

    def _stuck(self, state: ComponentState, started: float) -> HealthCheckResult:
        return failed(state.name, state.component_type, "stuck", duration=0.0, timestamp=started)

    def _result(
        self,
        state: ComponentState,
        started: float,
        finished: bool,
        raw: object,
        error: BaseException | None,
    ) -> HealthCheckResult:
        """The result of one run: its value, its exception's type, or a timeout."""
        now = self._clock.monotonic()
        if error is not None or not finished:
            reason = type(error).__name__ if error is not None else "timeout"
            return failed(
                state.name, state.component_type, reason, duration=now - started, timestamp=now
            )
        return normalize(
            raw,
            name=state.name,
            component_type=state.component_type,
            duration=now - started,
            timestamp=now,
            degraded_latency=state.config.degraded_latency,
        )

    def _record(self, component: _Component, result: HealthCheckResult) -> Any:
        """Apply ``result``; return a heal coroutine to run if one is due."""
        now = self._clock.monotonic()
        with self._lock:
            if self._components.get(component.state.name) is not component:
                return None  # unregistered meanwhile
            previous = component.state.record(result, now)
            state = component.state
            due = (
                component.heal is not None
                and not component.heal_busy.running  # a timed-out heal's thread may still run
                and (component.healing is None or component.healing.done())
                and component.state.heal_due(
                    now, parent_unhealthy=self._parent_unhealthy(component)
                )
            )
            if due:
                state.heal_started()
            exhausted = (
                state.has_heal
                and state.status is HealthStatus.UNHEALTHY
                and not state.healing
                and state.heal_attempts >= state.config.heal_max_attempts
            )
            tell_exhausted = exhausted and not component.exhaustion_told
            component.exhaustion_told = exhausted or (
                component.exhaustion_told and state.heal_attempts >= state.config.heal_max_attempts
            )
        if tell_exhausted:
            self._listeners.emit(
                HealthEvent("heal_exhausted", state.name, now, attempt=state.heal_attempts)
            )
        if previous is not None:
            current = component.state.status
            _log.info("%s: %s -> %s", component.state.name, previous, current)
            self._listeners.emit(
                HealthEvent("transition", component.state.name, now, previous, current)
            )
        self._publish()
        return self._heal(component, result) if due else None

    async def _heal(self, component: _Component, trigger: HealthCheckResult) -> None:
        assert component.heal is not None  # _record checked it
        state, (runner, slots) = component.state, self._runtime()
        error: str | None = None
        async with slots:
            attempt = state.heal_attempts
            self._listeners.emit(
                HealthEvent("heal_started", state.name, self._clock.monotonic(), attempt=attempt)
            )
            self._publish()
            try:
                finished, outcome = await runner.run(
                    component.heal, (trigger,), state.config.heal_timeout, component.heal_busy
                )
                if not finished:
                    error = "timeout"
                elif outcome is False:
                    error = "returned False"
            except (Exception, asyncio.CancelledError) as exc:
                if not isinstance(exc, Exception) and not raised_by_callee(exc):
                    with self._lock:  # stopped or unregistered: the attempt is over
                        state.heal_finished(self._clock.monotonic(), "cancelled")
                    raise
                error = type(exc).__name__
                _log.warning("heal of %s failed: %s", state.name, error)
        now = self._clock.monotonic()
        with self._lock:
            state.heal_finished(now, error)
        self._listeners.emit(
            HealthEvent("heal_finished", state.name, now, attempt=attempt, error=error)
        )
        self._publish()

    def _parent_unhealthy(self, component: _Component) -> bool:
        for parent in component.state.config.depends_on:
            other = self._components.get(parent)
            if other is not None and other.state.status is HealthStatus.UNHEALTHY:
                return True
        return False

    # ------------------------------------------------------------------ on demand

    async def run_check(self, name: str) -> ComponentHealth:
        """Run ``name``'s check now, apply thresholds, and await a heal that became due."""
        healing = await self._check_now(name)
        if healing is not None:
            await asyncio.wait({healing})  # its cancellation (unregister) is not ours
        return self.component(name)

    async def _check_now(self, name: str) -> asyncio.Future[None] | None:
        """Run one check now; return the heal it started, if any."""
        with self._lock:
            component = self._get(name)
        heal = self._record(component, await self._run_check(component))
        if heal is None:
            return None
        component.healing = asyncio.ensure_future(heal)
        return component.healing

    async def run_all(self) -> SystemHealth:
        """Run every check now, parents before children, then await the heals that became due.

        Components of one dependency level are checked together and heals run side by side,
        up to ``max_concurrent_heals``.
        """
        with self._lock:
            levels = self._levels()
        heals: list[asyncio.Future[None]] = []
        for level in levels:
            outcomes = await asyncio.gather(
                *(self._check_now(name) for name in level), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, asyncio.Future):
                    heals.append(outcome)
                elif isinstance(outcome, BaseException) and not isinstance(outcome, KeyError):
                    raise outcome  # KeyError: unregistered meanwhile
        if heals:
            await asyncio.wait(heals)
        return self.snapshot()

    def _levels(self) -> list[list[str]]:
        """Component names grouped by dependency depth: roots first."""
        depth: dict[str, int] = {}
        for name in self._topological():
            parents = [p for p in self._components[name].state.config.depends_on if p in depth]
            depth[name] = 1 + max((depth[p] for p in parents), default=-1)
        levels: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
        for name, level in depth.items():
            levels[level].append(name)
        return levels

    def _topological(self) -> list[str]:
        order: list[str] = []
        placed: set[str] = set()

        def place(name: str) -> None:
            if name in placed or name not in self._components:
                return
            placed.add(name)
            for parent in self._components[name].state.config.depends_on:
                place(parent)
            order.append(name)

        for name in sorted(self._components):
            place(name)
        return order

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> SystemHealth:
        """The latest state of every component and the roll-up; never runs a check."""
        now = self._clock.monotonic()
        with self._lock:
            components = {
                name: c.state.snapshot(now, parent_unhealthy=self._parent_unhealthy(c))
                for name, c in self._components.items()
            }
        return SystemHealth(aggregate(components.values()), components, now)

    async def get_system_health(self) -> SystemHealth:
        """The same as :meth:`snapshot`, for async callers."""
        return self.snapshot()

    def component(self, name: str) -> ComponentHealth:
        """The latest state of one component."""
        now = self._clock.monotonic()
        with self._lock:
            component = self._get(name)
            return component.state.snapshot(now, parent_unhealthy=self._parent_unhealthy(component))

    def reset_heal(self, name: str) -> None:
        """Re-arm healing of ``name``: attempts back to zero, the next one due at once."""
        with self._lock:
            self._get(name).state.reset_heal()
        self._publish()

    async def watch(self) -> AsyncIterator[SystemHealth]:
        """Yield the current health, then a new value whenever a status or heal state changes.

        A slow reader skips intermediate values and always gets the latest.
        """
        queue: asyncio.Queue[SystemHealth] = asyncio.Queue(maxsize=1)
        health = self.snapshot()
        self._watchers[queue] = _signature(health)
        try:
            yield health
            while True:
                yield await queue.get()
        finally:
            self._watchers.pop(queue, None)

    def _publish(self) -> None:
        if not self._watchers:
            return
        health = self.snapshot()
        signature = _signature(health)
        for queue, seen in list(self._watchers.items()):
            if seen == signature:
                continue
            self._watchers[queue] = signature
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(health)


def _signature(health: SystemHealth) -> tuple[Any, ...]:
    """What a watcher cares about: the roll-up and every component's status and heal state."""
    return (
        health.overall_status,
        *((n, c.status, c.heal_state) for n, c in sorted(health.components.items())),
    )
