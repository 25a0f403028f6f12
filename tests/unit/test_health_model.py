"""Health values: statuses, results, per-check settings, snapshots and the roll-up."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engined import (
    ComponentHealth,
    ComponentType,
    HealState,
    HealthCheckConfig,
    HealthCheckResult,
    HealthStatus,
)
from engined.core.health import aggregate

S = HealthStatus


def _component(status: HealthStatus, *, critical: bool = True, name: str = "c") -> ComponentHealth:
    return ComponentHealth(
        name=name,
        component_type=ComponentType.CUSTOM,
        status=status,
        critical=critical,
        last_result=None,
        check_count=0,
        consecutive_failures=0,
        consecutive_successes=0,
        heal_attempts=0,
        heal_state=HealState.IDLE,
        last_heal_error=None,
    )


def _assert_clean(error: ValueError, model: str, *fields: str) -> None:
    """The refusal is a plain ValueError: one line per bad field, each named, no pydantic link."""
    text = str(error)
    assert type(error) is ValueError, type(error)
    assert "pydantic" not in text
    assert "http" not in text
    lines = text.splitlines()
    assert len(lines) == len(fields), lines
    for line, field in zip(lines, fields, strict=True):
        assert line.startswith(f"{model}.{field}"), line


def test_severity_orders_unhealthy_degraded_unknown_healthy() -> None:
    """UNKNOWN ranks above HEALTHY, so an unseen component never looks healthy (camunda#11896)."""
    ranked = sorted(HealthStatus, key=lambda s: s.severity)
    assert ranked == [S.HEALTHY, S.UNKNOWN, S.DEGRADED, S.UNHEALTHY]


def test_only_healthy_and_degraded_are_passing() -> None:
    """HEALTHY and DEGRADED results count towards recovery; the others do not."""
    assert {s for s in HealthStatus if s.passing} == {S.HEALTHY, S.DEGRADED}


def test_result_takes_the_first_three_fields_positionally_and_coerces_strings() -> None:
    """``HealthCheckResult("db", "database", "healthy")`` builds typed enums."""
    result = HealthCheckResult("db", "database", "healthy", message="ok", duration=0.01)
    assert result.component == "db"
    assert result.component_type is ComponentType.DATABASE
    assert result.status is HealthStatus.HEALTHY
    assert result.message == "ok"
    assert result.duration == 0.01


def test_result_takes_the_three_required_fields_by_keyword_too() -> None:
    """The keyword form builds the same value as the positional one, with no error by default."""
    result = HealthCheckResult(component="cache", component_type="cache", status="degraded")
    assert result == HealthCheckResult("cache", ComponentType.CACHE, HealthStatus.DEGRADED)
    assert (result.message, dict(result.details), result.error) == ("", {}, None)


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (("cache",), ("component_type", "status")),
        (("cache", "cache"), ("status",)),
        ((), ("component", "component_type", "status")),
    ],
)
def test_result_requires_component_type_and_status(
    args: tuple[Any, ...], missing: tuple[str, ...]
) -> None:
    """Leaving out the type or the status is refused: a result never defaults to UNKNOWN."""
    with pytest.raises(ValueError, match=r"required|must be one of") as info:
        HealthCheckResult(*args)
    _assert_clean(info.value, "HealthCheckResult", *missing)


