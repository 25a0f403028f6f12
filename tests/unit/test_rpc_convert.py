"""Snapshots to engined.v1 messages (engined/rpc/_convert.py): every field, no network."""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import uuid
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

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
from engined.rpc import _convert as convert
from engined.v1 import engined_pb2 as pb

NOW_NS = 1_800_000_000_123_456_789


def _result(**fields: Any) -> HealthCheckResult:
    fields.setdefault("timestamp", 90.0)
    return HealthCheckResult("db", ComponentType.DATABASE, HealthStatus.DEGRADED, **fields)


def _component(**fields: Any) -> ComponentHealth:
    values: dict[str, Any] = {
        "name": "db",
        "component_type": ComponentType.DATABASE,
        "status": HealthStatus.UNHEALTHY,
        "critical": False,
        "last_result": None,
        "check_count": 7,
        "consecutive_failures": 3,
        "consecutive_successes": 0,
        "heal_attempts": 2,
        "heal_state": HealState.BACKOFF,
        "last_heal_error": "timeout",
    }
    values.update(fields)
    return ComponentHealth(**values)


def _metrics(**fields: Any) -> CircuitBreakerMetrics:
    values: dict[str, Any] = {
        "name": "rpc:billing",
        "state": CircuitState.OPEN,
        "total_calls": 20,
        "successful_calls": 11,
        "failed_calls": 8,
        "ignored_calls": 1,
        "rejected_calls": 5,
        "slow_calls": 2,
        "consecutive_failures": 4,
        "failure_rate": 0.4,
        "slow_call_rate": 0.1,
        "times_opened": 2,
        "retry_after": 12.5,
        "transitions": {
            (CircuitState.HALF_OPEN, CircuitState.OPEN): 1,
            (CircuitState.CLOSED, CircuitState.OPEN): 1,
            (CircuitState.OPEN, CircuitState.HALF_OPEN): 1,
        },
    }
    values.update(fields)
    return CircuitBreakerMetrics(**values)


@pytest.mark.parametrize(
    ("mapping", "enum_type", "proto_enum", "prefix"),
    [
        (convert.HEALTH_STATUS, HealthStatus, pb.HealthStatus, "HEALTH_STATUS_"),
        (convert.COMPONENT_TYPE, ComponentType, pb.ComponentType, "COMPONENT_TYPE_"),
        (convert.HEAL_STATE, HealState, pb.HealState, "HEAL_STATE_"),
        (convert.CIRCUIT_STATE, CircuitState, pb.CircuitState, "CIRCUIT_STATE_"),
    ],
)
def test_every_python_enum_member_maps_to_the_proto_value_of_its_name(
    mapping: Any, enum_type: type[enum.Enum], proto_enum: Any, prefix: str
) -> None:
    """Each member maps to ``<PREFIX><NAME>``, never UNSPECIFIED; the proto has no extra value."""
    assert set(mapping) == set(enum_type)
    for member in enum_type:
        assert proto_enum.Name(mapping[member]) == prefix + member.name
        assert mapping[member] != 0
    assert len(proto_enum.keys()) == len(enum_type) + 1  # + UNSPECIFIED


def test_result_maps_every_field() -> None:
    """Component, type, status, message, details, duration, age and error all reach the message."""
    result = _result(
        message="slow", details={"latency_ms": 12}, duration=0.25, error="TimeoutError"
    )
    message = convert.result_message(result, now=100.0)
    assert message.component == "db"
    assert message.component_type == pb.COMPONENT_TYPE_DATABASE
    assert message.status == pb.HEALTH_STATUS_DEGRADED
    assert message.message == "slow"
    assert json_format.MessageToDict(message.details) == {"latency_ms": 12}
    assert message.duration.ToNanoseconds() == 250_000_000
    assert message.age.ToNanoseconds() == 10_000_000_000  # 100.0 - 90.0 on the manager's clock
    assert message.error == "TimeoutError"


def test_result_leaves_absent_optional_fields_unset() -> None:
    """No details, duration, timestamp or error: the fields are unset, not zero."""
    message = convert.result_message(_result(timestamp=None), now=5.0)
    for field in ("details", "duration", "age", "error"):
        assert not message.HasField(field), field


