"""``engined status --watch`` without a daemon: the loop on a FakeClock, the frames, the screens."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from engined.daemon._ansi import (
    ERASE_BELOW,
    ERASE_LINE,
    HIDE_CURSOR,
    HOME,
    RED,
    SCREEN_ALTERNATE,
    SCREEN_NORMAL,
    SHOW_CURSOR,
    strip,
    visible_width,
)
from engined.daemon._cli import main
from engined.daemon._watch import EXIT_STOPPED, _signals_stop_once, run
from engined.daemon._watch_frame import (
    FetchError,
    JsonLinesScreen,
    PlainScreen,
    Snapshot,
    TerminalScreen,
    WatchState,
    frame_text,
)
from engined.testing import FakeClock
from engined.v1 import engined_pb2 as pb

EPOCH = datetime(2026, 12, 3, 9, 0, 0, tzinfo=UTC)
TARGET = "127.0.0.1:9003"


def snapshot(
    status: pb.HealthStatus.ValueType = pb.HEALTH_STATUS_HEALTHY, count: int = 2
) -> Snapshot:
    components = [
        pb.ComponentHealth(name=f"c{i}", status=status, critical=True) for i in range(count)
    ]
    health = pb.SystemHealth(overall_status=status, components=components)
    breakers = [pb.CircuitBreakerMetrics(name="pay", state=pb.CIRCUIT_STATE_CLOSED)]
    return (
        pb.GetSystemHealthResponse(health=health),
        pb.ListCircuitBreakersResponse(circuit_breakers=breakers),
    )


class Script:
    """A fetcher playing outcomes in order: a snapshot, or an exception to raise."""

    def __init__(self, clock: FakeClock, *outcomes: Snapshot | BaseException, takes: float = 0):
        self.clock = clock
        self.outcomes = list(outcomes)
        self.takes = takes
        self.calls = 0

    def __call__(self) -> Snapshot:
        self.calls += 1
        self.clock.advance(self.takes)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Writes(io.StringIO):
    """A StringIO that counts writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


def wall_of(clock: FakeClock) -> Callable[[], datetime]:
    return lambda: EPOCH + timedelta(seconds=clock.monotonic())


def plain_frames(text: str) -> list[str]:
    """Split PlainScreen output into frames (each starts with the target)."""
    return [f"{TARGET}{part}".rstrip("\n") for part in text.split(TARGET)[1:]]


def test_the_loop_draws_one_frame_per_interval_on_the_injected_clock(clock: FakeClock) -> None:
    """Four frames are four fetches, 1 s apart on the fake clock, with no real sleep."""
    fetch = Script(clock, *[snapshot()] * 4)
    out = io.StringIO()
    state = WatchState(TARGET, 1.0)
    code = run(fetch, PlainScreen(out), state, clock=clock, wall=wall_of(clock), frames=4)
    assert code == 0
    assert fetch.calls == 4
    assert clock.sleeps == [1.0, 1.0, 1.0]
    stamps = [frame.split("  ")[1] for frame in plain_frames(out.getvalue())]
    assert stamps == [f"2026-12-03 09:00:0{i} UTC" for i in range(4)]


def test_a_slow_answer_shortens_the_next_sleep(clock: FakeClock) -> None:
    """The interval runs from fetch start to fetch start: a 0.3 s answer leaves a 0.7 s sleep."""
    fetch = Script(clock, *[snapshot()] * 3, takes=0.3)
    run(fetch, PlainScreen(io.StringIO()), WatchState(TARGET, 1.0), clock=clock, frames=3)
    assert clock.sleeps == pytest.approx([0.7, 0.7])
    late = Script(clock, *[snapshot()] * 2, takes=2.5)
    clock.sleeps.clear()
    run(late, PlainScreen(io.StringIO()), WatchState(TARGET, 1.0), clock=clock, frames=2)
    assert clock.sleeps == [0.0]


def test_the_header_names_target_time_overall_and_interval() -> None:
    """The first line is target, UTC time of the frame, overall status and the interval."""
    state = WatchState(TARGET, 0.5)
    state.answered(snapshot(pb.HEALTH_STATUS_DEGRADED, count=3), EPOCH)
    lines = frame_text(state, EPOCH, color=False).splitlines()
    assert lines[0] == (
        f"{TARGET}  2026-12-03 09:00:00 UTC  overall: degraded (3 components)  every 0.5s"
    )
    assert lines[1] == ""
    assert lines[2].split()[:3] == ["COMPONENT", "TYPE", "STATUS"]