@pytest.mark.parametrize("status", ["UNHEALTHY", "Healthy", "degraded", " unknown "])
@pytest.mark.parametrize("component_type", ["DATABASE", "Message_Queue", "rpc"])
def test_result_accepts_status_and_type_names_in_any_case(status: str, component_type: str) -> None:
    """Names in any case ("UNHEALTHY", "Healthy", "database") are the members they name."""
    result = HealthCheckResult("db", component_type, status)
    assert result.status is HealthStatus(status.strip().lower())
    assert result.component_type is ComponentType(component_type.lower())


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("status", ("db", "database", None)),
        ("status", ("db", "database", "garbage")),
        ("status", ("db", "database", 3)),
        ("component_type", ("db", None, "healthy")),
        ("component_type", ("db", "mainframe", "healthy")),
    ],
)
def test_result_refuses_a_bad_status_or_type_listing_the_valid_values(
    field: str, args: tuple[Any, ...]
) -> None:
    """None or garbage is a ValueError naming the field and listing every valid value."""
    with pytest.raises(ValueError, match=field) as info:
        HealthCheckResult(*args)
    _assert_clean(info.value, "HealthCheckResult", field)
    members = HealthStatus if field == "status" else ComponentType
    for member in members:
        assert member.value in str(info.value)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("", "database", "healthy"), {}, "component"),
        (("db", "database", "healthy"), {"duration": -0.5}, "duration"),
        (("db", "database", "healthy"), {"timestamp": float("nan")}, "timestamp"),
        (("db", "database", "healthy"), {"statuz": "healthy"}, "statuz"),
        (("db", "database", "healthy"), {"message": 5}, "message"),
    ],
)
def test_result_refuses_garbage_naming_the_field(
    args: tuple[Any, ...], kwargs: dict[str, Any], field: str
) -> None:
    """Any other bad value is a clean ValueError whose one line names the field."""
    with pytest.raises(ValueError, match=field) as info:
        HealthCheckResult(*args, **kwargs)
    _assert_clean(info.value, "HealthCheckResult", field)


def test_result_names_every_bad_field_on_its_own_line() -> None:
    """Three bad fields give three lines, in field order."""
    with pytest.raises(ValueError, match="status") as info:
        HealthCheckResult("db", "mainframe", None, duration=-1.0)
    _assert_clean(info.value, "HealthCheckResult", "component_type", "status", "duration")


def test_result_refuses_a_field_given_twice() -> None:
    """Passing a field both positionally and by keyword is a TypeError, not a silent override."""
    with pytest.raises(TypeError, match="component"):
        HealthCheckResult("db", component="other")


def test_result_is_frozen() -> None:
    """Results are values: assigning to one fails."""
    result = HealthCheckResult("db", "database", "healthy")
    with pytest.raises(ValidationError):
        result.status = HealthStatus.UNHEALTHY  # type: ignore[misc]


def test_config_defaults_match_the_design() -> None:
    """The defaults are DESIGN.md §5's, and the timeout defaults to min(5, interval)."""
    config = HealthCheckConfig()
    assert (config.interval, config.timeout, config.effective_timeout) == (10.0, None, 5.0)
    assert (config.failure_threshold, config.success_threshold, config.critical) == (1, 1, True)
    assert (config.heal_max_attempts, config.heal_timeout, config.heal_reset_after) == (
        3,
        30.0,
        60.0,
    )
    assert HealthCheckConfig(interval=2.0).effective_timeout == 2.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval": 0}, "interval"),
        ({"interval": -1.0}, "interval"),
        ({"interval": float("inf")}, "interval"),
        ({"timeout": 0}, "timeout"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"failure_threshold": "3"}, "failure_threshold"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"degraded_latency": 0}, "degraded_latency"),
        ({"critical": "yes"}, "critical"),
        ({"heal_max_attempts": 0}, "heal_max_attempts"),
        ({"heal_backoff_initial": 0}, "heal_backoff_initial"),
        ({"heal_backoff_multiplier": 0.5}, "heal_backoff_multiplier"),
        ({"heal_timeout": 0}, "heal_timeout"),
        ({"heal_reset_after": 0}, "heal_reset_after"),
        ({"intervall": 5}, "intervall"),
    ],
)
def test_config_refuses_bad_values_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    """Every bad setting is a clean ValueError whose one line names its field."""
    with pytest.raises(ValueError, match=field) as info:
        HealthCheckConfig(**kwargs)
    _assert_clean(info.value, "HealthCheckConfig", field)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"interval": 1.0, "timeout": 2.0}, ("timeout", "interval")),
        ({"heal_backoff_initial": 5.0, "heal_backoff_max": 1.0}, ("heal_backoff_max",)),
        ({"depends_on": ["db", ""]}, ("depends_on",)),
    ],
)
def test_config_refuses_inconsistent_settings_naming_them(
    kwargs: dict[str, Any], words: tuple[str, ...]
) -> None:
    """Rules between fields name every field involved in the message, without a link."""
    with pytest.raises(ValueError, match=words[0]) as info:
        HealthCheckConfig(**kwargs)
    assert type(info.value) is ValueError
    assert "pydantic" not in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_config_accepts_lists_for_depends_on_as_toml_gives_them() -> None:
    """TOML arrays arrive as lists; depends_on stores them as a tuple."""
    assert HealthCheckConfig(depends_on=["db", "cache"]).depends_on == ("db", "cache")


