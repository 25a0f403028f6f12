"""HealthCheckManager: register components, record their results, serve the latest state.

The manager owns the components, the one lock that guards their state, and the record
path every result goes through (thresholds, then whether a heal is due). The rest is
done by parts that can each be read alone:

- ``_health_scheduler``: when checks are due, and the task that starts them on time;
- ``_health_checks``: one check run (never two at once), ending as a result;
- ``_health_run`` and ``_health_threads``: running one check or heal within its limit,
  sync ones in worker threads that grow past stuck ones up to a cap;
- ``_health_result``: the one place recorded results are built;
- ``_health_heals``: heal slots, and settling every heal run however it ends;
- ``_health_watch``: coalesced publication to ``watch()`` readers;
- ``_health_graph``: ``depends_on`` (cycles refused, parents before children);
- ``_health_state``: one component's thresholds and heal bookkeeping, pure logic;
  ``_health_component`` holds it with the component's callables and running handles.

Readers (``snapshot``, ``get_system_health``, ``watch``) only ever read the latest state:
no request runs a check. Nothing the manager holds is tied to one event loop, so it may
be driven from successive loops (``asyncio.run(m.run_all())`` twice).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core import _validate as validate
from engined.core._health_checks import Checks
from engined.core._health_component import Component, alive, cancel
from engined.core._health_graph import Dependencies
from engined.core._health_heals import Healer
from engined.core._health_model import (
    ComponentHealth,
    ComponentType,
    HealthCheckConfig,
    HealthCheckResult,
    HealthEvent,
    HealthStatus,
    SystemHealth,
    aggregate,
    parse_component_type,
    settings_of,
)
from engined.core._health_run import CheckFn, HealFn, Runner
from engined.core._health_scheduler import Scheduler
from engined.core._health_state import ComponentState
from engined.core._health_threads import Budget, WorkerPool
from engined.core._health_watch import Publisher, Seen
from engined.core._listeners import Listeners

__all__ = ["HealthCheckManager"]

_log = logging.getLogger("engined.health")

C = TypeVar("C", bound=Callable[..., Any])

DEFAULT_CHECK_THREADS = 64


class HealthCheckManager:
    """Run health checks periodically, apply thresholds, heal, and roll everything up.

    Args:
        clock: Time source for schedules, thresholds and backoff.
        max_concurrent_heals: Heals allowed to run at once across all components.
        max_check_threads: Most worker threads sync checks may hold at once; sync heals
            have a budget of the same size of their own. Threads are made as needed, so
            hung checks never starve other checks or heals until the cap is hit; then a
            check that finds no thread is UNKNOWN with error ``"no worker thread"`` and
            a WARNING names this setting.
        rng: Random source for the first-run jitter.

    Raises:
        TypeError: A parameter has the wrong type; the message names it.
        ValueError: A parameter is out of range; the message names it.
    """

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_concurrent_heals: int = 4,
        max_check_threads: int = DEFAULT_CHECK_THREADS,
        rng: random.Random | None = None,
    ) -> None:
        self._clock: Clock = validate.check_clock("clock", clock)
        heals = validate.check_int("max_concurrent_heals", max_concurrent_heals, minimum=1)
        threads = validate.check_int("max_check_threads", max_check_threads, minimum=1)
        if rng is not None and not callable(getattr(rng, "random", None)):
            msg = f"rng must be a random.Random (or have random()), got {type(rng).__name__}"
            raise TypeError(msg)
        self._lock = threading.Lock()  # guards _components, the graph, the heap, every state
        self._components: dict[str, Component] = {}
        self._overall: HealthStatus | None = None  # the roll-up, until a status changes
        self._graph = Dependencies()
        self._runner = Runner(WorkerPool())
        check_threads = Budget(threads, parameter="max_check_threads", what="sync check")
        self._checks = Checks(clock=self._clock, runner=self._runner, threads=check_threads)
        self._listeners: Listeners[HealthEvent] = Listeners("the health manager")
        self._publisher = Publisher(self.snapshot)
        self._scheduler = Scheduler(
            self,
            clock=self._clock,
            rng=rng or random.Random(),
            lock=self._lock,
            components=self._components,
            graph=self._graph,
        )
        self._healer = Healer(
            clock=self._clock,
            lock=self._lock,
            runner=self._runner,
            threads=Budget(threads, parameter="max_check_threads", what="sync heal"),
            listeners=self._listeners,
            notify=self._notify,
            max_concurrent=heals,
        )

    # ------------------------------------------------------------------ registration

    def register(
        self,
        name: str,
        check: CheckFn,
        *,
        component_type: ComponentType | str = ComponentType.CUSTOM,
        config: HealthCheckConfig | None = None,
        heal: HealFn | None = None,
        **config_keywords: Any,
    ) -> None:
        """Add a component; its check is a no-argument callable, sync or async.

        Settings come as a ``config`` object or as HealthCheckConfig keywords, not both.

        Raises:
            TypeError: A wrong type (``config`` a dict, ``check`` not callable...), or
                both ``config`` and config keywords.
            ValueError: A bad value (naming it), the name is taken, or ``depends_on``
                would close a cycle.
        """
        validate.check_name("name", name)
        validate.check_callable("check", check)
        if heal is not None:
            validate.check_callable("heal", heal)
        kind = parse_component_type("component_type", component_type)
        settings = settings_of(config, config_keywords)
        with self._lock:
            if name in self._components:
                msg = f"a component named {name!r} is already registered"
                raise ValueError(msg)
            self._graph.refuse_cycle(name, settings.depends_on)
            state = ComponentState(name, kind, settings, has_heal=heal is not None)
            component = Component(check, state, heal)
            self._components[name] = component
            self._graph.add(name, settings.depends_on)
            self._scheduler.place(component)
            self._overall = None
        self._scheduler.poke()
        self._publisher.changed()

    def unregister(self, name: str) -> None:
        """Remove a component; its running check or heal is cancelled."""
        with self._lock:
            component = self._components.pop(name, None)
            if component is None:
                raise KeyError(name)
            self._graph.remove(name)
            self._scheduler.forget()
            self._overall = None
        for future in (component.tick, component.healing):
            cancel(future)
        self._publisher.changed()

    def check(
        self,
        name: str,
        *,
        component_type: ComponentType | str = ComponentType.CUSTOM,
        **config: Any,
    ) -> Callable[[C], C]:
        """Decorator form of :meth:`register`; keyword arguments are HealthCheckConfig fields.

        Every argument is checked here, so a bad one fails at this call, not at decoration.
        """
        validate.check_name("name", name)
        kind = parse_component_type("component_type", component_type)
        settings = HealthCheckConfig(**config)

        def decorate(fn: C) -> C:
            self.register(name, fn, component_type=kind, config=settings)
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
            self._notify(component)
            return fn

        return decorate

    def add_listener(self, listener: Callable[[HealthEvent], object]) -> None:
        """Call ``listener(event)`` for transitions and heal attempts; one that raises is logged."""
        self._listeners.add(listener)

    def remove_listener(self, listener: Callable[[HealthEvent], object]) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def _get(self, name: str) -> Component:
        try:
            return self._components[name]
        except KeyError:
            msg = f"no component named {name!r}"
            raise KeyError(msg) from None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the scheduler on the running loop."""
        self._scheduler.start()

    async def stop(self) -> None:
        """Stop promptly: cancel the scheduler, ticks and heals without waiting on hung ones.

        Waits at most 1 s for what it cancelled; heal runs still not ended then are
        settled as cancelled, so no component is left HEALING. Threads of hung sync
        checks or heals are left to finish and then end.
        """
        futures: list[asyncio.Future[Any] | None] = [self._scheduler.detach()]
        with self._lock:
            for component in self._components.values():
                futures += (component.tick, component.healing)
        cancelled = [f for f in futures if f is not None and cancel(f)]
        if cancelled:
            await asyncio.wait(cancelled, timeout=1.0)
        with self._lock:
            settled = [c for c in self._components.values() if self._healer.settle(c, "cancelled")]
        self._runner.close_idle()
        for component in settled:
            self._notify(component)

    async def __aenter__(self) -> HealthCheckManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ checks

    def _launch(self, component: Component) -> asyncio.Future[Any] | None:
        """Start a scheduled check; a callback records its outcome."""
        return self._checks.launch(component, self._conclude)

    async def _check_once(self, component: Component) -> HealthCheckResult:
        return await self._checks.run(component)

    def _conclude(self, component: Component, result: HealthCheckResult) -> None:
        if self._record(component, result):
            self._healer.start(component, result)

    def _record(self, component: Component, result: HealthCheckResult) -> bool:
        """Apply ``result``; return whether a heal became due (its attempt is counted)."""
        now = self._clock.monotonic()
        state = component.state
        with self._lock:
            if self._components.get(state.name) is not component:
                return False  # unregistered meanwhile
            if state.healing and not alive(component.healing):
                self._healer.settle(component, "cancelled")  # its loop closed under it
            previous = state.record(result, now)
            if previous is not None:
                self._overall = None
            due = (
                component.heal is not None
                and not component.heal_busy.running  # a timed-out heal's thread may still run
                and state.heal_due(now, parent_unhealthy=self._parent_unhealthy(component))
            )
            if due:
                state.heal_started()
            out_of_attempts = state.heal_attempts >= state.config.heal_max_attempts
            exhausted = (
                state.has_heal
                and state.status is HealthStatus.UNHEALTHY
                and not state.healing
                and out_of_attempts
            )
            tell_exhausted = exhausted and not component.exhaustion_told
            component.exhaustion_told = exhausted or (component.exhaustion_told and out_of_attempts)
            current = state.status
        if tell_exhausted:
            self._listeners.emit(
                HealthEvent("heal_exhausted", state.name, now, attempt=state.heal_attempts)
            )
        if previous is not None:
            _log.info("%s: %s -> %s", state.name, previous, current)
            self._listeners.emit(HealthEvent("transition", state.name, now, previous, current))
        self._notify(component)
        return due

    def _parent_unhealthy(self, component: Component) -> bool:
        for parent in component.state.config.depends_on:
            other = self._components.get(parent)
            if other is not None and other.state.status is HealthStatus.UNHEALTHY:
                return True
        return False

    def _notify(self, component: Component) -> None:
        """Tell watchers what they now see of ``component``.

        A parent's status change can change its children's heal state (SUPPRESSED); it
        is itself visible, so the snapshot it publishes carries the children too.
        """
        if not self._publisher.active:
            return
        now = self._clock.monotonic()
        with self._lock:
            if self._components.get(component.name) is not component:
                return
            state = component.state
            unhealthy = self._parent_unhealthy(component)
            seen: Seen = (state.status, state.heal_state(now, parent_unhealthy=unhealthy))
        self._publisher.touch(component.name, seen)

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
        result = await self._check_once(component)
        if not self._record(component, result):
            return None
        return self._healer.start(component, result)

    async def run_all(self) -> SystemHealth:
        """Run every check now, parents before children, then await the heals that became due.

        Components of one dependency level are checked together and heals run side by side,
        up to ``max_concurrent_heals``.
        """
        with self._lock:
            levels = self._graph.levels()
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

    def overall_status(self) -> HealthStatus:
        """``snapshot().overall_status`` without building a snapshot.

        The roll-up is kept until a status changes, so a probe asking for the whole system
        (grpc.health.v1 Check of ``""``, ``/readyz``) costs the same with 1,000 components
        as with one.
        """
        overall = self._overall
        if overall is None:
            with self._lock:
                overall = self._overall = aggregate(c.state for c in self._components.values())
        return overall

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
            component = self._get(name)
            component.state.reset_heal()
        self._notify(component)

    def watch(self) -> AsyncIterator[SystemHealth]:
        """Yield the current health, then a new value whenever a status or heal state changes.

        Changes are coalesced: one value per loop iteration at most, whatever the number
        of results recorded in it. A slow reader skips intermediate values and always
        gets the latest. A reader may run on any event loop.
        """
        return self._publisher.watch()
