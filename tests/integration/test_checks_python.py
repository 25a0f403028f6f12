"""PythonCheck and PythonHeal against a module the test writes into tmp_path."""

from __future__ import annotations

import asyncio
import itertools
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from rpc_server_support import eventually

from engined import ComponentType, HealthCheckManager, HealthCheckResult, HealthStatus
from engined.checks import PythonCheck, PythonHeal, load_callable

pytestmark = pytest.mark.integration

_SOURCE = textwrap.dedent(
    """
    import threading

    from engined import ComponentType, HealthCheckResult, HealthStatus

    calls = []
    release = threading.Event()


    def passing():
        calls.append(threading.get_ident())
        return True


    async def degraded():
        return HealthStatus.DEGRADED


    def full_result():
        return HealthCheckResult(
            "ignored", ComponentType.CACHE, HealthStatus.UNHEALTHY, message="evictions high"
        )


    def broken():
        raise RuntimeError("password=hunter2 leaked in text")


    def no_verdict():
        return 42


    def hangs():
        release.wait(30)
        return True


    class Ops:
        @staticmethod
        def restart(trigger):
            calls.append(trigger.component)
            return None


    def refuse(trigger):
        return False


    async def restart_async(trigger):
        calls.append(trigger.message)
        return True
    """
)

_names = itertools.count()


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ModuleType]]:
    """A fresh module on sys.path: its name, and the module once imported by the checks."""
    name = f"engined_checks_probe_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = load_callable(f"{name}:passing").__module__
    yield name, sys.modules[module]
    sys.modules[module].release.set()
    del sys.modules[module]


def _trigger() -> HealthCheckResult:
    return HealthCheckResult(
        "db", ComponentType.DATABASE, HealthStatus.UNHEALTHY, message="refused"
    )


async def test_a_sync_function_runs_in_a_thread_and_its_bool_passes_through(
    probe: tuple[str, ModuleType],
) -> None:
    """A sync function runs off the event loop's thread; its True comes back unchanged."""
    name, module = probe
    assert await PythonCheck(f"{name}:passing")() is True
    assert module.calls == [module.calls[0]]
    assert module.calls[0] != threading.get_ident()


async def test_an_async_function_is_awaited_and_its_status_passes_through(
    probe: tuple[str, ModuleType],
) -> None:
    """An async function's HealthStatus is returned as it is, for the manager to normalize."""
    name, _ = probe
    assert await PythonCheck(f"{name}:degraded")() is HealthStatus.DEGRADED


async def test_a_full_result_passes_through_and_the_manager_renames_it(
    probe: tuple[str, ModuleType],
) -> None:
    """A HealthCheckResult is passed on; the manager records it under the registered name."""
    name, _ = probe
    manager = HealthCheckManager()
    manager.register("cache", PythonCheck(f"{name}:full_result"), component_type="cache")
    health = await manager.run_check("cache")
    assert health.last_result is not None
    assert health.last_result.component == "cache"
    assert health.last_result.status is HealthStatus.UNHEALTHY
    assert health.last_result.message == "evictions high"


async def test_an_exception_propagates_and_the_manager_records_its_type(
    probe: tuple[str, ModuleType],
) -> None:
    """The function's exception reaches the manager, which keeps its type, not its text."""
    name, _ = probe
    check = PythonCheck(f"{name}:broken")
    with pytest.raises(RuntimeError):
        await check()
    manager = HealthCheckManager()
    manager.register("job", check)
    health = await manager.run_check("job")
    assert health.last_result is not None
    assert health.last_result.error == "RuntimeError"
    assert "hunter2" not in repr(health.last_result)


async def test_a_value_that_is_no_verdict_is_unhealthy(probe: tuple[str, ModuleType]) -> None:
    """Returning 42 is UNHEALTHY with error "invalid result (int)", as the manager says it."""
    name, _ = probe
    result = await PythonCheck(f"{name}:no_verdict", name="job")()
    assert isinstance(result, HealthCheckResult)
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error == "invalid result (int)"
    assert result.component == "job"


async def test_a_hung_sync_function_is_not_started_twice(probe: tuple[str, ModuleType]) -> None:
    """After a timed-out call whose thread still runs, the next call reports "stuck"."""
    name, module = probe
    check = PythonCheck(f"{name}:hangs")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await check()
    result = await check()
    assert isinstance(result, HealthCheckResult)
    assert result.error == "stuck"
    assert result.status is HealthStatus.UNHEALTHY
    module.release.set()
    await eventually(lambda: not check._caller.thread_busy)  # the thread ends once released
    assert await check() is True


async def test_a_heal_gets_the_trigger_and_none_counts_as_success(
    probe: tuple[str, ModuleType],
) -> None:
    """A sync heal (a static method here) is called with the trigger; None is success."""
    name, module = probe
    assert await PythonHeal(f"{name}:Ops.restart")(_trigger()) is True
    assert module.calls == ["db"]


async def test_a_heal_returning_false_fails(probe: tuple[str, ModuleType]) -> None:
    """Only False means a failed heal."""
    name, _ = probe
    assert await PythonHeal(f"{name}:refuse")(_trigger()) is False


async def test_a_manager_runs_an_async_python_heal(probe: tuple[str, ModuleType]) -> None:
    """Through the manager, an async heal is awaited with the failing result."""
    name, module = probe
    manager = HealthCheckManager()
    manager.register(
        "db",
        PythonCheck(f"{name}:broken"),
        heal=PythonHeal(f"{name}:restart_async"),
    )
    health = await manager.run_check("db")
    assert health.heal_attempts == 1
    assert health.last_heal_error is None
    assert module.calls == [""]  # the trigger's message: an exception leaves it empty
