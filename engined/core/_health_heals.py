"""Heal coordination: one heal per component at a time, a global limit, nothing left HEALING.

The manager decides a heal is due when it records a result: the attempt is counted and
the component shows HEALING from then on. The run then waits for one of
``max_concurrent_heals`` slots. The limiter is a :class:`~engined.core.bulkhead.Bulkhead`:
its waiters queue first come, first served, each on a future of its own event loop, so
it works when the manager is driven from successive loops (an ``asyncio.Semaphore`` binds
to the first loop that waits on it and then fails on the next).

Every way a run ends settles the state, so no component stays HEALING without a heal
running:

- cancelled before it got a slot (``stop()``, ``unregister()``, a loop shutting down), or
  no worker thread for a sync heal: it never started, so its attempt is given back and
  the next one is due as it was;
- ended, failed, timed out, or cancelled once started: a finished attempt, whose error
  (``"cancelled"`` for the last) starts the backoff.

A run changes the state only while it is still the component's current run
(``Component.healing``): ``stop()`` settles runs it could not wait for, and a run that
ends later must not undo that.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from engined._clock import Clock
from engined.core._health_component import Component
from engined.core._health_model import HealthCheckResult, HealthEvent
from engined.core._health_run import Outcome, Runner
from engined.core._health_threads import Budget
from engined.core._listeners import Listeners
from engined.core.bulkhead import Bulkhead

__all__ = ["Healer"]

_log = logging.getLogger("engined.health")


class Healer:
    """Runs the heals the manager found due, under the global limit.

    Args:
        clock: The manager's clock, for backoff and event times.
        lock: The manager's lock, which guards every component's state.
        runner: Runs the heal callables.
        threads: The worker-thread budget of sync heals.
        listeners: The manager's listeners, told heal_started and heal_finished.
        notify: Called after a component's heal state changed, to publish it.
        max_concurrent: Heals allowed to run at once.
    """

    __slots__ = ("_clock", "_listeners", "_lock", "_notify", "_runner", "_slots", "_threads")

    def __init__(
        self,
        *,
        clock: Clock,
        lock: threading.Lock,
        runner: Runner,
        threads: Budget,
        listeners: Listeners[HealthEvent],
        notify: Callable[[Component], None],
        max_concurrent: int,
    ) -> None:
        self._clock = clock
        self._lock = lock
        self._runner = runner
        self._threads = threads
        self._listeners = listeners
        self._notify = notify
        self._slots = Bulkhead("engined-health-heals", max_concurrent=max_concurrent, max_wait=None)

    @property
    def running(self) -> int:
        """Heals holding a slot now."""
        return self._slots.active

    def start(self, component: Component, trigger: HealthCheckResult) -> asyncio.Future[None]:
        """Run the heal the manager just found due (the attempt is already counted)."""
        run = asyncio.ensure_future(self._run(component, trigger))
        component.healing = run
        return run

    def settle(self, component: Component, error: str) -> bool:
        """End ``component``'s heal run now, without waiting for it; the lock is held.

        Returns:
            Whether there was one to end.
        """
        if not component.state.healing:
            return False
        component.healing = None
        component.state.heal_finished(self._clock.monotonic(), error)
        return True

    async def _run(self, component: Component, trigger: HealthCheckResult) -> None:
        run = asyncio.current_task()
        state = component.state
        try:
            await self._slots._admit_async()
        except BaseException:  # cancelled while queued: the heal never started
            self._end(component, run, None, started=False)
            raise
        try:
            heal = component.heal
            launched = None
            if heal is not None:  # None: detached meanwhile (never in practice)
                launched = self._runner.launch(
                    heal, (trigger,), state.config.heal_timeout, component.heal_busy, self._threads
                )
            if launched is None or (launched.done() and launched.result().kind == "no_thread"):
                self._end(component, run, None, started=False)
                return
            attempt = state.heal_attempts
            now = self._clock.monotonic()
            self._listeners.emit(HealthEvent("heal_started", state.name, now, attempt=attempt))
            try:
                outcome = await launched
            except asyncio.CancelledError:
                self._end(component, run, "cancelled", started=True, attempt=attempt)
                raise
            error = _error(outcome)
            if error is not None:
                _log.warning("heal of %s failed: %s", state.name, error)
            self._end(component, run, error, started=True, attempt=attempt)
        finally:
            self._slots._release_slot()

    def _end(
        self,
        component: Component,
        run: object,
        error: str | None,
        *,
        started: bool,
        attempt: int | None = None,
    ) -> None:
        state = component.state
        now = self._clock.monotonic()
        with self._lock:
            if component.healing is not run:
                return  # settled by stop() already
            component.healing = None
            if started:
                state.heal_finished(now, error)
            else:
                state.heal_abandoned()
        if started:
            self._listeners.emit(
                HealthEvent("heal_finished", state.name, now, attempt=attempt, error=error)
            )
        self._notify(component)


def _error(outcome: Outcome) -> str | None:
    """A heal succeeds when it returns anything but ``False`` without raising."""
    if outcome.kind == "timeout":
        return "timeout"
    if outcome.kind == "raised":
        return str(outcome.value)
    if outcome.kind == "value" and outcome.value is False:
        return "returned False"
    return None
