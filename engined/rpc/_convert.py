"""Health and breaker snapshots as engined.v1 messages: pure functions, no network, no clock.

The manager times everything on its monotonic clock, whose readings mean nothing outside
the process. So no manager instant is sent as a wall-clock ``Timestamp``: a reply carries
``observed_at`` (the one wall-clock reading, taken by :func:`wall_time_ns` when the reply
is built) and ages as ``Duration`` s measured on the manager's clock up to its snapshot.

``details`` become a ``google.protobuf.Struct``. They were redacted when the manager
recorded them, but redaction keeps values that are not strings as they are, so nothing
here ever calls ``str()`` or ``repr()`` on an unknown object (its text could carry a
secret): such a value is sent as ``"<TypeName>"``.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from engined import (
    CircuitBreakerMetrics,
    CircuitState,
    ComponentHealth,
    ComponentType,
    HealState,
    HealthCheckResult,
    HealthStatus,
    SystemHealth,
)
from engined.v1 import engined_pb2 as pb

__all__ = [
    "breaker_message",
    "component_message",
    "details_struct",
    "duration",
    "result_message",
    "system_message",
    "timestamp",
    "wall_time_ns",
]

MAX_DETAILS_DEPTH: Final = 16
"""Containers nested deeper in ``details`` are sent as ``"<nested too deep>"``."""

_MAX_DURATION_S: Final = 315_576_000_000  # the largest google.protobuf.Duration
_EXACT_INT: Final = 2**53  # larger ints do not survive a double: sent as strings

HEALTH_STATUS: Final[Mapping[HealthStatus, pb.HealthStatus.ValueType]] = {
    HealthStatus.HEALTHY: pb.HEALTH_STATUS_HEALTHY,
    HealthStatus.DEGRADED: pb.HEALTH_STATUS_DEGRADED,
    HealthStatus.UNHEALTHY: pb.HEALTH_STATUS_UNHEALTHY,
    HealthStatus.UNKNOWN: pb.HEALTH_STATUS_UNKNOWN,
}
COMPONENT_TYPE: Final[Mapping[ComponentType, pb.ComponentType.ValueType]] = {
    ComponentType.SERVICE: pb.COMPONENT_TYPE_SERVICE,
    ComponentType.DATABASE: pb.COMPONENT_TYPE_DATABASE,
    ComponentType.CACHE: pb.COMPONENT_TYPE_CACHE,
    ComponentType.MESSAGE_QUEUE: pb.COMPONENT_TYPE_MESSAGE_QUEUE,
    ComponentType.RPC: pb.COMPONENT_TYPE_RPC,
    ComponentType.CIRCUIT_BREAKER: pb.COMPONENT_TYPE_CIRCUIT_BREAKER,
    ComponentType.EXTERNAL_API: pb.COMPONENT_TYPE_EXTERNAL_API,
    ComponentType.STORAGE: pb.COMPONENT_TYPE_STORAGE,
    ComponentType.CUSTOM: pb.COMPONENT_TYPE_CUSTOM,
}
HEAL_STATE: Final[Mapping[HealState, pb.HealState.ValueType]] = {
    HealState.IDLE: pb.HEAL_STATE_IDLE,
    HealState.HEALING: pb.HEAL_STATE_HEALING,
    HealState.BACKOFF: pb.HEAL_STATE_BACKOFF,
    HealState.EXHAUSTED: pb.HEAL_STATE_EXHAUSTED,
    HealState.SUPPRESSED: pb.HEAL_STATE_SUPPRESSED,
}
CIRCUIT_STATE: Final[Mapping[CircuitState, pb.CircuitState.ValueType]] = {
    CircuitState.CLOSED: pb.CIRCUIT_STATE_CLOSED,
    CircuitState.OPEN: pb.CIRCUIT_STATE_OPEN,
    CircuitState.HALF_OPEN: pb.CIRCUIT_STATE_HALF_OPEN,
    CircuitState.FORCED_OPEN: pb.CIRCUIT_STATE_FORCED_OPEN,
    CircuitState.DISABLED: pb.CIRCUIT_STATE_DISABLED,
}


def wall_time_ns() -> int:
    """Nanoseconds since the Unix epoch, now: the one wall-clock read of the server side.

    Real time: ``observed_at`` must be an instant a client can compare with its own
    clock, which no engined Clock gives (they are monotonic). Nothing is measured or
    waited on with it; servicers take it as a parameter so tests can fix it.
    """
    return time.time_ns()  # real time: the wall clock, read only to stamp observed_at


def timestamp(ns: int) -> timestamp_pb2.Timestamp:
    """A ``Timestamp`` of ``ns`` nanoseconds since the Unix epoch."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def duration(seconds: float) -> duration_pb2.Duration:
    """A ``Duration`` of ``seconds``, clamped to [0, the largest a Duration holds].

    Every span sent is non-negative (an age, a check's run time, time left in OPEN); a
    negative one could only come from a clock going backwards, and is sent as zero.
    """
    span = duration_pb2.Duration()
    if not seconds > 0:  # also NaN
        return span
    if seconds >= _MAX_DURATION_S:
        span.seconds = _MAX_DURATION_S
        return span
    span.FromNanoseconds(round(seconds * 1e9))
    return span


def details_struct(details: Mapping[str, Any]) -> struct_pb2.Struct:
    """``details`` as a ``Struct``; values JSON cannot carry become strings (see module doc)."""
    struct = struct_pb2.Struct()
    _fill_struct(struct, details, 0)
    return struct


