"""``engined status --watch`` end to end: under a real pseudo-terminal, and through pipes.

The command runs as a user runs it (``python -m engined``), against daemons started by
:func:`daemon_support.running`. Under ``pty.fork`` it has a real terminal: a controlling
tty whose Ctrl-C (byte 0x03) the line discipline turns into SIGINT, a window size, and
``isatty()`` true; the test reads what it drew. Every read and wait has a deadline.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from daemon_support import ENGINED, Daemon, cli, free_port, running, wait_for, write

from engined.daemon._ansi import (
    ERASE_BELOW,
    GREEN,
    HIDE_CURSOR,
    HOME,
    RED,
    RESET,
    SCREEN_ALTERNATE,
    SCREEN_NORMAL,
    SHOW_CURSOR,
    strip,
    visible_width,
)

pytestmark = pytest.mark.integration

CONFIG = """\
[[checks]]
name = "ok"
type = "command"
command = ["true"]
interval = 0.5

[[checks]]
name = "down"
type = "command"
command = ["sh", "-c", "echo refused; exit 2"]
interval = 0.5
failure_threshold = 1
critical = false

[[checks]]
name = "flip"
type = "command"
command = ["sh", "-c", "exit $(cat flip.state)"]
interval = 0.2
timeout = 0.2
failure_threshold = 1
critical = false
"""

COLUMNS, ROWS = 120, 40


class Output:
    """Bytes read from a file descriptor (a pty's master side or a pipe), on deadlines."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""
        self.eof = False

    @property
    def text(self) -> str:
        """What was read, as text."""
        return self.data.decode("utf-8", "replace")

    def read(self, within: float) -> None:
        """Read what arrives within ``within`` seconds (at most one chunk)."""
        ready, _, _ = select.select([self.fd], [], [], within)
        if not ready:
            return
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the pty's slave side is closed, the child is gone
            chunk = b""
        self.eof = not chunk
        self.data += chunk

    def until(self, predicate: Callable[[str], object], *, within: float, what: str) -> None:
        """Read until ``predicate(text)`` holds; fail after ``within`` seconds."""
        deadline = time.monotonic() + within  # noqa: TID251 - a real process, real time
        while not predicate(self.text):
            if self.eof or time.monotonic() > deadline:  # noqa: TID251
                pytest.fail(f"not within {within} s: {what}; output:\n{self.text[-3000:]!r}")
            self.read(0.1)


def frames(text: str) -> list[str]:
    """The frames drawn in place: from each cursor-home to the erase below, escapes kept."""
    return [part.split(ERASE_BELOW)[0] for part in text.split(HOME)[1:] if ERASE_BELOW in part]


def row(frame: str, name: str) -> str | None:
    """The line of component ``name`` in ``frame`` (escapes kept), or None."""
    for line in frame.splitlines():
        if strip(line).startswith(f"{name} "):
            return line
    return None


class Terminal:
    """``python -m engined ARGS`` with a pseudo-terminal for stdin, stdout and stderr."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        environ.update({"TERM": "xterm-256color", **(env or {})})
        self.pid, fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.execve(sys.executable, [*ENGINED, *args], environ)
            finally:
                os._exit(127)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.out = Output(fd)
        self.status: int | None = None

    def ctrl_c(self) -> None:
        """Type Ctrl-C: the terminal sends SIGINT to the foreground process."""
        os.write(self.out.fd, b"\x03")

    def wait(self, *, within: float = 10.0) -> int:
        """Read to the end and return the exit status; fail if it does not exit in time."""
        deadline = time.monotonic() + within  # noqa: TID251
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:  # noqa: TID251
                pytest.fail(f"still running after {within} s:\n{self.out.text[-3000:]!r}")
            else:
                self.out.read(0.05)
        while not self.out.eof:
            self.out.read(0.2)
        return self.status

    def close(self) -> None:
        """Kill the child by pid if it still runs, reap it, close the pty."""
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.out.fd)


@contextmanager
def terminal(*args: str, env: dict[str, str] | None = None) -> Iterator[Terminal]:
    """A :class:`Terminal` for the block, killed by pid afterwards whatever happened."""
    term = Terminal(*args, env=env)
    try:
        yield term
    finally:
        term.close()


@contextmanager
def piped(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], Output]]:
    """``python -m engined ARGS`` with stdout a pipe (not a terminal); killed by pid after."""
    proc = subprocess.Popen([*ENGINED, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        yield proc, Output(proc.stdout.fileno())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def stop(proc: subprocess.Popen[bytes], out: Output) -> tuple[int, str]:
    """SIGINT by pid; the exit status and stderr, reading stdout meanwhile."""
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10  # noqa: TID251
    while proc.poll() is None and time.monotonic() < deadline:  # noqa: TID251
        out.read(0.05)
    rest, err = proc.communicate(timeout=10)
    out.data += rest
    return proc.returncode, err.decode()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon with ok (healthy), down (unhealthy) and flip (healthy until told otherwise)."""
    write(tmp_path / "flip.state", "0\n")
    with running(write(tmp_path / "engined.toml", CONFIG), tmp_path) as served:
        wait_for(
            lambda: (c := served.component("down")) and c["status"] == "HEALTH_STATUS_UNHEALTHY",
            what="'down' unhealthy",
        )
        yield served


def watch_args(target: str) -> list[str]:
    return ["status", "--watch", "--interval", "0.2", "--target", target]


def test_watch_in_a_terminal_redraws_coloured_frames_and_ctrl_c_restores_it(
    daemon: Daemon,
) -> None:
    """Under a pty: frames in place, colours, cursor hidden, Ctrl-C shows it again and exits 0."""
    with terminal(*watch_args(daemon.target)) as term:
        term.out.until(lambda text: len(frames(text)) >= 4, within=20, what="4 frames")
        term.ctrl_c()
        assert term.wait() == 0
    text = term.out.text
    assert "Traceback" not in text
    assert text.index(SCREEN_ALTERNATE) < text.index(HIDE_CURSOR) < text.index(HOME)
    assert "\x1b[2J" not in text  # redrawn in place, never cleared
    drawn = frames(text)
    assert len(drawn) >= 4
    for frame in drawn:
        header = strip(frame.splitlines()[0])
        assert header.startswith(f"{daemon.target}  ")
        assert header.endswith("overall: degraded (3 components)  every 0.2s")
        assert f"{GREEN}healthy{RESET}" in (row(frame, "ok") or "")
        assert f"{RED}unhealthy{RESET} (non-critical)" in (row(frame, "down") or "")
        assert all(visible_width(line) < COLUMNS for line in frame.splitlines())
    after = text[text.rindex(HOME) :]
    assert SHOW_CURSOR in after
    assert after.index(SHOW_CURSOR) < after.index(SCREEN_NORMAL)
    last = strip(after.split(SCREEN_NORMAL, 1)[1])
    assert last.startswith(f"{daemon.target}  "), "the last frame stays on the normal screen"


def test_watch_shows_a_status_change_without_restarting(daemon: Daemon, tmp_path: Path) -> None:
    """A component going unhealthy appears, in red, in a later frame of the same command."""
    with terminal(*watch_args(daemon.target)) as term:
        term.out.until(
            lambda text: any(f"{GREEN}healthy" in (row(f, "flip") or "") for f in frames(text)),
            within=20,
            what="flip healthy",
        )
        seen = len(frames(term.out.text))
        write(tmp_path / "flip.state", "2\n")
        term.out.until(
            lambda text: any(
                f"{RED}unhealthy" in (row(f, "flip") or "") for f in frames(text)[seen:]
            ),
            within=20,
            what="flip unhealthy in a later frame",
        )
        term.ctrl_c()
        assert term.wait() == 0
    assert "Traceback" not in term.out.text


def test_watch_keeps_the_last_frame_while_the_daemon_is_down_and_recovers(
    tmp_path: Path,
) -> None:
    """Daemon stopped: the tables stay under 'unreachable since'; restarted: fresh frames again."""
    port = free_port()
    config = write(tmp_path / "engined.toml", CONFIG)
    write(tmp_path / "flip.state", "0\n")
    target = f"127.0.0.1:{port}"
    with terminal(*watch_args(target)) as term:
        with running(config, tmp_path, extra=("--port", str(port))):
            term.out.until(
                lambda text: any("COMPONENT" in f for f in frames(text)),
                within=20,
                what="a frame with tables",
            )
            seen = len(frames(term.out.text))
        term.out.until(
            lambda text: any("unreachable since" in strip(f) for f in frames(text)[seen:]),
            within=20,
            what="the unreachable line",
        )
        down = next(
            strip(f) for f in frames(term.out.text)[seen:] if "unreachable since" in strip(f)
        )
        assert "overall: unreachable" in down.splitlines()[0]
        assert "retrying: UNAVAILABLE" in down.splitlines()[1]
        assert "the tables below are from" in down.splitlines()[2]
        assert row(down, "ok") is not None, "the last answer's tables stay"
        assert term.status is None, "the watch goes on while the daemon is down"
        seen = len(frames(term.out.text))
        with running(config, tmp_path, extra=("--port", str(port))):
            term.out.until(
                lambda text: any(
                    "unreachable" not in strip(f) and "overall: degraded" in strip(f)
                    for f in frames(text)[seen:]
                ),
                within=20,
                what="a fresh frame after the restart",
            )
        term.ctrl_c()
        assert term.wait() == 0
    assert "Traceback" not in term.out.text


def test_watch_on_sigterm_restores_the_terminal_and_exits_0(daemon: Daemon) -> None:
    """SIGTERM by pid ends the watch as Ctrl-C does: cursor shown, normal screen, exit 0."""
    with terminal(*watch_args(daemon.target)) as term:
        term.out.until(lambda text: len(frames(text)) >= 2, within=20, what="2 frames")
        os.kill(term.pid, signal.SIGTERM)
        assert term.wait() == 0
    after = term.out.text[term.out.text.rindex(HOME) :]
    assert SHOW_CURSOR in after
    assert SCREEN_NORMAL in after
    assert "Traceback" not in term.out.text


def test_plain_status_is_coloured_on_a_terminal_only(daemon: Daemon) -> None:
    """`engined status` colours statuses on a terminal; not with NO_COLOR=1, not into a pipe."""
    with terminal("status", "--target", daemon.target) as term:
        assert term.wait() == 0
    assert f"{GREEN}healthy{RESET}" in term.out.text
    with terminal("status", "--target", daemon.target, env={"NO_COLOR": "1"}) as term:
        assert term.wait() == 0
    assert "\x1b[" not in term.out.text
    assert "healthy" in term.out.text
    piped_out = cli("status", "--target", daemon.target)
    assert piped_out.returncode == 0
    assert "\x1b" not in piped_out.stdout


def test_watch_without_a_terminal_prints_plain_frames_between_blank_lines(
    daemon: Daemon,
) -> None:
    """Stdout a pipe: successive frames, a blank line between them, no escape codes, exit 0."""
    with piped(*watch_args(daemon.target)) as (proc, out):
        out.until(lambda text: text.count(f"{daemon.target}  ") >= 3, within=20, what="3 frames")
        code, err = stop(proc, out)
    assert code == 0
    assert err == ""
    text = out.text
    assert "\x1b" not in text
    headers = [i for i, line in enumerate(text.splitlines()) if line.startswith(daemon.target)]
    assert headers[0] == 0
    assert all(text.splitlines()[i - 1] == "" for i in headers[1:])
    assert "COMPONENT" in text


def test_watch_json_prints_a_json_line_per_frame(daemon: Daemon) -> None:
    """--json --watch: one JSON object per line and frame, with the time and both replies."""
    with piped(*watch_args(daemon.target), "--json") as (proc, out):
        out.until(lambda text: text.count("\n") >= 3, within=20, what="3 lines")
        code, err = stop(proc, out)
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.text.splitlines()]
    assert len(lines) >= 3
    for line in lines:
        assert line["target"] == daemon.target
        assert line["time"].endswith("Z")
        assert line["health"]["overall_status"] == "HEALTH_STATUS_DEGRADED"
        assert "circuit_breakers" in line


def test_watch_into_a_closed_pipe_ends_quietly_with_0(daemon: Daemon) -> None:
    """The reader goes away (`| head`): the watch ends, exit 0, nothing on stderr."""
    with piped(*watch_args(daemon.target)) as (proc, out):
        out.until(lambda text: "COMPONENT" in text, within=20, what="a frame")
        assert proc.stdout is not None
        proc.stdout.close()
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the watch kept running with no reader")
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert (code, err) == (0, "")
