"""HealthCheckManager driven on demand (DESIGN.md §5): run_check / run_all on a FakeClock.

Nothing here starts the scheduler or sleeps: ``run_check`` runs one check now, applies the
thresholds and awaits a heal that became due; ``run_all`` does that for every component,
parents first. Checks and heals come in both kinds (``"sync"`` runs in a worker thread,
``"async"`` as a task) wherever the behaviour is shared. ``T#`` names the fault-injection
scenarios of shared/research/health-autoheal.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import pytest

from engined import (
    CircuitBreaker,
    ComponentType,
    HealState,
    HealthCheckConfig,
    HealthCheckManager,
    HealthCheckResult,
    HealthEvent,
    HealthStatus,
    SystemHealth,
    breaker_health_check,
)
from engined._clock import SYSTEM_CLOCK
from engined.testing import FakeClock

S = HealthStatus
H = HealState
Kind = Literal["sync", "async"]
KINDS: tuple[Kind, ...] = ("sync", "async")
SECRET = "password=hunter2"

# initial=1, multiplier=2, max=5: the gaps after attempts 1..5 are 1, 2, 4, 5, 5.
BACKOFF = {"heal_backoff_initial": 1.0, "heal_backoff_multiplier": 2.0, "heal_backoff_max": 5.0}


# ---------------------------------------------------------------------------------- helpers


def _check(kind: Kind, body: Callable[[], object]) -> Callable[[], Any]:
    """A no-argument check of ``kind`` that returns (or raises) whatever ``body()`` does."""
    if kind == "sync":

        def sync_check() -> object:
            return body()

        return sync_check

    async def async_check() -> object:
        return body()

    return async_check


def _healer(kind: Kind, body: Callable[[HealthCheckResult], object]) -> Callable[..., Any]:
    """A heal of ``kind`` that returns (or raises) whatever ``body(trigger)`` does."""
    if kind == "sync":

        def sync_heal(trigger: HealthCheckResult) -> object:
            return body(trigger)

        return sync_heal

    async def async_heal(trigger: HealthCheckResult) -> object:
        return body(trigger)

    return async_heal


class Verdict:
    """What a check returns, switchable by the test; an exception class is raised afresh."""

    def __init__(self, value: object = True) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if isinstance(self.value, type) and issubclass(self.value, BaseException):
            raise self.value(SECRET)
        return self.value


class HealLog:
    """A heal body that records its triggers and the clock, then returns or raises ``outcome``."""

    def __init__(self, clock: FakeClock, outcome: object = None) -> None:
        self.clock = clock
        self.outcome = outcome
        self.triggers: list[HealthCheckResult] = []
        self.times: list[float] = []

    @property
    def calls(self) -> int:
        return len(self.triggers)

    def __call__(self, trigger: HealthCheckResult) -> object:
        self.triggers.append(trigger)
        self.times.append(self.clock.monotonic())
        if isinstance(self.outcome, type) and issubclass(self.outcome, BaseException):
            raise self.outcome(SECRET)
        return self.outcome


class Reader:
    """Collects every value ``manager.watch()`` yields, in a task of its own."""

    def __init__(self, manager: HealthCheckManager) -> None:
        self.seen: list[SystemHealth] = []
        self.task = asyncio.create_task(self._read(manager))

    async def _read(self, manager: HealthCheckManager) -> None:
        async with contextlib.aclosing(manager.watch()) as values:  # type: ignore[type-var]
            async for health in values:
                self.seen.append(health)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _settle(rounds: int = 20) -> None:
    """Let every ready task run; no time passes."""
    for _ in range(rounds):
        await SYSTEM_CLOCK.sleep_async(0)


def _at(clock: FakeClock, when: float) -> None:
    """Move the fake clock forward to the absolute time ``when``."""
    clock.advance(when - clock.monotonic())


def _cfg(**fields: Any) -> HealthCheckConfig:
    return HealthCheckConfig(**fields)


@pytest.fixture
async def make_manager(clock: FakeClock) -> AsyncIterator[Callable[..., HealthCheckManager]]:
    """Build managers on the test's fake clock; every one is stopped at teardown."""
    made: list[HealthCheckManager] = []

    def make(**options: Any) -> HealthCheckManager:
        options.setdefault("clock", clock)
        manager = HealthCheckManager(**options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.stop()


@pytest.fixture
def manager(make_manager: Callable[..., HealthCheckManager]) -> HealthCheckManager:
    """A manager on the fake clock with the default limits."""
    return make_manager()


# ---------------------------------------------------------------------------------- return forms


@pytest.mark.parametrize("kind", KINDS)
async def test_returned_result_keeps_its_verdict_and_gets_the_registered_identity(
    kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A returned HealthCheckResult keeps status, message and details; name and type are ours."""
    returned = HealthCheckResult(
        "someone-else", ComponentType.SERVICE, S.DEGRADED, message="replica lag", details={"lag": 3}
    )
    manager.register("db", _check(kind, lambda: returned), component_type=ComponentType.DATABASE)
    _at(clock, 7.0)
    health = await manager.run_check("db")
    result = health.last_result
    assert result is not None
    assert (result.component, result.component_type) == ("db", ComponentType.DATABASE)
    assert (result.status, result.message, dict(result.details)) == (
        S.DEGRADED,
        "replica lag",
        {"lag": 3},
    )
    assert (result.timestamp, result.duration, result.error) == (7.0, 0.0, None)
    assert (health.name, health.component_type, health.status) == (
        "db",
        ComponentType.DATABASE,
        S.DEGRADED,
    )


@pytest.mark.parametrize(
    ("returned", "result_status", "effective"),
    [
        (S.HEALTHY, S.HEALTHY, S.HEALTHY),
        (S.DEGRADED, S.DEGRADED, S.DEGRADED),
        (S.UNHEALTHY, S.UNHEALTHY, S.UNHEALTHY),
        (S.UNKNOWN, S.UNKNOWN, S.UNKNOWN),
        (True, S.HEALTHY, S.HEALTHY),
        (False, S.UNHEALTHY, S.UNHEALTHY),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_status_and_bool_returns_become_results(
    kind: Kind,
    returned: object,
    result_status: HealthStatus,
    effective: HealthStatus,
    manager: HealthCheckManager,
) -> None:
    """A HealthStatus is taken as is, True is HEALTHY and False UNHEALTHY, with no error."""
    manager.register("db", _check(kind, lambda: returned))
    health = await manager.run_check("db")
    assert health.last_result is not None
    assert health.last_result.status is result_status
    assert health.last_result.error is None
    assert health.last_result.component == "db"
    assert health.status is effective
    assert health.check_count == 1


@pytest.mark.parametrize(
    ("returned", "type_name"),
    [
        (None, "NoneType"),
        (42, "int"),
        (0, "int"),
        (1.0, "float"),
        ("ok", "str"),
        ("healthy", "str"),
        ([], "list"),
        ({"status": "healthy"}, "dict"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_any_other_return_is_unhealthy_naming_its_type(
    kind: Kind, returned: object, type_name: str, manager: HealthCheckManager
) -> None:
    """None, numbers, strings (even "healthy") and containers are no verdict: UNHEALTHY (T3)."""
    manager.register("db", _check(kind, lambda: returned))
    health = await manager.run_check("db")
    assert health.last_result is not None
    assert health.last_result.status is S.UNHEALTHY
    assert health.last_result.error == f"invalid result ({type_name})"
    assert health.status is S.UNHEALTHY


class LeakyError(Exception):
    """An exception type of the user's whose text carries a secret."""


@pytest.mark.parametrize("exc_type", [RuntimeError, ValueError, KeyError, TimeoutError, LeakyError])
@pytest.mark.parametrize("kind", KINDS)
async def test_raising_check_is_unhealthy_with_only_the_exception_type(
    kind: Kind, exc_type: type[Exception], manager: HealthCheckManager
) -> None:
    """A raising check is UNHEALTHY with error = type name and its text nowhere (T3, T20)."""
    manager.register("db", _check(kind, Verdict(exc_type)))
    health = await manager.run_check("db")
    assert health.last_result is not None
    assert health.last_result.status is S.UNHEALTHY
    assert health.last_result.error == exc_type.__name__
    assert "hunter2" not in health.last_result.message
    assert "hunter2" not in repr(dict(health.last_result.details))
    for public in (health, manager.snapshot(), await manager.get_system_health()):
        assert "hunter2" not in repr(public)
        assert "hunter2" not in str(public)


async def test_async_check_raising_cancelled_error_is_an_unhealthy_result(
    manager: HealthCheckManager,
) -> None:
    """A check's own CancelledError is a raising check, not the caller's cancellation (§5, T3)."""

    async def check() -> bool:
        raise asyncio.CancelledError

    manager.register("db", check)
    health = await manager.run_check("db")
    assert health.status is S.UNHEALTHY
    assert health.last_result is not None
    assert health.last_result.error == "CancelledError"


class AsyncCallable:
    """An object whose ``__call__`` is a coroutine function: an async check."""

    async def __call__(self) -> bool:
        return True


async def _async_verdict(value: bool) -> bool:
    return value


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize(
    "check",
    [AsyncCallable(), functools.partial(_async_verdict, True)],
    ids=["async-callable-object", "partial-of-async-function"],
)
async def test_async_callables_other_than_functions_are_awaited(
    check: Callable[[], Any], manager: HealthCheckManager
) -> None:
    """Any async callable is a check (§5), not only an ``async def`` function."""
    manager.register("db", check)
    health = await manager.run_check("db")
    assert health.last_result is not None
    assert health.last_result.error is None
    assert health.status is S.HEALTHY


@pytest.mark.parametrize(
    ("took", "returned", "expected"),
    [
        (0.5, True, S.HEALTHY),
        (1.0, True, S.HEALTHY),  # not slower than the limit
        (1.5, True, S.DEGRADED),
        (1.5, S.HEALTHY, S.DEGRADED),
        (0.5, S.DEGRADED, S.DEGRADED),
        (1.5, False, S.UNHEALTHY),  # a failing check stays failing
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_passing_check_slower_than_degraded_latency_is_degraded(
    kind: Kind,
    took: float,
    returned: object,
    expected: HealthStatus,
    manager: HealthCheckManager,
    clock: FakeClock,
) -> None:
    """Duration is measured on the clock; a passing check over degraded_latency is DEGRADED."""

    def body() -> object:
        clock.advance(took)
        return returned

    manager.register("db", _check(kind, body), config=_cfg(degraded_latency=1.0))
    health = await manager.run_check("db")
    assert health.last_result is not None
    assert health.last_result.duration == took
    assert health.last_result.status is expected
    assert health.status is expected


# ---------------------------------------------------------------------------------- thresholds


async def test_unknown_before_the_first_result(manager: HealthCheckManager) -> None:
    """A registered component that never ran is UNKNOWN, and so is a critical roll-up (T6)."""
    manager.register("db", _check("sync", Verdict(True)))
    health = manager.component("db")
    assert (health.status, health.last_result, health.check_count) == (S.UNKNOWN, None, 0)
    assert health.heal_state is H.IDLE
    system = manager.snapshot()
    assert isinstance(system, SystemHealth)
    assert system.overall_status is S.UNKNOWN
    assert (await manager.get_system_health()).overall_status is S.UNKNOWN


@pytest.mark.parametrize(
    ("script", "statuses"),
    [
        ("FFFPP", "UUFFP"),  # UNKNOWN until the third failure; back on the second pass
        ("PFFFPFPP", "PPPFFFFP"),  # a failure between passes restarts the recovery count
        ("PFFPFFP", "PPPPPPP"),  # two failures in a row never reach the threshold of three
        ("FFPFF", "UUPPP"),  # the first pass decides at once, whatever failed before
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_thresholds_decide_the_exact_run_check_of_each_transition(
    kind: Kind, script: str, statuses: str, manager: HealthCheckManager
) -> None:
    """failure_threshold=3 / success_threshold=2 flip the status on exact run_checks (T5)."""
    letters = {"P": S.HEALTHY, "F": S.UNHEALTHY, "U": S.UNKNOWN}
    verdict = Verdict()
    manager.register(
        "db", _check(kind, verdict), config=_cfg(failure_threshold=3, success_threshold=2)
    )
    for i, (outcome, status) in enumerate(zip(script, statuses, strict=True)):
        verdict.value = outcome == "P"
        health = await manager.run_check("db")
        assert health.status is letters[status], (i, script)
        assert health.check_count == i + 1
        if outcome == "P":
            assert (health.consecutive_failures, health.consecutive_successes > 0) == (0, True)
        else:
            assert (health.consecutive_successes, health.consecutive_failures > 0) == (0, True)


@pytest.mark.parametrize("kind", KINDS)
async def test_heal_attempts_at_least_one_right_after_the_run_check_that_turns_it_unhealthy(
    kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Seed expectation: the run_check that makes it UNHEALTHY has already healed once."""
    heal = HealLog(clock)
    manager.register(
        "db", _check(kind, Verdict(False)), config=_cfg(failure_threshold=2), heal=heal
    )
    first = await manager.run_check("db")
    assert (first.status, first.heal_attempts, heal.calls) == (S.UNKNOWN, 0, 0)
    second = await manager.run_check("db")
    assert second.status is S.UNHEALTHY
    assert second.heal_attempts >= 1
    assert heal.calls == 1


async def test_run_all_returns_system_health_and_counts_one_check_each(
    manager: HealthCheckManager,
) -> None:
    """Seed expectation: overall_status is an attribute; check_count grows by one per run."""
    manager.register("a", _check("sync", Verdict(True)))
    manager.register("b", _check("async", Verdict(True)))
    for n in (1, 2, 3):
        system = await manager.run_all()
        assert system.overall_status is S.HEALTHY
        assert {name: c.check_count for name, c in system.components.items()} == {"a": n, "b": n}
    assert manager.component("a").check_count == 3
    await manager.run_check("a")
    assert manager.component("a").check_count == 4
    assert manager.component("b").check_count == 3


# ---------------------------------------------------------------------------------- healing


@pytest.mark.parametrize("heal_kind", KINDS)
@pytest.mark.parametrize("check_kind", KINDS)
async def test_first_heal_runs_in_the_turning_run_check_with_the_triggering_result(
    check_kind: Kind, heal_kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Attempt 1 is due at once and receives the result that made the component UNHEALTHY."""
    heal = HealLog(clock)
    manager.register(
        "db",
        _check(check_kind, Verdict(RuntimeError)),
        component_type=ComponentType.DATABASE,
        config=_cfg(failure_threshold=2),
        heal=_healer(heal_kind, heal),
    )
    _at(clock, 2.0)
    await manager.run_check("db")
    assert heal.calls == 0
    _at(clock, 3.0)
    health = await manager.run_check("db")
    assert heal.calls == 1
    assert heal.times == [3.0]
    (trigger,) = heal.triggers
    assert trigger == health.last_result
    assert (trigger.component, trigger.component_type, trigger.status) == (
        "db",
        ComponentType.DATABASE,
        S.UNHEALTHY,
    )
    assert (trigger.error, trigger.timestamp) == ("RuntimeError", 3.0)
    assert (health.heal_attempts, health.last_heal_error) == (1, None)


@pytest.mark.parametrize("heal_kind", KINDS)
async def test_heal_backoff_schedule_is_exact(
    heal_kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """With initial=1, x2, max=5 heals run at 0, 1, 3, 7, 12, 17 and not a moment before (T7)."""
    heal = HealLog(clock, outcome=RuntimeError)
    manager.register(
        "db",
        _check("async", Verdict(False)),
        config=_cfg(heal_max_attempts=6, **BACKOFF),
        heal=_healer(heal_kind, heal),
    )
    due = [0.0, 1.0, 3.0, 7.0, 12.0, 17.0]
    for attempt, when in enumerate(due, start=1):
        if attempt > 1:
            _at(clock, when - 0.5)
            early = await manager.run_check("db")
            assert heal.calls == attempt - 1, when
            assert early.heal_state is H.BACKOFF
        _at(clock, when)
        health = await manager.run_check("db")
        assert heal.calls == attempt, when
        assert health.heal_attempts == attempt
        assert health.last_heal_error == "RuntimeError"
    assert heal.times == due
    assert manager.component("db").heal_state is H.EXHAUSTED


@pytest.mark.parametrize("outcome", [None, True, "restarted", 0])
@pytest.mark.parametrize("heal_kind", KINDS)
async def test_heal_success_is_no_exception_and_not_false(
    heal_kind: Kind, outcome: object, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Any return but the False object, without an exception, is a successful heal."""
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    heal = HealLog(clock, outcome=outcome)
    manager.register("db", _check("sync", Verdict(False)), heal=_healer(heal_kind, heal))
    health = await manager.run_check("db")
    assert (heal.calls, health.heal_attempts, health.last_heal_error) == (1, 1, None)
    (finished,) = [e for e in events if e.kind == "heal_finished"]
    assert finished.error is None


@pytest.mark.parametrize(
    ("outcome", "error"),
    [(False, "returned False"), (RuntimeError, "RuntimeError"), (LeakyError, "LeakyError")],
)
@pytest.mark.parametrize("heal_kind", KINDS)
async def test_failed_heal_counts_as_an_attempt_with_its_error(
    heal_kind: Kind, outcome: object, error: str, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A heal returning False or raising is an attempt with last_heal_error; nothing leaks (T7)."""
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    heal = HealLog(clock, outcome=outcome)
    manager.register(
        "db", _check("async", Verdict(False)), config=_cfg(**BACKOFF), heal=_healer(heal_kind, heal)
    )
    health = await manager.run_check("db")
    assert (heal.calls, health.heal_attempts, health.last_heal_error) == (1, 1, error)
    assert health.heal_state is H.BACKOFF
    (finished,) = [e for e in events if e.kind == "heal_finished"]
    assert (finished.attempt, finished.error) == (1, error)
    assert "hunter2" not in repr(manager.snapshot())
    assert "hunter2" not in repr(events)


async def test_async_heal_exceeding_heal_timeout_is_cancelled_and_counted(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A hanging async heal ends at heal_timeout (real timer) as a failed 'timeout' attempt (T8)."""
    never = asyncio.Event()
    cancelled = asyncio.Event()
    calls = 0

    async def heal(trigger: HealthCheckResult) -> None:
        nonlocal calls
        calls += 1
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tasks = len(asyncio.all_tasks())
    manager.register(
        "db",
        _check("async", Verdict(False)),
        config=_cfg(heal_timeout=0.05, **BACKOFF),
        heal=heal,
    )
    health = await manager.run_check("db")
    assert (calls, health.heal_attempts, health.last_heal_error) == (1, 1, "timeout")
    assert health.heal_state is H.BACKOFF
    await asyncio.wait_for(cancelled.wait(), 1.0)
    await _settle()
    assert len(asyncio.all_tasks()) == tasks
    clock.advance(1.0)  # the next attempt follows the usual backoff
    health = await manager.run_check("db")
    assert (calls, health.heal_attempts, health.last_heal_error) == (2, 2, "timeout")


async def test_sync_heal_still_running_after_heal_timeout_is_never_started_twice(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A timed-out sync heal keeps its thread; no second heal of it may run meanwhile (T8)."""
    release = threading.Event()
    lock = threading.Lock()
    running = peak = entered = 0

    def heal(trigger: HealthCheckResult) -> None:
        nonlocal running, peak, entered
        with lock:
            running += 1
            entered += 1
            peak = max(peak, running)
        try:
            release.wait(5.0)
        finally:
            with lock:
                running -= 1

    manager.register(
        "db",
        _check("async", Verdict(False)),
        config=_cfg(heal_timeout=0.05, heal_max_attempts=5, **BACKOFF),
        heal=heal,
    )
    try:
        first = await manager.run_check("db")
        assert first.last_heal_error == "timeout"
        for _ in range(3):
            clock.advance(10.0)  # any backoff is long over
            await manager.run_check("db")
        assert (entered, peak) == (1, 1)
    finally:
        release.set()


@pytest.mark.parametrize("heal_kind", KINDS)
async def test_exhausted_component_is_still_checked_but_never_healed(
    heal_kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """After heal_max_attempts: EXHAUSTED, checks go on, no heals, one heal_exhausted (T7)."""
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    verdict = Verdict(False)
    heal = HealLog(clock, outcome=False)
    manager.register(
        "db",
        _check("sync", verdict),
        config=_cfg(heal_max_attempts=3, **BACKOFF),
        heal=_healer(heal_kind, heal),
    )
    for when in (0.0, 1.0, 3.0):
        _at(clock, when)
        await manager.run_check("db")
    assert heal.calls == 3
    for when in (7.0, 100.0, 10_000.0):
        _at(clock, when)
        health = await manager.run_check("db")
        assert health.heal_state is H.EXHAUSTED
        assert health.heal_attempts == 3
        assert health.status is S.UNHEALTHY
    assert heal.calls == 3
    assert verdict.calls == 6
    assert manager.component("db").check_count == 6
    exhausted = [e for e in events if e.kind == "heal_exhausted"]
    assert len(exhausted) == 1
    # Told by the first check that finds it still UNHEALTHY after the last attempt.
    assert (exhausted[0].component, exhausted[0].attempt, exhausted[0].at) == ("db", 3, 7.0)


async def test_reset_heal_rearms_an_exhausted_component(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """reset_heal(name) zeroes attempts and error; the next failure heals at once (T7)."""
    heal = HealLog(clock, outcome=RuntimeError)
    manager.register(
        "db",
        _check("async", Verdict(False)),
        config=_cfg(heal_max_attempts=2, **BACKOFF),
        heal=heal,
    )
    await manager.run_check("db")
    _at(clock, 1.0)
    await manager.run_check("db")
    _at(clock, 50.0)
    assert manager.component("db").heal_state is H.EXHAUSTED
    manager.reset_heal("db")
    health = manager.component("db")
    assert (health.heal_attempts, health.last_heal_error) == (0, None)
    assert health.heal_state is H.IDLE
    health = await manager.run_check("db")
    assert (heal.calls, health.heal_attempts) == (3, 1)
    _at(clock, 50.5)
    assert (await manager.run_check("db")).heal_state is H.BACKOFF  # initial gap again
    _at(clock, 51.0)
    await manager.run_check("db")
    assert heal.times == [0.0, 1.0, 50.0, 51.0]
    with pytest.raises(KeyError):
        manager.reset_heal("nope")


@pytest.mark.parametrize("passing", [True, S.DEGRADED])
@pytest.mark.parametrize("check_kind", KINDS)
async def test_crash_loop_keeps_backoff_until_heal_reset_after_of_sustained_health(
    check_kind: Kind, passing: object, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A heal that 'works' briefly keeps the backoff; heal_reset_after of health resets (T9)."""
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    verdict = Verdict(False)
    heal = HealLog(clock)  # always "succeeds"
    manager.register(
        "db",
        _check(check_kind, verdict),
        config=_cfg(heal_max_attempts=10, heal_reset_after=30.0, **BACKOFF),
        heal=heal,
    )

    async def run(when: float, ok: bool) -> Any:
        _at(clock, when)
        verdict.value = passing if ok else False
        return await manager.run_check("db")

    await run(0.0, ok=False)  # attempt 1; attempt 2 due at 1
    assert (await run(0.5, ok=True)).status is not S.UNHEALTHY
    crashed = await run(0.75, ok=False)  # dies again before the gap is over
    assert (crashed.heal_attempts, crashed.heal_state) == (1, H.BACKOFF)
    await run(1.0, ok=False)  # attempt 2; attempt 3 due at 1 + 2
    await run(1.5, ok=True)
    crashed = await run(2.5, ok=False)
    assert (crashed.heal_attempts, crashed.heal_state) == (2, H.BACKOFF)
    await run(3.0, ok=False)  # attempt 3; healthy from 4 on
    await run(4.0, ok=True)
    assert (await run(33.5, ok=True)).heal_attempts == 3  # 29.5 s of health: not yet
    rearmed = await run(34.0, ok=True)  # 30 s of health
    assert (rearmed.heal_attempts, rearmed.last_heal_error) == (0, None)
    again = await run(34.5, ok=False)  # the next failure heals at once, as attempt 1
    assert again.heal_attempts == 1
    assert (await run(35.0, ok=False)).heal_state is H.BACKOFF  # the initial gap of 1 s
    await run(35.5, ok=False)
    assert heal.times == [0.0, 1.0, 3.0, 34.5, 35.5]
    started = [e.attempt for e in events if e.kind == "heal_started"]
    assert started == [1, 2, 3, 1, 2]


@pytest.mark.parametrize("check_kind", KINDS)
async def test_one_heal_at_a_time_per_component(
    check_kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """While a heal runs, further run_checks check but start no second heal (T8)."""
    started = asyncio.Event()
    gate = asyncio.Event()
    calls = 0

    async def heal(trigger: HealthCheckResult) -> None:
        nonlocal calls
        calls += 1
        started.set()
        await gate.wait()

    verdict = Verdict(False)
    manager.register("db", _check(check_kind, verdict), config=_cfg(**BACKOFF), heal=heal)
    first = asyncio.create_task(manager.run_check("db"))
    await asyncio.wait_for(started.wait(), 2.0)
    for n in range(2, 5):
        clock.advance(10.0)
        health = await manager.run_check("db")
        assert (health.heal_state, health.heal_attempts, health.check_count) == (H.HEALING, 1, n)
    assert calls == 1
    gate.set()
    done = await asyncio.wait_for(first, 2.0)
    assert (calls, done.heal_attempts, done.heal_state) == (1, 1, H.BACKOFF)
    assert verdict.calls == 4


# ---------------------------------------------------------------------------------- heal storm


@pytest.mark.parametrize("heal_kind", KINDS)
async def test_heal_storm_in_one_run_all_never_exceeds_max_concurrent_heals(
    heal_kind: Kind, make_manager: Callable[..., HealthCheckManager]
) -> None:
    """50 components failing in one run_all: never more than 4 heals at once, all healed (T11)."""
    manager = make_manager(max_concurrent_heals=4)
    lock = threading.Lock()
    running = peak = 0
    healed: list[str] = []

    def enter(trigger: HealthCheckResult) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            healed.append(trigger.component)

    def leave() -> None:
        nonlocal running
        with lock:
            running -= 1

    def sync_heal(trigger: HealthCheckResult) -> None:
        enter(trigger)
        leave()

    async def async_heal(trigger: HealthCheckResult) -> None:
        enter(trigger)
        try:
            await _settle(5)
        finally:
            leave()

    names = [f"svc-{i:02d}" for i in range(50)]
    for name in names:
        manager.register(
            name,
            _check("async", Verdict(False)),
            heal=sync_heal if heal_kind == "sync" else async_heal,
        )
    system = await manager.run_all()
    assert 1 <= peak <= 4
    assert sorted(healed) == names
    assert all(system.components[n].heal_attempts == 1 for n in names)
    assert system.overall_status is S.UNHEALTHY


async def test_concurrent_heals_are_capped_at_max_concurrent_heals(
    make_manager: Callable[..., HealthCheckManager],
) -> None:
    """50 heals due at once: exactly 4 run, the rest wait their turn, all finish (T11)."""
    manager = make_manager(max_concurrent_heals=4)
    gate = asyncio.Event()
    four = asyncio.Event()
    running = peak = 0
    healed: set[str] = set()

    async def heal(trigger: HealthCheckResult) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 4:
            four.set()
        try:
            await gate.wait()
        finally:
            running -= 1
            healed.add(trigger.component)

    names = [f"svc-{i:02d}" for i in range(50)]
    for name in names:
        manager.register(name, _check("async", Verdict(False)), heal=heal)
    runs = [asyncio.create_task(manager.run_check(name)) for name in names]
    await asyncio.wait_for(four.wait(), 2.0)
    await _settle(50)
    assert (running, peak) == (4, 4)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*runs), 2.0)
    assert peak == 4
    assert healed == set(names)
    assert all(r.heal_attempts == 1 and r.heal_state is H.BACKOFF for r in results)


# ---------------------------------------------------------------------------------- dependencies


@pytest.mark.parametrize("kind", KINDS)
async def test_shared_parent_down_only_the_parent_is_healed(
    kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A shared parent down under 10 dependents: only it heals; they are SUPPRESSED (T12)."""
    parent = Verdict(False)
    parent_heal = HealLog(clock)  # runs, but does not bring the parent back
    manager.register("shared-db", _check(kind, parent), config=_cfg(**BACKOFF), heal=parent_heal)
    children = [f"api-{i}" for i in range(10)]  # sorted before their parent on purpose
    child_heals = {name: HealLog(clock) for name in children}
    for name in children:
        manager.register(
            name,
            _check(kind, Verdict(False)),
            config=_cfg(depends_on=("shared-db",), **BACKOFF),
            heal=child_heals[name],
        )
    for n in (1, 2):
        system = await manager.run_all()
        assert parent_heal.calls == n
        for name in children:
            child = system.components[name]
            assert (child.status, child.heal_state) == (S.UNHEALTHY, H.SUPPRESSED), name
            assert (child.check_count, child.heal_attempts) == (n, 0), name
            assert child_heals[name].calls == 0, name
        clock.advance(10.0)
    parent.value = True  # the parent recovers: the dependents' own heals go ahead
    system = await manager.run_all()
    assert system.components["shared-db"].status is S.HEALTHY
    assert parent_heal.calls == 2
    for name in children:
        child = system.components[name]
        assert (child.heal_attempts, child.heal_state) == (1, H.BACKOFF), name
        assert child_heals[name].calls == 1, name


async def test_run_all_checks_parents_before_children(manager: HealthCheckManager) -> None:
    """run_all orders by depends_on, not by name or registration order (T12)."""
    calls: list[str] = []

    def recording(name: str) -> Callable[[], bool]:
        def body() -> bool:
            calls.append(name)
            return True

        return body

    graph = {"a": ("b",), "e": ("a", "c"), "b": ("c",), "d": (), "c": ()}
    for name, parents in graph.items():
        kind: Kind = "sync" if name in "ace" else "async"
        manager.register(name, _check(kind, recording(name)), config=_cfg(depends_on=parents))
    await manager.run_all()
    assert sorted(calls) == sorted(graph)
    for child, parents in graph.items():
        for parent in parents:
            assert calls.index(parent) < calls.index(child), calls


async def test_parent_not_registered_counts_as_healthy(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """depends_on naming a component not yet registered suppresses nothing until it is."""
    heal = HealLog(clock)
    manager.register(
        "api", _check("async", Verdict(False)), config=_cfg(depends_on=("ghost",)), heal=heal
    )
    health = await manager.run_check("api")
    assert (heal.calls, health.heal_state) == (1, H.BACKOFF)
    manager.register("ghost", _check("sync", Verdict(False)))
    await manager.run_check("ghost")
    clock.advance(10.0)
    health = await manager.run_check("api")
    assert (heal.calls, health.heal_state) == (1, H.SUPPRESSED)


@pytest.mark.parametrize(
    ("before", "closing"),
    [
        ([], ("a", ("a",))),
        ([("a", ("b",))], ("b", ("a",))),
        ([("a", ("b",)), ("b", ("c",))], ("c", ("a",))),
        ([("b", ("c",)), ("a", ("b",))], ("c", ("x", "a"))),
    ],
    ids=["self", "2-cycle", "3-cycle", "3-cycle-via-second-parent"],
)
async def test_registration_closing_a_cycle_raises_and_changes_nothing(
    before: list[tuple[str, tuple[str, ...]]],
    closing: tuple[str, tuple[str, ...]],
    manager: HealthCheckManager,
) -> None:
    """A depends_on that would close a cycle raises ValueError and registers nothing (T13)."""
    for name, parents in before:
        manager.register(name, _check("sync", Verdict(True)), config=_cfg(depends_on=parents))
    registered = set(manager.snapshot().components)
    name, parents = closing
    with pytest.raises(ValueError, match="cycle"):
        manager.register(name, _check("sync", Verdict(True)), config=_cfg(depends_on=parents))
    assert set(manager.snapshot().components) == registered
    with pytest.raises(KeyError):
        manager.component(name)
    await manager.run_all()  # still usable, and the name is still free
    manager.register(name, _check("sync", Verdict(True)))
    assert (await manager.run_check(name)).status is S.HEALTHY


async def test_duplicate_name_raises_and_keeps_the_original(manager: HealthCheckManager) -> None:
    """Registering a taken name raises ValueError; the first registration stays in force."""
    manager.register("db", _check("sync", Verdict(True)), component_type="database")
    with pytest.raises(ValueError, match="db"):
        manager.register("db", _check("async", Verdict(False)), component_type="cache")
    health = await manager.run_check("db")
    assert (health.status, health.component_type) == (S.HEALTHY, ComponentType.DATABASE)
    assert list(manager.snapshot().components) == ["db"]


# ---------------------------------------------------------------------------------- aggregation


@pytest.mark.parametrize(
    ("members", "overall"),
    [
        ([], S.HEALTHY),
        ([(True, True)], S.HEALTHY),
        ([(True, True), (True, S.DEGRADED)], S.DEGRADED),
        ([(True, S.DEGRADED), (True, False), (True, True)], S.UNHEALTHY),
        ([(True, True), (True, None)], S.UNKNOWN),
        ([(True, None), (True, S.DEGRADED)], S.DEGRADED),
        ([(False, False)], S.DEGRADED),
        ([(True, True), (False, False)], S.DEGRADED),
        ([(True, True), (False, S.DEGRADED)], S.DEGRADED),
        ([(False, None), (True, True)], S.HEALTHY),
        ([(False, None)], S.HEALTHY),
        ([(False, False), (True, False)], S.UNHEALTHY),
        ([(False, False), (True, None)], S.DEGRADED),
    ],
)
async def test_overall_status_rolls_up_through_the_manager(
    members: list[tuple[bool, object]], overall: HealthStatus, manager: HealthCheckManager
) -> None:
    """Critical worst-wins, non-critical capped at DEGRADED, UNKNOWN-only ignored (T14)."""
    for i, (critical, verdict) in enumerate(members):
        name = f"c{i}"
        manager.register(name, _check("sync", Verdict(verdict)), config=_cfg(critical=critical))
        if verdict is not None:  # None: never run, so UNKNOWN
            await manager.run_check(name)
    assert manager.snapshot().overall_status is overall
    assert (await manager.get_system_health()).overall_status is overall


async def test_empty_manager_is_healthy(manager: HealthCheckManager) -> None:
    """No components at all roll up to HEALTHY (DESIGN §5; T14 says UNKNOWN, DESIGN rules)."""
    assert manager.snapshot().overall_status is S.HEALTHY
    assert (await manager.get_system_health()).overall_status is S.HEALTHY
    system = await manager.run_all()
    assert (system.overall_status, dict(system.components)) == (S.HEALTHY, {})


# ---------------------------------------------------------------------------------- events


async def test_transition_events_carry_statuses_and_the_clock_time(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Each effective-status change is one transition event with from, to and the clock time."""
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    verdict = Verdict(True)
    manager.register("db", _check("async", verdict), config=_cfg(failure_threshold=2))
    for when, value in [(5.0, True), (6.0, True), (7.0, False), (8.0, False), (9.0, S.DEGRADED)]:
        _at(clock, when)
        verdict.value = value
        await manager.run_check("db")
    assert events == [
        HealthEvent("transition", "db", 5.0, S.UNKNOWN, S.HEALTHY),
        HealthEvent("transition", "db", 8.0, S.HEALTHY, S.UNHEALTHY),
        HealthEvent("transition", "db", 9.0, S.UNHEALTHY, S.DEGRADED),
    ]


@pytest.mark.parametrize("heal_kind", KINDS)
async def test_heal_events_carry_the_attempt_number(
    heal_kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """Heal events carry attempts 1, 2, ...; a check failing after the last adds heal_exhausted."""
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    heal = HealLog(clock, outcome=False)
    manager.register(
        "db",
        _check("sync", Verdict(False)),
        config=_cfg(heal_max_attempts=2, **BACKOFF),
        heal=_healer(heal_kind, heal),
    )
    _at(clock, 5.0)
    await manager.run_check("db")
    _at(clock, 6.0)
    await manager.run_check("db")
    _at(clock, 7.0)
    await manager.run_check("db")
    assert [(e.kind, e.at, e.attempt, e.error) for e in events] == [
        ("transition", 5.0, None, None),
        ("heal_started", 5.0, 1, None),
        ("heal_finished", 5.0, 1, "returned False"),
        ("heal_started", 6.0, 2, None),
        ("heal_finished", 6.0, 2, "returned False"),
        ("heal_exhausted", 7.0, 2, None),
    ]
    assert {e.component for e in events} == {"db"}


async def test_raising_listener_is_logged_and_does_not_break_run_check(
    manager: HealthCheckManager, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; run_check, the heal and other listeners go on (§9)."""

    def bad(event: HealthEvent) -> None:
        raise RuntimeError(SECRET)

    events: list[HealthEvent] = []
    manager.add_listener(bad)
    manager.add_listener(events.append)
    heal = HealLog(clock)
    manager.register("db", _check("async", Verdict(False)), heal=heal)
    with caplog.at_level(logging.ERROR):
        health = await manager.run_check("db")
    assert (health.status, health.heal_attempts, heal.calls) == (S.UNHEALTHY, 1, 1)
    assert [e.kind for e in events] == ["transition", "heal_started", "heal_finished"]
    assert any(r.levelno >= logging.ERROR and r.exc_info for r in caplog.records)


# ---------------------------------------------------------------------------------- watch


async def test_watch_yields_the_current_state_first(manager: HealthCheckManager) -> None:
    """The first value of watch() is the current SystemHealth, without waiting for a change."""
    manager.register("up", _check("async", Verdict(True)))
    manager.register("never-run", _check("async", Verdict(True)), config=_cfg(critical=False))
    await manager.run_check("up")
    values = manager.watch()
    try:
        first = await asyncio.wait_for(anext(values), 1.0)
    finally:
        await values.aclose()  # type: ignore[attr-defined]
    assert first.overall_status is S.HEALTHY
    assert first.components["up"].status is S.HEALTHY
    assert first.components["never-run"].status is S.UNKNOWN


async def test_watch_publishes_each_transition(manager: HealthCheckManager) -> None:
    """After a status change the next value reflects it (T17: immediate, then on change)."""
    verdict = Verdict(False)
    manager.register("db", _check("async", verdict))
    reader = Reader(manager)
    try:
        await _settle()
        assert [v.overall_status for v in reader.seen] == [S.UNKNOWN]
        await manager.run_check("db")
        await _settle()
        assert [v.overall_status for v in reader.seen] == [S.UNKNOWN, S.UNHEALTHY]
        assert reader.seen[-1].components["db"].status is S.UNHEALTHY
        verdict.value = S.DEGRADED
        await manager.run_check("db")
        await _settle()
        assert [v.overall_status for v in reader.seen][-1] is S.DEGRADED
        assert len(reader.seen) == 3
    finally:
        await reader.close()


@pytest.mark.parametrize(
    ("config", "verdicts", "published"),
    [
        ({"failure_threshold": 2}, [False], 1),  # counted below the threshold: still UNKNOWN
        ({}, [True, True, True], 2),  # HEALTHY once, then only check_count moves
        ({}, [False, False], 2),  # UNHEALTHY, no heal registered: nothing else moves
        ({}, [True, S.DEGRADED, S.DEGRADED], 3),
    ],
    ids=["below-threshold", "healthy-again", "unhealthy-again", "degraded-again"],
)
async def test_watch_publishes_nothing_when_only_check_count_changed(
    config: dict[str, Any],
    verdicts: list[object],
    published: int,
    manager: HealthCheckManager,
) -> None:
    """A run that changes no status or heal state yields no new value from watch()."""
    verdict = Verdict()
    manager.register("db", _check("async", verdict), config=_cfg(**config))
    reader = Reader(manager)
    try:
        await _settle()
        for value in verdicts:
            verdict.value = value
            await manager.run_check("db")
            await _settle()
        assert len(reader.seen) == published, [v.overall_status for v in reader.seen]
    finally:
        await reader.close()


async def test_watch_slow_reader_gets_the_latest_value(manager: HealthCheckManager) -> None:
    """A reader that falls behind skips intermediate values and gets the newest one."""
    verdict = Verdict(False)
    manager.register("db", _check("async", verdict))
    values = manager.watch()
    try:
        first = await anext(values)
        assert first.overall_status is S.UNKNOWN
        for value in (False, True, S.DEGRADED):
            verdict.value = value
            await manager.run_check("db")
        latest = await asyncio.wait_for(anext(values), 1.0)
    finally:
        await values.aclose()  # type: ignore[attr-defined]
    assert latest.components["db"].status is S.DEGRADED
    assert latest.components["db"].check_count == 3


async def test_watch_publishes_heal_state_changes(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """HEALING while a heal runs and BACKOFF after it are each published."""
    gate = asyncio.Event()
    started = asyncio.Event()

    async def heal(trigger: HealthCheckResult) -> None:
        started.set()
        await gate.wait()

    manager.register("db", _check("async", Verdict(False)), config=_cfg(**BACKOFF), heal=heal)
    reader = Reader(manager)
    try:
        await _settle()
        run = asyncio.create_task(manager.run_check("db"))
        await asyncio.wait_for(started.wait(), 1.0)
        await _settle()
        assert reader.seen[-1].components["db"].heal_state is H.HEALING
        gate.set()
        await run
        await _settle()
        assert reader.seen[-1].components["db"].heal_state is H.BACKOFF
        clock.advance(1.0)
        assert manager.component("db").heal_state is H.IDLE  # due again, nobody ran a check
    finally:
        await reader.close()


# ---------------------------------------------------------------------------------- breakers


def _boom() -> None:
    raise RuntimeError(SECRET)


def _trip(breaker: CircuitBreaker) -> None:
    with contextlib.suppress(RuntimeError):
        breaker.call(_boom)


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        ("closed", S.HEALTHY),
        ("disabled", S.HEALTHY),
        ("half_open", S.DEGRADED),
        ("open", S.UNHEALTHY),
        ("forced_open", S.UNHEALTHY),
    ],
)
def test_breaker_health_check_maps_the_breaker_state(
    setup: str, status: HealthStatus, clock: FakeClock
) -> None:
    """CLOSED/DISABLED are HEALTHY, HALF_OPEN DEGRADED, OPEN/FORCED_OPEN UNHEALTHY, with metrics."""
    breaker = CircuitBreaker("payments", failure_threshold=1, recovery_timeout=10.0, clock=clock)
    breaker.call(lambda: None)
    if setup in ("open", "half_open"):
        _trip(breaker)
    if setup == "half_open":
        clock.advance(10.0)
    if setup == "forced_open":
        breaker.force_open()
    if setup == "disabled":
        breaker.disable()
    check = breaker_health_check(breaker)
    result = check()
    metrics = breaker.metrics
    assert metrics.state.value == setup
    assert result.status is status
    assert result.component_type is ComponentType.CIRCUIT_BREAKER
    details = dict(result.details)
    assert details["state"] == setup
    assert details["total_calls"] == metrics.total_calls
    assert details["failed_calls"] == metrics.failed_calls
    assert details["rejected_calls"] == metrics.rejected_calls
    assert details["times_opened"] == metrics.times_opened
    assert details["failure_rate"] == metrics.failure_rate
    assert "hunter2" not in repr(result)


async def test_breaker_health_check_runs_in_a_manager(
    manager: HealthCheckManager, clock: FakeClock
) -> None:
    """A breaker check registered in a manager follows the breaker: open, half-open, closed."""
    breaker = CircuitBreaker("payments", failure_threshold=1, recovery_timeout=10.0, clock=clock)
    manager.register(
        "payments-api", breaker_health_check(breaker), component_type=ComponentType.CIRCUIT_BREAKER
    )
    assert (await manager.run_check("payments-api")).status is S.HEALTHY
    _trip(breaker)
    health = await manager.run_check("payments-api")
    assert health.status is S.UNHEALTHY
    assert health.last_result is not None
    assert health.last_result.component == "payments-api"
    assert health.last_result.details["state"] == "open"
    assert health.last_result.details["times_opened"] == 1
    clock.advance(10.0)
    assert (await manager.run_check("payments-api")).status is S.DEGRADED
    breaker.reset()
    system = await manager.run_all()
    assert system.components["payments-api"].status is S.HEALTHY


# ---------------------------------------------------------------------------------- registration


async def test_check_decorator_registers_with_its_config(manager: HealthCheckManager) -> None:
    """@manager.check registers the function with the config fields given and returns it."""

    @manager.check("db", component_type=ComponentType.DATABASE, failure_threshold=2)
    def db_check() -> bool:
        return False

    @manager.check("cache", component_type="cache", critical=False)
    async def cache_check() -> bool:
        return True

    assert db_check() is False
    assert db_check.__name__ == "db_check"
    assert cache_check.__name__ == "cache_check"
    assert (await manager.run_check("db")).status is S.UNKNOWN  # threshold 2
    db = await manager.run_check("db")
    assert (db.status, db.component_type) == (S.UNHEALTHY, ComponentType.DATABASE)
    cache = await manager.run_check("cache")
    assert (cache.status, cache.component_type, cache.critical) == (
        S.HEALTHY,
        ComponentType.CACHE,
        False,
    )


@pytest.mark.parametrize("heal_kind", KINDS)
async def test_healer_decorator_attaches_a_heal(
    heal_kind: Kind, manager: HealthCheckManager, clock: FakeClock
) -> None:
    """@manager.healer(name) attaches the heal to a registered component and returns it."""

    @manager.check("db")
    def db_check() -> bool:
        return False

    log = HealLog(clock)
    heal = _healer(heal_kind, log)
    assert manager.healer("db")(heal) is heal
    health = await manager.run_check("db")
    assert (log.calls, health.heal_attempts) == (1, 1)
    assert log.triggers[0].component == "db"


async def test_healer_on_unknown_name_raises_key_error(manager: HealthCheckManager) -> None:
    """A heal for a name nobody registered is refused with KeyError."""

    def heal(trigger: HealthCheckResult) -> None:
        return None

    with pytest.raises(KeyError, match="nope"):
        manager.healer("nope")(heal)
    assert dict(manager.snapshot().components) == {}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"interval": 0.0}, "interval"),
        ({"interval": -1.0}, "interval"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"heal_timeout": 0.0}, "heal_timeout"),
        ({"heal_max_attempts": 0}, "heal_max_attempts"),
        ({"degraded_latency": -0.5}, "degraded_latency"),
        ({"critical": "yes"}, "critical"),
        ({"intervall": 5.0}, "intervall"),
        ({"interval": 1.0, "timeout": 2.0}, "timeout"),
    ],
)
def test_bad_check_decorator_config_raises_value_error_naming_the_field(
    fields: dict[str, Any], field: str, manager: HealthCheckManager
) -> None:
    """Bad config keyword arguments raise a ValueError naming the field, at the call (§9)."""
    with pytest.raises(ValueError, match=field) as info:
        manager.check("db", **fields)
    assert "pydantic" not in str(info.value)
    assert dict(manager.snapshot().components) == {}


async def test_component_of_unknown_name_raises_key_error(manager: HealthCheckManager) -> None:
    """component(name) and run_check(name) of a name nobody registered raise KeyError."""
    with pytest.raises(KeyError, match="nope"):
        manager.component("nope")
    with pytest.raises(KeyError, match="nope"):
        await manager.run_check("nope")


async def test_unregister_removes_the_component_from_the_snapshot(
    manager: HealthCheckManager,
) -> None:
    """An unregistered component leaves the snapshot and the roll-up; its name is free again."""
    manager.register("db", _check("sync", Verdict(False)))
    manager.register("cache", _check("async", Verdict(True)))
    assert (await manager.run_all()).overall_status is S.UNHEALTHY
    manager.unregister("db")
    system = manager.snapshot()
    assert list(system.components) == ["cache"]
    assert system.overall_status is S.HEALTHY
    assert (await manager.run_all()).overall_status is S.HEALTHY
    with pytest.raises(KeyError):
        manager.component("db")
    manager.register("db", _check("sync", Verdict(True)))
    assert (await manager.run_check("db")).check_count == 1


async def test_unregister_during_a_heal_does_not_abort_run_all(
    manager: HealthCheckManager,
) -> None:
    """A component unregistered while run_all heals it is skipped; the rest are still checked."""
    started = asyncio.Event()

    async def heal(trigger: HealthCheckResult) -> None:
        started.set()
        await asyncio.Event().wait()  # runs until unregister cancels it

    manager.register("a", _check("async", Verdict(False)), heal=heal)
    manager.register("b", _check("async", Verdict(True)))
    run = asyncio.create_task(manager.run_all())
    await asyncio.wait_for(started.wait(), 1.0)
    manager.unregister("a")
    system = await asyncio.wait_for(run, 2.0)
    assert list(system.components) == ["b"]
    assert system.components["b"].check_count == 1
    assert system.overall_status is S.HEALTHY


# ---------------------------------------------------------------------------------- leaks


@pytest.mark.parametrize("kind", KINDS)
async def test_ten_thousand_raising_checks_leak_no_threads_or_tasks(
    kind: Kind, make_manager: Callable[..., HealthCheckManager]
) -> None:
    """10,000 run_checks of a raising check leave no extra threads or pending tasks (T3)."""
    pool = 4
    manager = make_manager(max_check_threads=pool)
    manager.register("db", _check(kind, Verdict(RuntimeError)))
    threads = threading.active_count()
    tasks = len(asyncio.all_tasks())
    for _ in range(10_000):
        await manager.run_check("db")
    assert threading.active_count() <= threads + pool
    assert len(asyncio.all_tasks()) == tasks
    health = manager.component("db")
    assert (health.check_count, health.status) == (10_000, S.UNHEALTHY)
    assert health.last_result is not None
    assert health.last_result.error == "RuntimeError"


async def test_long_check_messages_are_cut_short(manager: HealthCheckManager) -> None:
    """Public health output carries short messages only: a check's message keeps 256 chars."""
    long_message = "x" * 10_000
    manager.register(
        "db", lambda: HealthCheckResult("db", "database", "healthy", message=long_message)
    )
    result = (await manager.run_check("db")).last_result
    assert result is not None
    assert len(result.message) == 256
    assert result.message.endswith("…")
    assert result.status is HealthStatus.HEALTHY