def _fill_struct(struct: struct_pb2.Struct, mapping: Mapping[Any, Any], depth: int) -> None:
    for key, item in mapping.items():
        _fill_value(struct.fields[_key(key)], item, depth + 1)


def _key(key: object) -> str:
    """A mapping key as ``json.dumps`` would write it; an unknown object as ``"<TypeName>"``."""
    if isinstance(key, str):
        return str.__str__(key)  # a str enum's value
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _non_finite(key) if not math.isfinite(key) else float.__repr__(key)
    if isinstance(key, enum.Enum):
        return _key(key.value) if _plain(key.value) else key.name
    return f"<{type(key).__name__}>"


def _fill_value(value: struct_pb2.Value, item: object, depth: int) -> None:
    if item is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(item, bool):
        value.bool_value = item
    elif isinstance(item, str):
        value.string_value = str.__str__(item)
    elif isinstance(item, int):
        if abs(item) <= _EXACT_INT:
            value.number_value = item
        else:
            value.string_value = str(int(item))
    elif isinstance(item, float):
        if math.isfinite(item):
            value.number_value = item
        else:
            value.string_value = _non_finite(item)
    elif isinstance(item, decimal.Decimal):
        if item.is_finite():
            value.number_value = float(item)
        else:  # float() refuses a signalling NaN
            value.string_value = "NaN" if item.is_nan() else _non_finite(float(item))
    elif isinstance(item, enum.Enum):
        _fill_value(value, item.value if _plain(item.value) else item.name, depth)
    elif isinstance(item, datetime.date | datetime.time):
        value.string_value = item.isoformat()
    elif isinstance(item, datetime.timedelta):
        value.number_value = item.total_seconds()
    elif isinstance(item, uuid.UUID):
        value.string_value = str(item)
    elif depth > MAX_DETAILS_DEPTH and isinstance(item, Mapping | list | tuple | set | frozenset):
        value.string_value = "<nested too deep>"
    elif isinstance(item, Mapping):
        value.struct_value.SetInParent()  # an empty mapping is {}, not null
        _fill_struct(value.struct_value, item, depth)
    elif isinstance(item, list | tuple | set | frozenset):
        value.list_value.SetInParent()  # an empty list is [], not null
        values = value.list_value.values
        for element in item:
            _fill_value(values.add(), element, depth + 1)
    else:
        value.string_value = f"<{type(item).__name__}>"


def _non_finite(number: float) -> str:
    """NaN and the infinities as the proto3 JSON mapping spells doubles."""
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _plain(value: object) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def result_message(result: HealthCheckResult, now: float) -> pb.HealthCheckResult:
    """``result`` as a message; ``now`` is the manager clock's reading its age counts to."""
    message = pb.HealthCheckResult(
        component=result.component,
        component_type=COMPONENT_TYPE[result.component_type],
        status=HEALTH_STATUS[result.status],
        message=result.message,
    )
    if result.details:
        message.details.CopyFrom(details_struct(result.details))
    if result.duration is not None:
        message.duration.CopyFrom(duration(result.duration))
    if result.timestamp is not None:
        message.age.CopyFrom(duration(now - result.timestamp))
    if result.error is not None:
        message.error = result.error
    return message


def component_message(component: ComponentHealth, now: float) -> pb.ComponentHealth:
    """``component`` as a message; ``now`` is the manager clock's reading ages count to."""
    message = pb.ComponentHealth(
        name=component.name,
        component_type=COMPONENT_TYPE[component.component_type],
        status=HEALTH_STATUS[component.status],
        critical=component.critical,
        check_count=component.check_count,
        consecutive_failures=component.consecutive_failures,
        consecutive_successes=component.consecutive_successes,
        heal_attempts=component.heal_attempts,
        heal_state=HEAL_STATE[component.heal_state],
    )
    if component.last_result is not None:
        message.last_result.CopyFrom(result_message(component.last_result, now))
    if component.last_heal_error is not None:
        message.last_heal_error = component.last_heal_error
    return message


def system_message(health: SystemHealth, observed_at_ns: int) -> pb.SystemHealth:
    """``health`` as a message: components sorted by name, ages up to its own timestamp."""
    return pb.SystemHealth(
        overall_status=HEALTH_STATUS[health.overall_status],
        components=[
            component_message(health.components[name], health.timestamp)
            for name in sorted(health.components)
        ],
        observed_at=timestamp(observed_at_ns),
    )


def breaker_message(metrics: CircuitBreakerMetrics) -> pb.CircuitBreakerMetrics:
    """``metrics`` as a message: transitions sorted by their states' enum numbers."""
    message = pb.CircuitBreakerMetrics(
        name=metrics.name,
        state=CIRCUIT_STATE[metrics.state],
        total_calls=metrics.total_calls,
        successful_calls=metrics.successful_calls,
        failed_calls=metrics.failed_calls,
        ignored_calls=metrics.ignored_calls,
        rejected_calls=metrics.rejected_calls,
        slow_calls=metrics.slow_calls,
        consecutive_failures=metrics.consecutive_failures,
        times_opened=metrics.times_opened,
        transitions=sorted(
            (
                pb.CircuitBreakerTransition(
                    from_state=CIRCUIT_STATE[source], to_state=CIRCUIT_STATE[target], count=count
                )
                for (source, target), count in metrics.transitions.items()
            ),
            key=lambda t: (t.from_state, t.to_state),
        ),
    )
    if metrics.failure_rate is not None:
        message.failure_rate = metrics.failure_rate
    if metrics.slow_call_rate is not None:
        message.slow_call_rate = metrics.slow_call_rate
    if metrics.retry_after is not None:
        message.retry_after.CopyFrom(duration(metrics.retry_after))
    return message
