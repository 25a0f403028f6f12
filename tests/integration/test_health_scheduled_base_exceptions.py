"""The scheduler survives checks and heals that raise SystemExit and other BaseExceptions.

Scheduled checks run as callbacks or tasks of the manager's loop; asyncio re-raises
``SystemExit`` out of the loop from a task, which used to stop the whole service. Here a
manager on the real clock (0.05 s intervals) keeps checking every such component, records
each exception's type name, keeps healing, and logs no ERROR.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from engined import SYSTEM_CLOCK, HealthCheckManager, HealthStatus

pytestmark = pytest.mark.integration

INTERVAL = 0.05


class CustomStop(BaseException):
    """A library's own BaseException subclass."""


def _sync(exc: Callable[[], BaseException]) -> Callable[..., Any]:
    def raiser(*_: object) -> object:
        raise exc()

    return raiser


def _async(exc: Callable[[], BaseException]) -> Callable[..., Any]:
    async def raiser(*_: object) -> object:
        raise exc()

    return raiser


async def _until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    async def poll() -> None:
        while not predicate():
            await SYSTEM_CLOCK.sleep_async(0.005)

    await asyncio.wait_for(poll(), within)


async def test_scheduled_checks_and_heals_raising_base_exceptions_never_stop_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sync/async, root/child, SystemExit/custom: each is checked again and again, UNHEALTHY."""
    manager = HealthCheckManager()

    async def passing() -> bool:
        return True

    manager.register("parent", passing, interval=INTERVAL)
    names: dict[str, str] = {}
    for kind, wrap in (("sync", _sync), ("async", _async)):
        for error, make in (("SystemExit", lambda: SystemExit(0)), ("CustomStop", CustomStop)):
            for parents in ((), ("parent",)):
                name = f"{kind}-{error}-{'child' if parents else 'root'}"
                manager.register(
                    name,
                    wrap(make),
                    interval=INTERVAL,
                    depends_on=parents,
                    heal=wrap(make),
                    heal_backoff_initial=INTERVAL,
                    heal_max_attempts=100,
                )
                names[name] = error
    with caplog.at_level(logging.WARNING):
        async with manager:
            await _until(
                lambda: all(
                    c.check_count >= 4 and c.heal_attempts >= 2
                    for n, c in manager.snapshot().components.items()
                    if n != "parent"
                )
            )
            system = manager.snapshot()
    for name, error in names.items():
        component = system.components[name]
        assert component.status is HealthStatus.UNHEALTHY, name
        assert component.last_result is not None
        assert component.last_result.error == error, name
        assert component.last_heal_error in (error, None), name  # None: a heal just started
    assert system.components["parent"].status is HealthStatus.HEALTHY
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