def test_age_is_never_negative() -> None:
    """A result stamped after the snapshot's reading (another thread) has age zero, not < 0."""
    message = convert.result_message(_result(timestamp=10.0), now=9.0)
    assert message.HasField("age")
    assert message.age.ToNanoseconds() == 0


def test_component_maps_every_field() -> None:
    """Every ComponentHealth field, the last result included, reaches the message."""
    component = _component(last_result=_result(message="down"))
    message = convert.component_message(component, now=95.0)
    assert message.name == "db"
    assert message.component_type == pb.COMPONENT_TYPE_DATABASE
    assert message.status == pb.HEALTH_STATUS_UNHEALTHY
    assert message.critical is False
    assert (message.check_count, message.consecutive_failures) == (7, 3)
    assert (message.consecutive_successes, message.heal_attempts) == (0, 2)
    assert message.heal_state == pb.HEAL_STATE_BACKOFF
    assert message.last_heal_error == "timeout"
    assert message.last_result.message == "down"
    assert message.last_result.age.ToNanoseconds() == 5_000_000_000


def test_component_without_result_or_heal_error_leaves_them_unset() -> None:
    """Before the first check there is no last_result; a clean heal record has no error."""
    message = convert.component_message(_component(last_heal_error=None), now=0.0)
    assert not message.HasField("last_result")
    assert not message.HasField("last_heal_error")


def test_system_health_sorts_components_and_stamps_observed_at() -> None:
    """Components come sorted by name, ages count to the snapshot's own reading."""
    health = SystemHealth(
        HealthStatus.DEGRADED,
        {
            "zeta": _component(name="zeta", last_result=_result(timestamp=40.0)),
            "alpha": _component(name="alpha"),
        },
        timestamp=42.0,
    )
    message = convert.system_message(health, NOW_NS)
    assert message.overall_status == pb.HEALTH_STATUS_DEGRADED
    assert [c.name for c in message.components] == ["alpha", "zeta"]
    assert message.components[1].last_result.age.ToNanoseconds() == 2_000_000_000
    assert message.observed_at.ToNanoseconds() == NOW_NS


def test_empty_system_health_has_no_components() -> None:
    """A manager with no components is HEALTHY with an empty list."""
    message = convert.system_message(SystemHealth(HealthStatus.HEALTHY, {}, 0.0), NOW_NS)
    assert message.overall_status == pb.HEALTH_STATUS_HEALTHY
    assert list(message.components) == []


def test_breaker_metrics_map_every_field() -> None:
    """Every counter, both rates, retry_after and the transitions reach the message."""
    message = convert.breaker_message(_metrics())
    assert message.name == "rpc:billing"
    assert message.state == pb.CIRCUIT_STATE_OPEN
    counters = (
        message.total_calls,
        message.successful_calls,
        message.failed_calls,
        message.ignored_calls,
        message.rejected_calls,
        message.slow_calls,
        message.consecutive_failures,
        message.times_opened,
    )
    assert counters == (20, 11, 8, 1, 5, 2, 4, 2)
    assert message.failure_rate == pytest.approx(0.4)
    assert message.slow_call_rate == pytest.approx(0.1)
    assert message.retry_after.ToNanoseconds() == 12_500_000_000
    pairs = [(t.from_state, t.to_state, t.count) for t in message.transitions]
    assert pairs == [
        (pb.CIRCUIT_STATE_CLOSED, pb.CIRCUIT_STATE_OPEN, 1),
        (pb.CIRCUIT_STATE_OPEN, pb.CIRCUIT_STATE_HALF_OPEN, 1),
        (pb.CIRCUIT_STATE_HALF_OPEN, pb.CIRCUIT_STATE_OPEN, 1),
    ]


def test_breaker_rates_and_retry_after_unset_when_none() -> None:
    """Below minimum_calls the rates are unset (not 0.0); outside OPEN retry_after is unset."""
    message = convert.breaker_message(
        _metrics(
            state=CircuitState.CLOSED,
            failure_rate=None,
            slow_call_rate=None,
            retry_after=None,
            transitions={},
        )
    )
    assert not message.HasField("failure_rate")
    assert not message.HasField("slow_call_rate")
    assert not message.HasField("retry_after")
    assert list(message.transitions) == []


