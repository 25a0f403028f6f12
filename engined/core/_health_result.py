"""Results as the manager records them: the one place every recorded result is built.

A check may return a ``HealthCheckResult``, a ``HealthStatus`` or a bool, or raise, time
out, find its previous run still going, or find no worker thread. Each of those ends
here as a result carrying the component's registered name and type, and every one of
them is built by :func:`make_result`: public text is redacted and cut to size there
(DESIGN.md §9), so whatever the manager publishes, over any interface, went through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus
from engined.core._health_run import Outcome
from engined.core._redact import redact, redact_details

__all__ = ["MAX_MESSAGE", "failed", "make_result", "normalize", "result_of"]

MAX_MESSAGE = 256  # characters of a check's message kept in its result


def make_result(
    *,
    name: str,
    component_type: ComponentType,
    status: HealthStatus,
    message: str,
    details: Mapping[str, Any],
    error: str | None,
    duration: float,
    timestamp: float,
) -> HealthCheckResult:
    """Build a result the manager records: every recorded result is made here, and only here.

    Public output carries statuses and short, redacted text only (DESIGN.md §9): secrets
    in the message, the error and the string values of ``details`` are masked (a copy of
    ``details`` is kept, never the check's own mapping), then the message and the error
    are cut to ``MAX_MESSAGE`` characters.
    """
    message = _short(redact(message)) if message else message
    if error is not None:
        error = _short(redact(error))
    details = redact_details(details) if details else {}
    # Every field here is already typed and checked (a check's own result was validated
    # when it was made), so skip validation: this runs for every check of every component.
    return HealthCheckResult.model_construct(
        component=name,
        component_type=component_type,
        status=status,
        message=message,
        details=details,
        duration=max(duration, 0.0),
        timestamp=timestamp,
        error=error,
    )


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def normalize(
    raw: object,
    *,
    name: str,
    component_type: ComponentType,
    duration: float,
    timestamp: float,
    degraded_latency: float | None,
) -> HealthCheckResult:
    """Turn what a check returned into a result for ``name``.

    A ``HealthCheckResult`` keeps its status, message and details; a ``HealthStatus`` or
    a bool becomes a result; anything else is UNHEALTHY with ``error`` naming the type. A
    passing check slower than ``degraded_latency`` is DEGRADED.
    """
    if isinstance(raw, HealthCheckResult):
        status, message, details, error = raw.status, raw.message, raw.details, raw.error
    elif isinstance(raw, HealthStatus):
        status, message, details, error = raw, "", {}, None
    elif isinstance(raw, bool):
        status = HealthStatus.HEALTHY if raw else HealthStatus.UNHEALTHY
        message, details, error = "", {}, None
    else:
        status, message, details = HealthStatus.UNHEALTHY, "check returned no verdict", {}
        error = f"invalid result ({type(raw).__name__})"
    if (
        status is HealthStatus.HEALTHY
        and degraded_latency is not None
        and duration > degraded_latency
    ):
        status = HealthStatus.DEGRADED
        message = message or f"slower than {degraded_latency:g}s"
    return make_result(
        name=name,
        component_type=component_type,
        status=status,
        message=message,
        details=details,
        error=error,
        duration=duration,
        timestamp=timestamp,
    )


def failed(
    name: str,
    component_type: ComponentType,
    error: str,
    *,
    duration: float,
    timestamp: float,
    status: HealthStatus = HealthStatus.UNHEALTHY,
) -> HealthCheckResult:
    """A result carrying only ``error``: a type name, "timeout", "stuck" (UNHEALTHY by default)."""
    return make_result(
        name=name,
        component_type=component_type,
        status=status,
        message="",
        details={},
        error=error,
        duration=duration,
        timestamp=timestamp,
    )


def result_of(
    outcome: Outcome,
    *,
    name: str,
    component_type: ComponentType,
    duration: float,
    timestamp: float,
    degraded_latency: float | None,
) -> HealthCheckResult:
    """The result of one check run.

    A check that never started for want of a worker thread is UNKNOWN (neutral: it moves
    neither the status nor the streaks, and spends no heal attempt) with error
    ``"no worker thread"``; the pool logs the cap that was hit.
    """
    if outcome.kind == "value":
        return normalize(
            outcome.value,
            name=name,
            component_type=component_type,
            duration=duration,
            timestamp=timestamp,
            degraded_latency=degraded_latency,
        )
    if outcome.kind == "no_thread":
        return failed(
            name,
            component_type,
            "no worker thread",
            duration=0.0,
            timestamp=timestamp,
            status=HealthStatus.UNKNOWN,
        )
    error = "timeout" if outcome.kind == "timeout" else str(outcome.value)
    return failed(name, component_type, error, duration=duration, timestamp=timestamp)
