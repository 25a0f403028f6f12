"""The daemon's log lines: JSON with ts/level/msg and fields, text with key=value, once each."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from engined import HealthCheckManager, HealthEvent, HealthStatus
from engined.daemon._logging import EventLog, JsonFormatter, TextFormatter, configure, fields
from engined.testing import FakeClock


def record(
    msg: str, *args: object, level: int = logging.INFO, **values: object
) -> logging.LogRecord:
    made = logging.LogRecord("engined.daemon", level, __file__, 1, msg, args, None)
    made.__dict__.update(fields(**values))
    made.created = 1_800_000_000.25
    return made


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines into a buffer, restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure("json", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_ts_level_msg_and_fields() -> None:
    """A JSON line is one object: UTC ts with milliseconds, level, logger, msg, then fields."""
    line = JsonFormatter().format(
        record("%s: %s -> %s", "db", "healthy", "unhealthy", component="db")
    )
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2027-01-15T08:00:00.250Z",
        "level": "info",
        "logger": "engined.daemon",
        "msg": "db: healthy -> unhealthy",
        "component": "db",
    }


def test_a_field_never_hides_the_standard_keys() -> None:
    """A field named msg or level does not overwrite the line's own."""
    made = record("hello")
    made.__dict__.update(fields(msg="evil", level="none", ts="never"))
    line = json.loads(JsonFormatter().format(made))
    assert (line["msg"], line["level"], line["ts"]) == ("hello", "info", "2027-01-15T08:00:00.250Z")


def test_text_lines_append_fields_and_quote_what_needs_it() -> None:
    """Text reads 'ts LEVEL msg key=value', quoting values with spaces, skipping None."""
    line = TextFormatter().format(
        record("reloaded", level=logging.WARNING, path="/etc/x y.toml", kept=2, error=None)
    )
    assert line == '2027-01-15T08:00:00.250Z WARNING reloaded path="/etc/x y.toml" kept=2'


def test_an_exception_stays_in_its_json_line() -> None:
    """A logged exception is a field of the same JSON line, not extra lines."""
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        made = record("failed")
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_event_log_writes_one_line_per_event(captured: io.StringIO) -> None:
    """Transitions, heal start, end and exhaustion each give one line with their fields."""
    log = EventLog()
    log(HealthEvent("transition", "db", 1.0, HealthStatus.HEALTHY, HealthStatus.UNHEALTHY))
    log(HealthEvent("heal_started", "db", 1.0, attempt=1))
    log(HealthEvent("heal_finished", "db", 2.0, attempt=1, error="timeout"))
    log(HealthEvent("heal_finished", "db", 3.0, attempt=2))
    log(HealthEvent("heal_exhausted", "db", 4.0, attempt=3))
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [(line["level"], line["msg"]) for line in lines] == [
        ("warning", "db: healthy -> unhealthy"),
        ("info", "db: heal 1 started"),
        ("warning", "db: heal 1 failed: timeout"),
        ("info", "db: heal 2 succeeded"),
        ("warning", "db: heals exhausted after 3 attempts; checks go on"),
    ]
    assert lines[0]["from"] == "healthy"
    assert lines[0]["to"] == "unhealthy"
    assert (lines[2]["result"], lines[2]["error"]) == ("failure", "timeout")


async def test_a_real_transition_and_failed_heal_are_logged_once(captured: io.StringIO) -> None:
    """The manager's own transition and heal-failure records are filtered: one line each."""
    manager = HealthCheckManager(clock=FakeClock())
    manager.add_listener(EventLog())

    async def heal(trigger: object) -> bool:
        return False

    manager.register("db", lambda: False, heal=heal)
    await manager.run_all()
    await manager.stop()
    msgs = [json.loads(line)["msg"] for line in captured.getvalue().splitlines()]
    assert msgs.count("db: unknown -> unhealthy") == 1
    assert len([m for m in msgs if re.search(r"heal.*fail", m)]) == 1, msgs
