"""``engined status`` as text: components, then breakers, as aligned tables.

Pure functions of the engined.v1 replies, so they are tested without a server. Statuses
are printed as words (``healthy``, ``half_open``), the enum's name without its prefix;
numbers are right-aligned; a message is cut to fit one line. Times are ages ("3s ago")
because the server's monotonic instants mean nothing here (docs/rpc-server-semantics.md).

With ``color=True`` the status and state words are coloured (healthy and closed green,
degraded and half_open yellow, unhealthy and open red, unknown and disabled dim); columns
are padded on visible width, so a coloured table lines up exactly as a plain one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from engined.daemon._ansi import DIM, GREEN, RED, YELLOW, paint, visible_width
from engined.v1 import engined_pb2 as pb

__all__ = [
    "age",
    "breakers_table",
    "components_table",
    "enum_word",
    "overall_line",
    "render",
    "status_word",
    "table",
    "tables",
]

MESSAGE_WIDTH: Final = 60

_HEALTH_STYLES: Final[dict[int, str]] = {
    pb.HEALTH_STATUS_HEALTHY: GREEN,
    pb.HEALTH_STATUS_DEGRADED: YELLOW,
    pb.HEALTH_STATUS_UNHEALTHY: RED,
    pb.HEALTH_STATUS_UNKNOWN: DIM,
}
_CIRCUIT_STYLES: Final[dict[int, str]] = {
    pb.CIRCUIT_STATE_CLOSED: GREEN,
    pb.CIRCUIT_STATE_HALF_OPEN: YELLOW,
    pb.CIRCUIT_STATE_OPEN: RED,
    pb.CIRCUIT_STATE_FORCED_OPEN: RED,
    pb.CIRCUIT_STATE_DISABLED: DIM,
}


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """Columns aligned on the widest cell, two spaces apart; ``numeric`` columns to the right.

    Trailing spaces are trimmed, so the last column can be long without padding others.
    Widths are visible widths: a cell's colour escapes take no room.
    """
    widths = [len(title) for title in header]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], visible_width(cell))
    lines = []
    for row in (header, *rows):
        cells = []
        for i, cell in enumerate(row):
            padding = " " * (widths[i] - visible_width(cell))
            cells.append(padding + cell if i in numeric else cell + padding)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def enum_word(enum_type: Any, value: int) -> str:
    """``HEALTH_STATUS_HEALTHY`` as ``healthy``; an unknown number as ``?<n>``."""
    try:
        name: str = enum_type.Name(value)
    except ValueError:
        return f"?{value}"
    prefix = "_".join(enum_type.Name(0).split("_")[:-1]) + "_"  # X_UNSPECIFIED -> X_
    return name.removeprefix(prefix).lower()


def status_word(enum_type: Any, value: int, *, color: bool = False) -> str:
    """:func:`enum_word`, coloured by what the status means when ``color`` is set."""
    styles = _CIRCUIT_STYLES if enum_type is pb.CircuitState else _HEALTH_STYLES
    return paint(styles.get(value), enum_word(enum_type, value), color=color)


def age(seconds: float) -> str:
    """A compact age: ``0.4s``, ``12s``, ``3m``, ``5h``, ``2d``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _cut(text: str, width: int = MESSAGE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def components_table(health: pb.SystemHealth, *, color: bool = False) -> str:
    """One row per component: name, type, status, heal state, counters, last result."""
    header = ["COMPONENT", "TYPE", "STATUS", "HEAL", "ATTEMPTS", "CHECKS", "FAILS", "AGE", "LAST"]
    rows = []
    for c in health.components:
        last = c.last_result
        has_last = c.HasField("last_result")
        note = ""
        if has_last:
            note = last.message or (last.error if last.HasField("error") else "")
        if c.HasField("last_heal_error"):
            note = f"{note} (last heal: {c.last_heal_error})".strip()
        rows.append(
            [
                c.name,
                enum_word(pb.ComponentType, c.component_type),
                status_word(pb.HealthStatus, c.status, color=color)
                + ("" if c.critical else " (non-critical)"),
                enum_word(pb.HealState, c.heal_state),
                str(c.heal_attempts),
                str(c.check_count),
                str(c.consecutive_failures),
                age(last.age.ToTimedelta().total_seconds())
                if has_last and last.HasField("age")
                else "-",
                _cut(note) if note else "-",
            ]
        )
    return table(header, rows, numeric={4, 5, 6, 7})


def breakers_table(breakers: Sequence[pb.CircuitBreakerMetrics], *, color: bool = False) -> str:
    """One row per breaker: name, state, failure rate, calls, failures, rejections, openings."""
    header = ["BREAKER", "STATE", "FAILURE RATE", "CALLS", "FAILED", "REJECTED", "OPENED"]
    rows = []
    for b in breakers:
        rate = f"{b.failure_rate:.0%}" if b.HasField("failure_rate") else "-"
        state = status_word(pb.CircuitState, b.state, color=color)
        if b.HasField("retry_after"):
            state += f" (retry in {age(b.retry_after.ToTimedelta().total_seconds())})"
        rows.append(
            [
                b.name,
                state,
                rate,
                str(b.total_calls),
                str(b.failed_calls),
                str(b.rejected_calls),
                str(b.times_opened),
            ]
        )
    return table(header, rows, numeric={2, 3, 4, 5, 6})


def overall_line(health: pb.SystemHealth, *, color: bool = False) -> str:
    """``overall: degraded (3 components)``."""
    overall = status_word(pb.HealthStatus, health.overall_status, color=color)
    count = len(health.components)
    return f"overall: {overall} ({count} component{'' if count == 1 else 's'})"


def tables(
    health: pb.SystemHealth,
    breakers: Sequence[pb.CircuitBreakerMetrics],
    *,
    color: bool = False,
) -> str:
    """The components table, a blank line, the breakers table (or a line saying there are none)."""
    return "\n\n".join(
        [
            components_table(health, color=color) if health.components else "no components",
            breakers_table(breakers, color=color) if breakers else "no circuit breakers",
        ]
    )


def render(
    health: pb.SystemHealth,
    breakers: Sequence[pb.CircuitBreakerMetrics],
    *,
    color: bool = False,
) -> str:
    """The whole ``engined status`` text: overall line, components, breakers."""
    return f"{overall_line(health, color=color)}\n\n{tables(health, breakers, color=color)}"