def test_a_zero_failure_rate_is_set_and_distinct_from_unknown() -> None:
    """failure_rate 0.0 (enough calls, none failed) is present: proto3 optional keeps it."""
    message = convert.breaker_message(_metrics(failure_rate=0.0))
    assert message.HasField("failure_rate")
    assert message.failure_rate == 0.0


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (0.0, 0),
        (1.5, 1_500_000_000),
        (-3.0, 0),
        (math.nan, 0),
        (math.inf, 315_576_000_000 * 10**9),
        (1e300, 315_576_000_000 * 10**9),
    ],
)
def test_duration_is_clamped_to_what_a_duration_can_hold(seconds: float, nanos: int) -> None:
    """Negative and NaN spans are zero; huge ones are the largest Duration, never an error."""
    assert convert.duration(seconds).ToNanoseconds() == nanos


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Opaque:
    def __repr__(self) -> str:
        return "Opaque(password=hunter2)"

    __str__ = __repr__


def _details(details: dict[Any, Any]) -> Any:
    return json_format.MessageToDict(convert.details_struct(details))


def test_details_keep_json_values() -> None:
    """Strings, numbers, booleans, null, lists and nested maps keep their values."""
    details = {
        "s": "x",
        "i": 3,
        "f": 0.5,
        "b": True,
        "n": None,
        "l": [1, "a", []],
        "m": {"k": [{}]},
    }
    assert _details(details) == details


def test_details_convert_what_json_cannot_carry() -> None:
    """Enums, dates, spans, uuids, decimals, tuples, sets and non-finite numbers become JSON."""
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    out = _details(
        {
            "state": CircuitState.OPEN,
            "color": Color.RED,
            "level": Level.HIGH,
            "when": when,
            "day": datetime.date(2026, 1, 2),
            "span": datetime.timedelta(seconds=1.5),
            "id": ident,
            "price": decimal.Decimal("1.25"),
            "bad_price": decimal.Decimal("sNaN"),
            "pair": (1, 2),
            "set": frozenset({4}),
            "nan": math.nan,
            "inf": math.inf,
            "ninf": -math.inf,
            "big": 2**64,
        }
    )
    assert out == {
        "state": "open",
        "color": "red",
        "level": 3,
        "when": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "span": 1.5,
        "id": str(ident),
        "price": 1.25,
        "bad_price": "NaN",
        "pair": [1, 2],
        "set": [4],
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "big": str(2**64),
    }


def test_details_never_show_the_text_of_unknown_objects() -> None:
    """An arbitrary object (whose repr could carry a secret) is sent as its type name only."""
    out = _details({"conn": Opaque(), Opaque(): 1, "bytes": b"token=abc"})
    assert out == {"conn": "<Opaque>", "<Opaque>": 1, "bytes": "<bytes>"}
    assert "hunter2" not in str(convert.details_struct({"conn": Opaque()}))


def test_details_keys_are_written_as_json_writes_them() -> None:
    """Non-string keys become the text json.dumps would use."""
    out = _details(
        {2: "a", 1.5: "b", True: "c", None: "d", Level.HIGH: "e", CircuitState.OPEN: "f"}
    )
    assert out == {"2": "a", "1.5": "b", "true": "c", "null": "d", "3": "e", "open": "f"}


def test_details_nested_too_deep_are_cut() -> None:
    """Nesting beyond MAX_DETAILS_DEPTH ends in a marker: a Struct never hits recursion limits."""
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(convert.MAX_DETAILS_DEPTH + 5):
        node["d"] = {}
        node = node["d"]
    struct = convert.details_struct(deep)
    depth, value = 0, struct_pb2.Value(struct_value=struct)
    while value.HasField("struct_value"):
        value = value.struct_value.fields["d"]
        depth += 1
    assert value.string_value == "<nested too deep>"
    assert depth <= convert.MAX_DETAILS_DEPTH + 1


def test_wall_time_is_nanoseconds_since_the_epoch() -> None:
    """The one wall-clock read gives an instant after 2020 as an int of nanoseconds."""
    now = convert.wall_time_ns()
    assert isinstance(now, int)
    assert now > 1_577_836_800 * 10**9
    assert convert.timestamp(now).ToNanoseconds() == now
