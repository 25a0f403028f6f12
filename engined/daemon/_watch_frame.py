"""The frames of ``engined status --watch`` and where they go (:mod:`engined.daemon._watch`).

A frame is a header line (target, time in UTC, overall status, interval), a line while
the daemon does not answer, and the status tables of its last answer. A
:class:`TerminalScreen` redraws it in place on the alternate screen, a
:class:`PlainScreen` appends it for pipes and files, a :class:`JsonLinesScreen` writes
one JSON object per frame. Each frame is one write and one flush, so a reader never sees
half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from engined.daemon._ansi import (
    DIM,
    ERASE_BELOW,
    ERASE_LINE,
    HIDE_CURSOR,
    HOME,
    RED,
    SCREEN_ALTERNATE,
    SCREEN_NORMAL,
    SHOW_CURSOR,
    clip,
    paint,
)
from engined.daemon._status import as_dict
from engined.daemon._status_table import age, overall_line, tables
from engined.v1 import engined_pb2 as pb

__all__ = [
    "FetchError",
    "JsonLinesScreen",
    "PlainScreen",
    "Screen",
    "Snapshot",
    "TerminalScreen",
    "WatchState",
    "frame_text",
]

Snapshot = tuple[pb.GetSystemHealthResponse, pb.ListCircuitBreakersResponse]


class FetchError(Exception):
    """The daemon did not answer; the message is ``CODE: details``."""

    def __init__(self, message: str, *, unreachable: bool = True) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass
class WatchState:
    """What the watch knows: the last answer, and since when the daemon has not answered."""

    target: str
    interval: float
    snapshot: Snapshot | None = None
    answered_at: datetime | None = None
    failing_since: datetime | None = None
    error: FetchError | None = None

    def answered(self, snapshot: Snapshot, now: datetime) -> None:
        """The daemon answered at ``now``."""
        self.snapshot, self.answered_at = snapshot, now
        self.failing_since, self.error = None, None

    def failed(self, error: FetchError, now: datetime) -> None:
        """The daemon did not answer at ``now``; the last answer is kept."""
        if self.failing_since is None:
            self.failing_since = now
        self.error = error


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def frame_text(state: WatchState, now: datetime, *, color: bool) -> str:
    """One frame: a header line, a line while the daemon is not answering, then the tables.

    The header names the target, the frame's time (UTC), the overall status and the
    interval. While the daemon does not answer, the tables of its last answer stay.
    """
    error, since = state.error, state.failing_since
    word = "unreachable" if error is None or error.unreachable else "failing"
    if error is not None:
        overall = f"overall: {paint(RED, word, color=color)}"
    elif state.snapshot is not None:
        overall = overall_line(state.snapshot[0].health, color=color)
    else:  # pragma: no cover - a frame is drawn after the first fetch, answered or not
        overall = "overall: -"
    lines = [f"{state.target}  {_stamp(now)}  {overall}  every {state.interval:g}s"]
    if error is not None and since is not None:
        detail = " ".join(str(error).split())
        gone = age(max((now - since).total_seconds(), 0.0))
        lines.append(
            paint(RED, f"{word} since {_stamp(since)} ({gone}), retrying: {detail}", color=color)
        )
        last = state.answered_at
        shown = f"the tables below are from {_stamp(last)}" if last else "no answer yet"
        lines.append(paint(DIM, shown, color=color))
    if state.snapshot is not None:
        health, breakers = state.snapshot
        lines += ["", tables(health.health, breakers.circuit_breakers, color=color)]
    return "\n".join(lines)


class Screen(Protocol):
    """Where frames go: a terminal redrawn in place, plain text, or JSON lines."""

    def open(self) -> None:
        """Prepare the output before the first frame."""
        ...

    def draw(self, state: WatchState, now: datetime) -> None:
        """Show the frame of ``state`` at ``now``."""
        ...

    def close(self) -> None:
        """Restore the output; called whatever ended the watch."""
        ...


def _terminal_size(out: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(out.fileno())
    except (AttributeError, ValueError, OSError):
        return 0, 0
    return size.columns, size.lines


class TerminalScreen:
    """Frames redrawn in place on the alternate screen; the cursor hidden meanwhile.

    Args:
        out: The terminal.
        color: Whether to colour the statuses.
        size: ``(columns, lines)`` of the terminal, read before each frame so a resize
            takes effect at the next one; 0 means unknown (nothing is cut).
    """

    def __init__(
        self, out: TextIO, *, color: bool, size: Callable[[], tuple[int, int]] | None = None
    ) -> None:
        self._out = out
        self._color = color
        self._size = size if size is not None else lambda: _terminal_size(out)
        self._last = ""

    def open(self) -> None:
        """Switch to the alternate screen and hide the cursor."""
        self._write(SCREEN_ALTERNATE + HIDE_CURSOR)

    def draw(self, state: WatchState, now: datetime) -> None:
        """Overwrite the previous frame line by line, then erase what is left below it.

        Lines are cut to the terminal's width less one column (a line filling the last
        column would wrap and push the frame down); a frame taller than the terminal
        ends with a line saying how many lines are not shown.
        """
        self._last = frame_text(state, now, color=self._color)
        columns, rows = self._size()
        lines = self._last.split("\n")
        if rows > 1 and len(lines) > rows - 1:
            hidden = len(lines) - (rows - 2)
            more = f"... {hidden} more lines: enlarge the terminal"
            lines = [*lines[: rows - 2], paint(DIM, more, color=self._color)]
        if columns > 1:
            lines = [clip(line, columns - 1) for line in lines]
        self._write(HOME + "".join(f"{line}{ERASE_LINE}\n" for line in lines) + ERASE_BELOW)

    def close(self) -> None:
        """Show the cursor, leave the alternate screen, and print the last frame there."""
        last = f"{self._last}\n" if self._last else ""
        self._write(SHOW_CURSOR + SCREEN_NORMAL + last)

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


class PlainScreen:
    """Frames one after another, a blank line between them: for pipes and files."""

    def __init__(self, out: TextIO, *, color: bool = False) -> None:
        self._out = out
        self._color = color
        self._drawn = False

    def open(self) -> None:
        """Nothing to prepare."""

    def draw(self, state: WatchState, now: datetime) -> None:
        """Append the frame."""
        gap = "\n" if self._drawn else ""
        self._out.write(f"{gap}{frame_text(state, now, color=self._color)}\n")
        self._out.flush()
        self._drawn = True

    def close(self) -> None:
        """Nothing to restore."""


class JsonLinesScreen:
    """One JSON object per frame and line: ``time``, ``target``, then the replies or the error.

    An answered frame carries ``health`` and ``circuit_breakers`` as ``--json`` prints
    them; a frame without an answer carries ``error`` (``CODE: details``) and
    ``unreachable_since``.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def open(self) -> None:
        """Nothing to prepare."""

    def draw(self, state: WatchState, now: datetime) -> None:
        """Append the frame's line."""
        line: dict[str, Any] = {"time": _iso(now), "target": state.target}
        if state.error is not None and state.failing_since is not None:
            line["error"] = " ".join(str(state.error).split())
            line["unreachable_since"] = _iso(state.failing_since)
        elif state.snapshot is not None:
            line.update(as_dict(*state.snapshot))
        self._out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._out.flush()

    def close(self) -> None:
        """Nothing to restore."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
