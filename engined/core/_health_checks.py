"""Running one component's check: never twice at once, and always ending as a result.

Shared by the scheduler (which launches a check and lets a callback record it, so the
common case needs no task) and by ``run_check``/``run_all`` (which await it). A check
whose previous run is still going, in its thread or as a task that ignored cancellation,
is not started again: the run gives a result with ``error="stuck"`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engined._clock import Clock
from engined.core._health_component import Component
from engined.core._health_model import HealthCheckResult
from engined.core._health_result import failed, result_of
from engined.core._health_run import Outcome, Runner
from engined.core._health_threads import Budget

__all__ = ["Checks"]


class Checks:
    """Starts checks and turns their outcomes into results (not yet recorded).

    Args:
        clock: The manager's clock: durations and timestamps.
        runner: Runs the check callables.
        threads: The worker-thread budget of sync checks.
    """

    __slots__ = ("_clock", "_runner", "_threads")

    def __init__(self, *, clock: Clock, runner: Runner, threads: Budget) -> None:
        self._clock = clock
        self._runner = runner
        self._threads = threads

    def launch(
        self,
        component: Component,
        record: Callable[[Component, HealthCheckResult], None],
    ) -> asyncio.Future[Outcome] | None:
        """Start a check; ``record(component, result)`` is called with its result.

        Returns:
            The future of its outcome (cancel it to abandon the check), or None when the
            result was recorded at once (stuck).
        """
        started, outcome = self._begin(component)
        if outcome is None:
            record(component, self._stuck(component, started))
            return None

        def settle(done: asyncio.Future[Outcome]) -> None:
            if not done.cancelled():  # else stop() or unregister()
                record(component, self._result(component, started, done.result()))

        outcome.add_done_callback(settle)
        return outcome

    async def run(self, component: Component) -> HealthCheckResult:
        """Run a check and return its result."""
        started, outcome = self._begin(component)
        if outcome is None:
            return self._stuck(component, started)
        return self._result(component, started, await outcome)

    def _begin(self, component: Component) -> tuple[float, asyncio.Future[Outcome] | None]:
        started = self._clock.monotonic()
        if component.checking.running:
            return started, None
        timeout = component.state.config.effective_timeout
        outcome = self._runner.launch(
            component.check, (), timeout, component.checking, self._threads
        )
        return started, outcome

    def _stuck(self, component: Component, started: float) -> HealthCheckResult:
        state = component.state
        return failed(state.name, state.component_type, "stuck", duration=0.0, timestamp=started)

    def _result(self, component: Component, started: float, outcome: Outcome) -> HealthCheckResult:
        now = self._clock.monotonic()
        state = component.state
        return result_of(
            outcome,
            name=state.name,
            component_type=state.component_type,
            duration=now - started,
            timestamp=now,
            degraded_latency=state.config.degraded_latency,
        )
