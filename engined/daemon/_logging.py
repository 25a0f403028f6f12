"""The daemon's log lines: text for people, JSON lines for machines, one line per event.

Each line carries a message and structured fields (``component``, ``from``, ``to``,
``attempt``...): the text format appends them as ``key=value``, the JSON format as keys
beside ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger`` and ``msg``. Pass
fields with :func:`fields` as ``extra``.

:class:`EventLog` is the health manager listener that writes one line per transition and
per heal start, end and exhaustion. The manager logs transitions and failed heals
itself too (``engined.health``, for programs without the daemon); :func:`configure`
filters out those two records so that each event is logged exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal, TextIO

from engined import HealthEvent

__all__ = ["FIELDS", "EventLog", "JsonFormatter", "TextFormatter", "configure", "fields"]

FIELDS: Final = "engined_fields"
"""The LogRecord attribute holding a line's structured fields."""

LogFormat = Literal["text", "json"]

_log = logging.getLogger("engined.daemon")
_DUPLICATES: Final = frozenset({"%s: %s -> %s", "heal of %s failed: %s"})  # engined.health's own


def fields(**values: object) -> dict[str, Mapping[str, object]]:
    """``extra=`` for a log call carrying ``values`` as structured fields."""
    return {FIELDS: values}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _fields_of(record: logging.LogRecord) -> Mapping[str, object]:
    values = getattr(record, FIELDS, None)
    return values if isinstance(values, Mapping) else {}


class TextFormatter(logging.Formatter):
    """``2026-12-03T09:12:17.123Z INFO demo: healthy -> unhealthy component=demo ...``."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<7}", record.getMessage()]
        for key, value in _fields_of(record).items():
            if value is None:
                continue  # absent, not empty: JSON lines carry it as null
            text = str(value)
            if not text or any(c.isspace() or c in "\"'=" for c in text):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields_of(record).items():
            line.setdefault(key, value)  # a field never hides ts, level, logger or msg
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _NoDuplicates(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _DUPLICATES


def configure(fmt: LogFormat = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record (engined's, grpc's) to ``stream`` (stderr) in ``fmt``, INFO up.

    Returns:
        The installed handler (it replaces the root logger's handlers).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    health = logging.getLogger("engined.health")
    if not any(isinstance(f, _NoDuplicates) for f in health.filters):
        health.addFilter(_NoDuplicates())
    return handler


class EventLog:
    """A health manager listener writing one log line per :class:`~engined.HealthEvent`."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger if logger is not None else _log

    def __call__(self, event: HealthEvent) -> None:
        name = event.component
        if event.kind == "transition":
            old, new = event.from_status, event.to_status
            level = logging.WARNING if new == "unhealthy" else logging.INFO
            extra = fields(event="transition", component=name, **{"from": old, "to": new})
            self._log.log(level, "%s: %s -> %s", name, old, new, extra=extra)
        elif event.kind == "heal_started":
            extra = fields(event="heal_started", component=name, attempt=event.attempt)
            self._log.info("%s: heal %s started", name, event.attempt, extra=extra)
        elif event.kind == "heal_finished":
            ok = event.error is None
            extra = fields(
                event="heal_finished",
                component=name,
                attempt=event.attempt,
                result="success" if ok else "failure",
                error=event.error,
            )
            if ok:
                self._log.info("%s: heal %s succeeded", name, event.attempt, extra=extra)
            else:
                text = "%s: heal %s failed: %s"
                self._log.warning(text, name, event.attempt, event.error, extra=extra)
        else:
            extra = fields(event="heal_exhausted", component=name, attempt=event.attempt)
            text = "%s: heals exhausted after %s attempts; checks go on"
            self._log.warning(text, name, event.attempt, extra=extra)