def test_an_unreachable_daemon_keeps_the_last_frame_and_recovers(clock: FakeClock) -> None:
    """Unreachable: the last tables stay under an 'unreachable since' line; an answer clears it."""
    down = FetchError("UNAVAILABLE: connection\n refused")
    fetch = Script(clock, snapshot(), down, down, snapshot(pb.HEALTH_STATUS_DEGRADED), takes=0.0)
    out = io.StringIO()
    run(
        fetch, PlainScreen(out), WatchState(TARGET, 1.0), clock=clock, wall=wall_of(clock), frames=4
    )
    first, gone, still, back = plain_frames(out.getvalue())
    tables = first.split("\n", 1)[1]
    assert "overall: unreachable" in gone.splitlines()[0]
    assert gone.splitlines()[1] == (
        "unreachable since 2026-12-03 09:00:01 UTC (0.0s), "
        "retrying: UNAVAILABLE: connection refused"
    )
    assert gone.splitlines()[2] == "the tables below are from 2026-12-03 09:00:00 UTC"
    assert gone.endswith(tables)
    assert "unreachable since 2026-12-03 09:00:01 UTC (1.0s)" in still
    assert still.endswith(tables)
    assert back.splitlines()[0].endswith("overall: degraded (2 components)  every 1s")
    assert "unreachable" not in back


def test_no_answer_yet_shows_no_tables(clock: FakeClock) -> None:
    """A daemon unreachable from the start: the line says so and there is nothing below."""
    out = io.StringIO()
    fetch = Script(clock, FetchError("UNAVAILABLE: refused"))
    run(
        fetch, PlainScreen(out), WatchState(TARGET, 1.0), clock=clock, wall=wall_of(clock), frames=1
    )
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[2] == "no answer yet"


def test_a_refusal_reads_failing_not_unreachable() -> None:
    """An answer that is an error (PERMISSION_DENIED) is 'failing since', not 'unreachable'."""
    state = WatchState(TARGET, 1.0)
    state.failed(FetchError("PERMISSION_DENIED: no", unreachable=False), EPOCH)
    text = frame_text(state, EPOCH, color=False)
    assert "overall: failing" in text
    assert "failing since 2026-12-03 09:00:00 UTC" in text


def test_ctrl_c_restores_the_cursor_and_the_screen_and_exits_0(clock: FakeClock) -> None:
    """KeyboardInterrupt mid-watch: exit 0, cursor shown, normal screen, last frame printed."""
    out = Writes()
    fetch = Script(clock, snapshot(), snapshot(), KeyboardInterrupt())
    screen = TerminalScreen(out, color=True, size=lambda: (0, 0))
    code = run(fetch, screen, WatchState(TARGET, 1.0), clock=clock, wall=wall_of(clock))
    assert code == EXIT_STOPPED == 0
    text = out.getvalue()
    assert text.startswith(SCREEN_ALTERNATE + HIDE_CURSOR)
    assert text.count(HOME) == 2
    tail = out.writes[-1]
    assert tail.startswith(SHOW_CURSOR + SCREEN_NORMAL)
    assert strip(tail[len(SHOW_CURSOR + SCREEN_NORMAL) :]).startswith(TARGET)
    assert text.rindex(SHOW_CURSOR) > text.rindex(HOME)


def test_an_error_restores_the_cursor_and_propagates(clock: FakeClock) -> None:
    """A bug in the loop still shows the cursor and leaves the alternate screen."""
    out = Writes()
    fetch = Script(clock, snapshot(), RuntimeError("bug"))
    screen = TerminalScreen(out, color=False, size=lambda: (0, 0))
    with pytest.raises(RuntimeError, match="bug"):
        run(fetch, screen, WatchState(TARGET, 1.0), clock=clock)
    assert out.writes[-1].startswith(SHOW_CURSOR + SCREEN_NORMAL)


