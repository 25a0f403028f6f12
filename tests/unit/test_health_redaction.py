"""Secrets never leave the manager: results are redacted when they are recorded (§9).

Hardening issue item 11: ``message=f"connect failed: {exc}"`` published a DSN password,
and ``error`` carried any text of any length. Every recorded result is now built by
``engined.core._health_result.make_result``, which redacts the message, the error and
the string values of ``details`` and cuts the text; snapshots, ``component()``,
``watch()`` and listeners all read what was recorded.
"""

from __future__ import annotations

from typing import Any

import pytest

from engined import ComponentType, HealthCheckManager, HealthCheckResult, HealthStatus
from engined.testing import FakeClock

DSN = "postgres://app:hunter2@db.internal:5432/prod"


def _manager() -> HealthCheckManager:
    return HealthCheckManager(clock=FakeClock())


def _reporting(**fields: Any) -> Any:
    """A check returning one UNHEALTHY result with ``fields``."""

    def check() -> HealthCheckResult:
        return HealthCheckResult("db", ComponentType.DATABASE, HealthStatus.UNHEALTHY, **fields)

    return check


async def test_a_dsn_password_in_the_message_is_masked() -> None:
    """``connect failed: postgres://app:hunter2@...`` is recorded with the password masked."""
    manager = _manager()
    manager.register("db", _reporting(message=f"connect failed: {DSN}"))
    health = await manager.run_check("db")
    assert health.last_result is not None
    assert health.last_result.message == "connect failed: postgres://app:***@db.internal:5432/prod"
    assert "hunter2" not in repr(manager.snapshot())


async def test_secret_details_are_masked_and_the_checks_own_mapping_is_untouched() -> None:
    """Values of secret keys become ``***``, strings are redacted, the original dict is kept."""
    details = {"api_key": "abc123", "dsn": DSN, "latency_ms": 12, "nested": {"token": "t0k"}}
    manager = _manager()
    manager.register("db", _reporting(details=details))
    result = (await manager.run_check("db")).last_result
    assert result is not None
    assert result.details == {
        "api_key": "***",
        "dsn": "postgres://app:***@db.internal:5432/prod",
        "latency_ms": 12,
        "nested": {"token": "***"},
    }
    assert details["api_key"] == "abc123"


async def test_a_long_error_with_a_token_is_masked_and_cut() -> None:
    """A check's own ``error`` is redacted and cut to 256 characters like a message."""
    error = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig " + "x" * 1000
    manager = _manager()
    manager.register("db", _reporting(error=error))
    result = (await manager.run_check("db")).last_result
    assert result is not None
    assert result.error is not None
    assert "eyJhbGciOiJIUzI1NiJ9" not in result.error
    assert result.error.startswith("Authorization: Bearer ***")
    assert len(result.error) == 256


async def test_redaction_happens_before_the_cut() -> None:
    """A password that straddles the 256th character is masked, never half-shown."""
    message = "x" * 240 + " password=correcthorsebatterystaple"
    manager = _manager()
    manager.register("db", _reporting(message=message))
    result = (await manager.run_check("db")).last_result
    assert result is not None
    assert "correct" not in result.message
    assert result.message.endswith("password=***")


async def test_watchers_and_listeners_see_only_redacted_text() -> None:
    """What watch() yields is the redacted record."""
    manager = _manager()
    manager.register("db", _reporting(message=f"down: {DSN}", details={"password": "pw"}))
    watcher = manager.watch()
    await anext(watcher)
    await manager.run_check("db")
    health = await anext(watcher)
    await watcher.aclose()
    assert "hunter2" not in repr(health)
    assert "'pw'" not in repr(health)


@pytest.mark.parametrize(
    "message",
    ["all good", "latency 12 ms, 3 replicas", ""],
)
async def test_text_without_secrets_is_recorded_unchanged(message: str) -> None:
    """Plain messages pass through redaction untouched."""
    manager = _manager()

    def check() -> HealthCheckResult:
        return HealthCheckResult("db", "database", "healthy", message=message)

    manager.register("db", check)
    result = (await manager.run_check("db")).last_result
    assert result is not None
    assert result.message == message
