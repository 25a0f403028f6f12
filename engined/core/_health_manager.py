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
import contextlib
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
    HealthStatus,
    SystemHealth,
    aggregate,
)
from engined.core._health_run import CheckFn, HealFn, Runner, failed, normalize
from engined.core._health_state import ComponentState

__all__ = ["HealthCheckManager"]

_log = logging.getLogger("engined.health")

C = TypeVar("C", bound=Callable[..., Any])

_JITTER = 0.1  # first run: up to 10 % of the interval (at most 1 s) later, spread out


@dataclass(eq=False)
class _Component:
    check: CheckFn
    state: ComponentState
    heal: HealFn | None
    next_at: float = 0.0
    in_flight: asyncio.Future[Any] | None = None  # the check run, until it really ends
    tick: asyncio.Task[None] | None = None  # the current round's tick
    healing: asyncio.Task[None] | None = None
    waiting: list[asyncio.Future[None]] = field(default_factory=list)


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
        self._runner: Runner | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._heal_slots: asyncio.Semaphore | None = None
        self._watchers: set[asyncio.Queue[SystemHealth]] = set()
        self._published: tuple[Any, ...] = ()

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
            jitter = self._rng.random() * min(settings.interval * _JITTER, 1.0)
            component.next_at = self._clock.monotonic() + settings.initial_delay + jitter
            self._components[name] = component
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
        self._wake = asyncio.Event()
        self._scheduler = asyncio.create_task(self._schedule(), name="engined-health-scheduler")

    async def stop(self) -> None:
        """Stop promptly: cancel the scheduler, ticks and heals without waiting on hung ones."""
        scheduler, self._scheduler = self._scheduler, None
        tasks = [] if scheduler is None else [scheduler]
        with self._lock:
            for component in self._components.values():
                tasks.extend(t for t in (component.tick, component.healing) if t is not None)
                if component.in_flight is not None:
                    component.in_flight.cancel()
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
        if self._wake is not None:
            self._wake.set()

    async def _schedule(self) -> None:
        assert self._wake is not None  # set by start()
        while True:
            now = self._clock.monotonic()
            with self._lock:
                due = [c for c in self._components.values() if c.next_at <= now]
                for component in due:
                    interval = component.state.config.interval
                    component.next_at = max(component.next_at + interval, now)
                upcoming = min((c.next_at for c in self._components.values()), default=None)
            ticks = {c.state.name: c for c in due}
            for component in due:
                component.tick = asyncio.create_task(self._tick(component, ticks))
            self._wake.clear()
            delay = None if upcoming is None else max(upcoming - self._clock.monotonic(), 0.0)
            sleeper = asyncio.ensure_future(
                self._clock.sleep_async(delay) if delay is not None else self._wake.wait()
            )
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()

    async def _tick(self, component: _Component, round_: dict[str, _Component]) -> None:
        parents = [round_[p].tick for p in component.state.config.depends_on if p in round_]
        pending = [t for t in parents if t is not None and t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending)
        result = await self._run_check(component)
        heal = self._record(component, result)
        if heal is not None:
            component.healing = asyncio.create_task(heal)

    # ------------------------------------------------------------------ checks and heals

    async def _run_check(self, component: _Component) -> HealthCheckResult:
        state, (runner, _) = component.state, self._runtime()
        started = self._clock.monotonic()
        if component.in_flight is not None and not component.in_flight.done():
            return failed(
                state.name, state.component_type, "stuck", duration=0.0, timestamp=started
            )
        run = runner.start(component.check)
        component.in_flight = run
        try:
            finished, raw = await runner.wait(run, state.config.effective_timeout)
        except Exception as exc:
            now = self._clock.monotonic()
            error = type(exc).__name__
            return failed(
                state.name, state.component_type, error, duration=now - started, timestamp=now
            )
        now = self._clock.monotonic()
        if not finished:
            return failed(
                state.name, state.component_type, "timeout", duration=now - started, timestamp=now
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
            due = (
                component.heal is not None
                and (component.healing is None or component.healing.done())
                and component.state.heal_due(
                    now, parent_unhealthy=self._parent_unhealthy(component)
                )
            )
            if due:
                component.state.heal_started()
        if previous is not None:
            _log.info("%s: %s -> %s", component.state.name, previous, component.state.status)
        self._publish()
        return self._heal(component, result) if due else None

    async def _heal(self, component: _Component, trigger: HealthCheckResult) -> None:
        assert component.heal is not None  # _record checked it
        state, (runner, slots) = component.state, self._runtime()
        error: str | None = None
        async with slots:
            self._publish()
            try:
                finished, outcome = await runner.wait(
                    runner.start(component.heal, trigger), state.config.heal_timeout
                )
                if not finished:
                    error = "timeout"
                elif outcome is False:
                    error = "returned False"
            except Exception as exc:
                error = type(exc).__name__
                _log.warning("heal of %s failed: %s", state.name, error)
        with self._lock:
            state.heal_finished(self._clock.monotonic(), error)
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
        with self._lock:
            component = self._get(name)
        heal = self._record(component, await self._run_check(component))
        if heal is not None:
            component.healing = asyncio.ensure_future(heal)
            await component.healing
        return self.component(name)

    async def run_all(self) -> SystemHealth:
        """Run every check now, parents before children, awaiting due heals."""
        with self._lock:
            names = self._topological()
        for name in names:
            with contextlib.suppress(KeyError):  # unregistered meanwhile
                await self.run_check(name)
        return self.snapshot()

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
        self._watchers.add(queue)
        try:
            yield self.snapshot()
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)

    def _publish(self) -> None:
        if not self._watchers:
            return
        health = self.snapshot()
        signature = (
            health.overall_status,
            *((n, c.status, c.heal_state) for n, c in sorted(health.components.items())),
        )
        if signature == self._published:
            return
        self._published = signature
        for queue in list(self._watchers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(health)