def test_a_terminal_frame_redraws_in_place_in_one_write(clock: FakeClock) -> None:
    """Each frame: one write and flush, from home, every line erased to its end, then below."""
    out = Writes()
    screen = TerminalScreen(out, color=True, size=lambda: (0, 0))
    run(Script(clock, *[snapshot()] * 3), screen, WatchState(TARGET, 1.0), clock=clock, frames=3)
    frames = out.writes[1:-1]
    assert len(frames) == 3
    assert out.flushes == 5  # open, three frames, close
    for frame in frames:
        assert frame.startswith(HOME)
        assert frame.endswith(ERASE_BELOW)
        lines = frame.removeprefix(HOME).removesuffix(ERASE_BELOW).split("\n")
        assert lines[-1] == ""
        assert all(line.endswith(ERASE_LINE) for line in lines[:-1])
        assert "\x1b[2J" not in frame  # never a clear screen: nothing flickers


def test_a_terminal_frame_is_cut_to_the_terminal_size(clock: FakeClock) -> None:
    """Lines fit the width less one column; a frame too tall ends with a 'more lines' line."""
    out = Writes()
    screen = TerminalScreen(out, color=True, size=lambda: (30, 6))
    run(Script(clock, snapshot(count=10)), screen, WatchState(TARGET, 1.0), clock=clock, frames=1)
    lines = out.writes[1].removeprefix(HOME).removesuffix(ERASE_BELOW).split("\n")[:-1]
    assert len(lines) == 5  # a row short of the screen, so the last newline cannot scroll
    assert all(visible_width(line.removesuffix(ERASE_LINE)) <= 29 for line in lines)
    assert strip(lines[-1]).startswith("... 12 more lines")


def test_plain_frames_are_separated_by_a_blank_line_without_escapes(clock: FakeClock) -> None:
    """Not a terminal: frame, blank line, frame, and no escape sequence anywhere."""
    out = io.StringIO()
    fetch = Script(clock, snapshot(), FetchError("UNAVAILABLE: x"))
    run(
        fetch, PlainScreen(out), WatchState(TARGET, 1.0), clock=clock, wall=wall_of(clock), frames=2
    )
    state = WatchState(TARGET, 1.0)
    state.answered(snapshot(), EPOCH)
    first = frame_text(state, EPOCH, color=False)
    assert out.getvalue().startswith(f"{first}\n\n{TARGET}  2026-12-03 09:00:01 UTC")
    assert "\x1b" not in out.getvalue()


def test_coloured_frames_colour_the_unreachable_line() -> None:
    """With colour, 'unreachable' in the header and the since-line are red."""
    state = WatchState(TARGET, 1.0)
    state.failed(FetchError("UNAVAILABLE: x"), EPOCH)
    lines = frame_text(state, EPOCH, color=True).splitlines()
    assert f"{RED}unreachable" in lines[0]
    assert lines[1].startswith(f"{RED}unreachable since")


def test_json_lines_carry_one_object_per_frame(clock: FakeClock) -> None:
    """--json --watch: a line per frame, with the replies or the error and since when."""
    out = io.StringIO()
    fetch = Script(clock, snapshot(), FetchError("UNAVAILABLE: refused"))
    screen = JsonLinesScreen(out)
    run(fetch, screen, WatchState(TARGET, 1.0), clock=clock, wall=wall_of(clock), frames=2)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["time"] == "2026-12-03T09:00:00.000Z"
    assert first["target"] == TARGET
    assert first["health"]["overall_status"] == "HEALTH_STATUS_HEALTHY"
    assert [b["name"] for b in first["circuit_breakers"]] == ["pay"]
    assert second == {
        "time": "2026-12-03T09:00:01.000Z",
        "target": TARGET,
        "error": "UNAVAILABLE: refused",
        "unreachable_since": "2026-12-03T09:00:01.000Z",
    }


def test_sigterm_stops_the_watch_like_ctrl_c_and_only_once() -> None:
    """SIGTERM raises KeyboardInterrupt inside the watch; a second signal cannot cut the restore."""
    before = signal.getsignal(signal.SIGTERM)
    with _signals_stop_once():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pytest.fail("a second signal interrupted the stop")
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", "0.05"])
def test_a_bad_interval_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """--interval must be a finite number of seconds, at least 0.1: else exit 2 in one line."""
    with pytest.raises(SystemExit) as caught:
        main(["status", "--watch", "--interval", value])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.count("\n") == 1
    assert "--interval" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["status", "--interval", "2"], "--interval needs --watch"),
        (["status", "--watch", "--color", "blue"], "--color"),
    ],
)
def test_watch_flags_that_do_not_fit_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    """--interval without --watch, or an unknown --color, exits 2 in one line naming it."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.count("\n") == 1
    assert named in err
