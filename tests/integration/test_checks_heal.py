"""CommandHeal with real processes, alone and driven by a real HealthCheckManager."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import pytest

from engined import ComponentType, HealState, HealthCheckManager, HealthCheckResult, HealthStatus
from engined.checks import CommandHeal, TcpCheck

pytestmark = pytest.mark.integration


def _trigger(message: str = "connection refused") -> HealthCheckResult:
    return HealthCheckResult("db", ComponentType.DATABASE, HealthStatus.UNHEALTHY, message=message)


def _closed_port() -> int:
    """A loopback port that was just free: opened by the test, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


_DUMP_ENV = (
    "import os, sys; "
    "open(sys.argv[1], 'w').write('|'.join(os.environ.get(k, '-') for k in "
    "('ENGINED_COMPONENT', 'ENGINED_COMPONENT_STATUS', 'ENGINED_COMPONENT_MESSAGE', 'EXTRA')))"
)


async def test_the_heal_command_learns_the_trigger_from_its_environment(tmp_path: Path) -> None:
    """ENGINED_COMPONENT, _STATUS and _MESSAGE carry the trigger; env is added too."""
    marker = tmp_path / "env.txt"
    heal = CommandHeal([sys.executable, "-c", _DUMP_ENV, str(marker)], env={"EXTRA": "1"})
    assert await heal(_trigger("port 5432 closed")) is True
    assert marker.read_text() == "db|unhealthy|port 5432 closed|1"


async def test_a_heal_command_failing_returns_false_and_logs_its_output(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A non-zero exit is a failed heal; its outcome and redacted output are logged."""
    heal = CommandHeal(["sh", "-c", "echo restart failed: token=abc123; exit 3"])
    with caplog.at_level(logging.INFO, logger="engined.checks"):
        assert await heal(_trigger()) is False
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "exit 3: restart failed: token=***" in record.getMessage()
    assert "abc123" not in record.getMessage()


async def test_a_heal_command_that_cannot_start_raises() -> None:
    """A missing program raises, so the manager records its type as last_heal_error."""
    with pytest.raises(FileNotFoundError):
        await CommandHeal(["/nonexistent/restart-db"])(_trigger())


async def test_a_manager_heals_a_closed_port_with_a_command(tmp_path: Path) -> None:
    """A tcp check on a closed port fails; the manager runs the heal, which writes a marker."""
    marker = tmp_path / "healed"
    manager = HealthCheckManager()
    manager.register(
        "db",
        TcpCheck(f"127.0.0.1:{_closed_port()}"),
        component_type="database",
        heal=CommandHeal(["sh", "-c", f'echo "$ENGINED_COMPONENT" > {marker}']),
        timeout=2.0,
    )
    health = await manager.run_check("db")
    assert health.status is HealthStatus.UNHEALTHY
    assert health.last_result is not None
    assert health.last_result.message == "connection refused"
    assert health.heal_attempts == 1
    assert health.heal_state is HealState.BACKOFF
    assert health.last_heal_error is None  # the heal itself succeeded
    assert marker.read_text() == "db\n"


async def test_a_failing_heal_command_is_recorded_as_returned_false(tmp_path: Path) -> None:
    """A heal command exiting non-zero shows as last_heal_error "returned False"."""
    manager = HealthCheckManager()
    manager.register(
        "db",
        TcpCheck(f"127.0.0.1:{_closed_port()}"),
        heal=CommandHeal(["false"]),
        timeout=2.0,
    )
    health = await manager.run_check("db")
    assert health.heal_attempts == 1
    assert health.last_heal_error == "returned False"
