"""``engined status --watch``: the status table, redrawn every interval until Ctrl-C.

On a terminal the watch takes the alternate screen (as ``watch``, ``top`` and ``less``
do), so the frames never overwrite the shell's scrollback, and redraws in place without
clearing: cursor home, each line followed by erase-to-end-of-line, erase below. Nothing
is blank between two frames, so nothing flickers. The cursor is hidden meanwhile. On the
way out (Ctrl-C, SIGTERM, or an error) the cursor is shown again, the normal screen comes
back and the last frame is printed there, so what was on screen stays readable in the
scrollback. Each frame is one write and one flush.

When the daemon stops answering, the last frame stays with a line saying since when it
is unreachable; the watch keeps polling and shows fresh frames once it answers again.

Stdout that is not a terminal (a pipe, a file, ``TERM=dumb``) gets the same frames as
plain text, separated by a blank line, without any escape; ``--json`` gets one JSON
object per line per frame. Stopping the watch is how it is meant to end, so Ctrl-C and
SIGTERM exit 0.

The loop (:func:`run`) takes its clock, wall time, fetcher and screen as arguments, so it
is tested with :class:`engined.testing.FakeClock` and never sleeps for real.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Final, TextIO

import grpc

from engined._clock import SYSTEM_CLOCK, Clock
from engined.daemon._ansi import is_terminal
from engined.daemon._dial import Dial
from engined.daemon._status import describe, fetch
from engined.daemon._watch_frame import (
    FetchError,
    JsonLinesScreen,
    PlainScreen,
    Screen,
    Snapshot,
    TerminalScreen,
    WatchState,
)
from engined.v1 import engined_pb2_grpc

__all__ = ["EXIT_STOPPED", "run", "watch"]

EXIT_STOPPED: Final = 0
"""The exit status after Ctrl-C or SIGTERM: stopping is the watch's normal end."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run(
    fetch_once: Callable[[], Snapshot],
    screen: Screen,
    state: WatchState,
    *,
    clock: Clock = SYSTEM_CLOCK,
    wall: Callable[[], datetime] = _utc_now,
    frames: int | None = None,
) -> int:
    """Fetch and draw every ``state.interval`` seconds until interrupted; return the exit status.

    The interval runs from the start of one fetch to the start of the next, so a slow
    answer does not slow the rate. ``screen.close()`` runs however the loop ends, so a
    terminal is given back its cursor and screen after Ctrl-C and after a bug alike.

    Args:
        fetch_once: Both replies, or :class:`FetchError`.
        screen: Where frames go.
        state: The target, the interval, and what is known so far.
        clock: Sleeps between frames.
        wall: The time shown in each frame.
        frames: Stop after this many frames (None: until interrupted).
    """
    try:
        screen.open()
        drawn = 0
        while True:
            started = clock.monotonic()
            try:
                snapshot = fetch_once()
            except FetchError as exc:
                now = wall()
                state.failed(exc, now)
            else:
                now = wall()
                state.answered(snapshot, now)
            screen.draw(state, now)
            drawn += 1
            if frames is not None and drawn >= frames:
                return EXIT_STOPPED
            clock.sleep(max(0.0, started + state.interval - clock.monotonic()))
    except KeyboardInterrupt:
        return EXIT_STOPPED
    finally:
        screen.close()


@contextmanager
def _signals_stop_once() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt, once: a second one cannot cut the restore."""
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        yield
        return
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _reconnect_options(interval: float) -> list[tuple[str, object]]:
    """Reconnect within max(interval, 1 s) of a restart, not after gRPC's 2-minute backoff."""
    return [
        ("grpc.initial_reconnect_backoff_ms", int(min(interval, 1.0) * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(min(max(interval, 1.0), 120.0) * 1000)),
    ]


def watch(
    dial: Dial,
    *,
    timeout: float,
    interval: float,
    json_lines: bool,
    color: bool,
    out: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """``engined status --watch``: run until Ctrl-C or SIGTERM; return the exit status.

    One channel serves every frame; its reconnect backoff is capped near the interval,
    because gRPC's default (up to 2 minutes) would leave a restarted daemon shown as
    unreachable long after it answers again.

    Args:
        dial: The target and its TLS settings.
        timeout: Deadline of each RPC, in seconds.
        interval: Seconds from one fetch's start to the next.
        json_lines: One JSON object per frame instead of a table.
        color: Colour the statuses (decided by ``--color`` and ``NO_COLOR``).
        out: Where frames go (default stdout); a terminal gets them redrawn in place.
        environ: Read for ``TERM`` (``dumb`` gets plain frames); default ``os.environ``.
    """
    out = out if out is not None else sys.stdout
    environ = environ if environ is not None else os.environ
    screen: Screen
    if json_lines:
        screen = JsonLinesScreen(out)
    elif is_terminal(out) and environ.get("TERM") != "dumb":
        screen = TerminalScreen(out, color=color)
    else:
        screen = PlainScreen(out, color=color)
    channel = dial.channel(_reconnect_options(interval))
    stub = engined_pb2_grpc.EnginedStub(channel)

    def fetch_once() -> Snapshot:
        try:
            return fetch(stub, timeout)
        except grpc.RpcError as exc:
            unreachable, text = describe(exc)
            timed_out = (
                isinstance(exc, grpc.Call) and exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            )
            raise FetchError(text, unreachable=unreachable or timed_out) from None

    try:
        with _signals_stop_once():
            return run(fetch_once, screen, WatchState(dial.target, interval))
    except BrokenPipeError:  # the reader went away (`| head`): the watch is over
        _discard(out)
        return EXIT_STOPPED
    finally:
        channel.close()


def _discard(out: TextIO) -> None:
    """Point ``out`` at /dev/null, so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    except (AttributeError, ValueError, OSError):
        pass
