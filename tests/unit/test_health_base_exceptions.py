"""Checks and heals that raise BaseExceptions: recorded like exceptions, never fatal (§5).

A CLI library's ``main()`` ends with ``SystemExit(0)`` on success; asyncio re-raises
``SystemExit`` out of the event loop from a task, and a custom ``BaseException`` nobody
retrieves is dropped with an ERROR log. Either used to stop the service or leave a
component wrong. Here every such exception, from a sync or an async check or heal, with
or without ``depends_on``, through ``run_check`` and ``run_all``, is one failing result
whose error is the type name; only the caller's own cancellation and KeyboardInterrupt
propagate. The scheduled path (``start()``) is in tests/integration.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import pytest

from engined import (
    HealState,
    HealthCheckConfig,
    HealthCheckManager,
    HealthEvent,
    HealthStatus,
)
from engined.testing import FakeClock

S = HealthStatus
Kind = Literal["sync", "async"]
KINDS: tuple[Kind, ...] = ("sync", "async")


class CustomStop(BaseException):
    """A library's own BaseException subclass (like gevent's GreenletExit)."""


RAISED: list[Callable[[], BaseException]] = [
    lambda: SystemExit(0),
    lambda: SystemExit(2),
    lambda: CustomStop("bye"),
    lambda: GeneratorExit(),
]
RAISED_IDS = ["SystemExit0", "SystemExit2", "CustomStop", "GeneratorExit"]


def _raising(kind: Kind, make: Callable[[], BaseException]) -> Callable[..., Any]:
    """A check or heal of ``kind`` (it takes any arguments) that raises ``make()``."""
    if kind == "sync":

        def sync_raiser(*_: object) -> object:
            raise make()

        return sync_raiser

    async def async_raiser(*_: object) -> object:
        raise make()

    return async_raiser


def _passing(kind: Kind) -> Callable[[], Any]:
    if kind == "sync":
        return lambda: True

    async def passing() -> bool:
        return True

    return passing


@pytest.fixture
async def manager(clock: FakeClock) -> AsyncIterator[HealthCheckManager]:
    """A manager on the fake clock, stopped at teardown."""
    made = HealthCheckManager(clock=clock)
    yield made
    await made.stop()


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing reached the loop's exception handler ("Task exception was never retrieved")."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.mark.parametrize("make", RAISED, ids=RAISED_IDS)
@pytest.mark.parametrize("with_parent", [False, True], ids=["root", "child"])
@pytest.mark.parametrize("kind", KINDS)
async def test_base_exception_from_a_check_is_an_unhealthy_result_in_run_check(
    kind: Kind,
    with_parent: bool,
    make: Callable[[], BaseException],
    manager: HealthCheckManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """run_check records SystemExit and friends as UNHEALTHY with the type name; it returns."""
    manager.register("parent", _passing(kind))
    parents = ("parent",) if with_parent else ()
    manager.register("svc", _raising(kind, make), config=HealthCheckConfig(depends_on=parents))
    name = type(make()).__name__
    for count in (1, 2):  # the manager is still usable after the first one
        health = await manager.run_check("svc")
        assert (health.status, health.check_count) == (S.UNHEALTHY, count)
        assert health.last_result is not None
        assert health.last_result.error == name
    _no_errors_logged(caplog)


@pytest.mark.parametrize("make", RAISED, ids=RAISED_IDS)
@pytest.mark.parametrize("kind", KINDS)
async def test_base_exception_from_a_child_check_is_recorded_by_run_all(
    kind: Kind,
    make: Callable[[], BaseException],
    manager: HealthCheckManager,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In run_all a raising child is UNHEALTHY (not left HEALTHY) and its siblings still run."""
    ok = _passing(kind)
    manager.register("parent", ok)
    manager.register("child", ok, config=HealthCheckConfig(depends_on=("parent",)))
    assert (await manager.run_all()).components["child"].status is S.HEALTHY
    manager.unregister("child")
    manager.register(
        "child", _raising(kind, make), config=HealthCheckConfig(depends_on=("parent",))
    )
    manager.register("sibling", ok, config=HealthCheckConfig(depends_on=("parent",)))
    system = await manager.run_all()
    child = system.components["child"]
    assert child.status is S.UNHEALTHY
    assert child.last_result is not None
    assert child.last_result.error == type(make()).__name__
    assert system.components["sibling"].status is S.HEALTHY
    assert system.components["parent"].check_count == 2
    _no_errors_logged(caplog)


@pytest.mark.parametrize("make", RAISED, ids=RAISED_IDS)
@pytest.mark.parametrize("heal_kind", KINDS)
async def test_base_exception_from_a_heal_is_a_failed_attempt_not_healing_for_ever(
    heal_kind: Kind,
    make: Callable[[], BaseException],
    manager: HealthCheckManager,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A heal raising SystemExit(0) is attempt 1 with its type name; the next one follows."""
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    manager.register("db", lambda: False, heal=_raising(heal_kind, make))
    name = type(make()).__name__
    health = await manager.run_check("db")
    assert (health.heal_attempts, health.last_heal_error) == (1, name)
    assert health.heal_state is HealState.BACKOFF
    assert [(e.kind, e.error) for e in events if e.kind.startswith("heal")] == [
        ("heal_started", None),
        ("heal_finished", name),
    ]
    clock.advance(1.0)  # the default backoff before attempt 2
    health = await manager.run_check("db")
    assert (health.heal_attempts, health.heal_state) == (2, HealState.BACKOFF)
    _no_errors_logged(caplog)


async def test_heals_raising_system_exit_in_run_all_all_settle(
    manager: HealthCheckManager, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty components whose sync and async heals raise SystemExit all end in BACKOFF."""
    for i in range(20):
        kind: Kind = KINDS[i % 2]
        manager.register(f"c{i:02}", lambda: False, heal=_raising(kind, lambda: SystemExit(0)))
    system = await manager.run_all()
    states = {c.heal_state for c in system.components.values()}
    assert states == {HealState.BACKOFF}
    assert {c.last_heal_error for c in system.components.values()} == {"SystemExit"}
    _no_errors_logged(caplog)


async def test_sync_check_returning_a_coroutine_that_raises_system_exit_is_recorded(
    manager: HealthCheckManager,
) -> None:
    """A sync-looking callable whose coroutine raises SystemExit is a failing result too."""

    async def exits() -> bool:
        raise SystemExit(0)

    def check() -> object:
        return exits()

    manager.register("svc", check)
    health = await manager.run_check("svc")
    assert health.last_result is not None
    assert (health.status, health.last_result.error) == (S.UNHEALTHY, "SystemExit")


@pytest.mark.parametrize("kind", KINDS)
def test_keyboard_interrupt_from_a_check_propagates(kind: Kind) -> None:
    """KeyboardInterrupt is the one exception of a check that is not recorded: it stops the run."""
    manager = HealthCheckManager(clock=FakeClock())
    manager.register("svc", _raising(kind, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(manager.run_check("svc"))
    assert manager.component("svc").check_count == 0


async def test_cancelling_run_check_propagates_while_the_check_hangs(
    manager: HealthCheckManager,
) -> None:
    """The caller's own cancellation is not a check failure: run_check is cancelled, no record."""
    started = threading.Event()
    release = threading.Event()

    def hangs() -> bool:
        started.set()
        release.wait(5.0)
        return True

    manager.register("svc", hangs, config=HealthCheckConfig(timeout=5.0))
    try:
        run = asyncio.create_task(manager.run_check("svc"))
        assert await asyncio.to_thread(started.wait, 5.0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert manager.component("svc").check_count == 0
    finally:
        release.set()
