"""``engined status`` text: aligned tables of components and breakers, statuses as words."""

from __future__ import annotations

from google.protobuf import duration_pb2

from engined.daemon._status_table import age, breakers_table, enum_word, render, table
from engined.v1 import engined_pb2 as pb


def _health() -> pb.SystemHealth:
    db = pb.ComponentHealth(
        name="db",
        component_type=pb.COMPONENT_TYPE_DATABASE,
        status=pb.HEALTH_STATUS_UNHEALTHY,
        critical=True,
        last_result=pb.HealthCheckResult(
            message="connection refused", age=duration_pb2.Duration(seconds=3)
        ),
        check_count=12,
        consecutive_failures=4,
        heal_attempts=2,
        heal_state=pb.HEAL_STATE_BACKOFF,
        last_heal_error="timeout",
    )
    cache = pb.ComponentHealth(
        name="cache-long-name",
        component_type=pb.COMPONENT_TYPE_CACHE,
        status=pb.HEALTH_STATUS_HEALTHY,
        critical=False,
        check_count=7,
        heal_state=pb.HEAL_STATE_IDLE,
    )
    return pb.SystemHealth(overall_status=pb.HEALTH_STATUS_UNHEALTHY, components=[cache, db])


def test_columns_line_up_and_numbers_align_right() -> None:
    """Every row starts each column at the same offset; numeric cells end at the same offset."""
    text = table(["NAME", "N"], [["a", "1"], ["longer", "100"]], numeric={1})
    assert text.splitlines() == ["NAME      N", "a         1", "longer  100"]


def test_enum_words_drop_the_prefix_and_show_unknown_numbers() -> None:
    """HEALTH_STATUS_HEALTHY reads healthy, CIRCUIT_STATE_HALF_OPEN half_open, 42 ?42."""
    assert enum_word(pb.HealthStatus, pb.HEALTH_STATUS_HEALTHY) == "healthy"
    assert enum_word(pb.CircuitState, pb.CIRCUIT_STATE_HALF_OPEN) == "half_open"
    assert enum_word(pb.HealState, 42) == "?42"


def test_ages_are_compact() -> None:
    """Ages read 0.4s, 12s, 3m, 5h, 2d."""
    assert [age(0.4), age(12.9), age(200), age(5 * 3600 + 7), age(2 * 86400)] == [
        "0.4s",
        "12s",
        "3m",
        "5h",
        "2d",
    ]


def test_render_shows_overall_components_and_breakers() -> None:
    """The report has the overall line, a row per component with status words, then breakers."""
    breaker = pb.CircuitBreakerMetrics(
        name="payments",
        state=pb.CIRCUIT_STATE_OPEN,
        total_calls=10,
        failed_calls=6,
        rejected_calls=3,
        failure_rate=0.6,
        times_opened=1,
        retry_after=duration_pb2.Duration(seconds=20),
    )
    text = render(_health(), [breaker])
    lines = text.splitlines()
    assert lines[0] == "overall: unhealthy (2 components)"
    header, cache, db = lines[2:5]
    assert header.split() == [
        "COMPONENT", "TYPE", "STATUS", "HEAL", "ATTEMPTS", "CHECKS", "FAILS", "AGE", "LAST"
    ]  # fmt: skip
    assert cache.split()[:4] == ["cache-long-name", "cache", "healthy", "(non-critical)"]
    assert db.split()[:8] == ["db", "database", "unhealthy", "backoff", "2", "12", "4", "3.0s"]
    assert db.endswith("connection refused (last heal: timeout)")
    assert header.index("TYPE") == cache.index("cache ") == db.index("database")
    breakers = lines[6:]
    assert breakers[1].split() == [
        "payments",
        "open",
        "(retry",
        "in",
        "20s)",
        "60%",
        "10",
        "6",
        "3",
        "1",
    ]


def test_an_empty_system_says_so() -> None:
    """No components and no breakers read as words, not empty tables."""
    text = render(pb.SystemHealth(overall_status=pb.HEALTH_STATUS_HEALTHY), [])
    assert text == "overall: healthy (0 components)\n\nno components\n\nno circuit breakers"


def test_a_long_message_is_cut_to_one_line() -> None:
    """A multi-line or long last message is folded and cut with an ellipsis."""
    health = _health()
    health.components[1].last_result.message = "line one\nline two " + "x" * 200
    health.components[1].ClearField("last_heal_error")
    row = render(health, []).splitlines()[4]
    assert "line one line two" in row
    assert row.endswith("…")
    assert "\n" not in row


def test_breaker_rate_is_blank_below_minimum_calls() -> None:
    """A breaker without a failure rate (too few calls) shows '-'."""
    text = breakers_table([pb.CircuitBreakerMetrics(name="mail", state=pb.CIRCUIT_STATE_CLOSED)])
    assert text.splitlines()[1].split() == ["mail", "closed", "-", "0", "0", "0", "0"]