def test_heal_delay_grows_by_the_multiplier_up_to_the_cap() -> None:
    """Heal n is followed by min(initial * multiplier**(n-1), max) seconds of backoff."""
    config = HealthCheckConfig(
        heal_backoff_initial=1.0, heal_backoff_multiplier=2.0, heal_backoff_max=5.0
    )
    assert [config.heal_delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert config.heal_delay(10_000) == 5.0  # no OverflowError however many attempts


def test_snapshots_are_frozen() -> None:
    """ComponentHealth is a value: it cannot be changed after the fact."""
    component = _component(S.HEALTHY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        component.status = S.UNHEALTHY  # type: ignore[misc]


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], S.HEALTHY),
        ([(S.HEALTHY, True)], S.HEALTHY),
        ([(S.HEALTHY, True), (S.UNKNOWN, True)], S.UNKNOWN),
        ([(S.UNKNOWN, True), (S.DEGRADED, True)], S.DEGRADED),
        ([(S.DEGRADED, True), (S.UNHEALTHY, True)], S.UNHEALTHY),
        ([(S.HEALTHY, True), (S.UNHEALTHY, False)], S.DEGRADED),
        ([(S.HEALTHY, True), (S.DEGRADED, False)], S.DEGRADED),
        ([(S.HEALTHY, True), (S.UNKNOWN, False)], S.HEALTHY),
        ([(S.UNKNOWN, False)], S.HEALTHY),
        ([(S.UNHEALTHY, False), (S.UNKNOWN, True)], S.DEGRADED),
    ],
)
def test_aggregate_follows_the_documented_rules(
    members: list[tuple[HealthStatus, bool]], expected: HealthStatus
) -> None:
    """Critical members: worst wins; non-critical ones cap at DEGRADED; none at all is HEALTHY."""
    components = [_component(s, critical=c, name=f"c{i}") for i, (s, c) in enumerate(members)]
    assert aggregate(components) is expected


members_strategy = st.lists(
    st.tuples(st.sampled_from(list(HealthStatus)), st.booleans()), max_size=12
)


def _reference(members: list[tuple[HealthStatus, bool]]) -> HealthStatus:
    counted = [
        s if critical else S.DEGRADED
        for s, critical in members
        if critical or s in (S.UNHEALTHY, S.DEGRADED)
    ]
    return max(counted, key=lambda s: s.severity, default=S.HEALTHY)


@given(members_strategy)
def test_aggregate_matches_a_reference_model(members: list[tuple[HealthStatus, bool]]) -> None:
    """For any mix of members the roll-up equals the spec written as a one-line model."""
    components = [_component(s, critical=c) for s, c in members]
    assert aggregate(components) is _reference(members)


@given(members_strategy, st.sampled_from(list(HealthStatus)), st.booleans())
def test_aggregate_never_improves_when_a_member_is_added(
    members: list[tuple[HealthStatus, bool]], status: HealthStatus, critical: bool
) -> None:
    """Adding a component can only keep or worsen the overall status (monotone roll-up)."""
    before = aggregate(_component(s, critical=c) for s, c in members)
    after = aggregate(_component(s, critical=c) for s, c in [*members, (status, critical)])
    assert after.severity >= before.severity


@given(members_strategy)
def test_non_critical_members_never_push_overall_past_degraded(
    members: list[tuple[HealthStatus, bool]],
) -> None:
    """With only non-critical members the roll-up is HEALTHY or DEGRADED."""
    overall = aggregate(_component(s, critical=False) for s, _ in members)
    assert overall in (S.HEALTHY, S.DEGRADED)
