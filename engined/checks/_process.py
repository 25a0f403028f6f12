"""Running a command for a check or heal: argv only, its own process group, nothing left behind.

The command starts in a new session (``start_new_session=True``), so it leads a process
group of its own that its children join. Whenever the run ends, the group is killed:

* normally (the command exited): whatever it left running in its group (a backgrounded
  grandchild holding the output pipe open, say) gets SIGKILL at once; the command's work
  is done;
* cancelled (the manager's timeout, a shutdown): the group gets SIGTERM, the command
  :data:`TERM_GRACE` seconds to exit, then the group gets SIGKILL. If the wait itself is
  cancelled, SIGKILL is sent at once; if the call is cancelled while the command is
  still being started, the group gets SIGKILL as soon as it is.

Either way the call ends once the command was reaped (up to :data:`REAP_WAIT` seconds
after SIGKILL), so nothing it started outlives it.

The command is reaped by asyncio's child watcher in every case, so no zombie of ours is
left. A process that left the group (``setsid``, a daemonizing double fork) is out of
reach by design: the group is the boundary.

Standard output and error share one pipe, so they interleave as written; the first
``max_output`` bytes are kept and the rest is read and dropped, so a chatty command never
blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from engined.core._redact import redact

__all__ = [
    "Completed",
    "MAX_OUTPUT_LIMIT",
    "TERM_GRACE",
    "check_argv",
    "check_cwd",
    "check_env",
    "check_max_output",
    "run_command",
]

TERM_GRACE: Final = 1.0
"""Seconds a cancelled command has between SIGTERM and SIGKILL."""

PIPE_GRACE: Final = 1.0
"""Seconds to wait for the output pipe to close once the group was killed.

Only a process that escaped the group can hold it open longer; then the output read so
far is used.
"""

REAP_WAIT: Final = 1.0
"""Seconds to wait, after SIGKILL, for the command's exit to be reaped and recorded."""

MAX_OUTPUT_LIMIT: Final = 1024 * 1024
"""The largest ``max_output`` accepted: output is kept in memory."""


def check_argv(value: object) -> tuple[str, ...]:
    """Return ``value`` as a tuple of strings: a non-empty list, never a shell string.

    Raises:
        TypeError: ``value`` is a str (a shell command), bytes, or not a sequence of str.
        ValueError: It is empty, its program is empty, or an entry holds a NUL.
    """
    if isinstance(value, str | bytes):
        msg = "argv must be a list of strings, not a shell command"
        raise TypeError(msg)
    if not isinstance(value, Sequence):
        msg = f"argv must be a list of strings, got {type(value).__name__}"
        raise TypeError(msg)
    argv = tuple(value)
    for index, item in enumerate(argv):
        if not isinstance(item, str):
            msg = f"argv[{index}] must be a str, got {type(item).__name__}"
            raise TypeError(msg)
        if "\0" in item:
            msg = f"argv[{index}] must not contain a NUL character"
            raise ValueError(msg)
    if not argv or not argv[0]:
        msg = "argv must name a program: a non-empty list whose first entry is not empty"
        raise ValueError(msg)
    return argv


def check_cwd(value: object) -> str | None:
    """Return ``value`` if it is ``None`` or a non-empty str (existence is checked at run)."""
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"cwd must be a str or None, got {type(value).__name__}"
        raise TypeError(msg)
    if not value or "\0" in value:
        msg = "cwd must be a non-empty path without NUL characters"
        raise ValueError(msg)
    return value


def check_env(value: object) -> dict[str, str]:
    """Return ``value`` as a dict of environment variables (str names and values)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        msg = f"env must be a mapping of str to str, got {type(value).__name__}"
        raise TypeError(msg)
    env: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            msg = f"env must map str to str; got {type(key).__name__} -> {type(item).__name__}"
            raise TypeError(msg)
        if not key or "=" in key or "\0" in key or "\0" in item:
            msg = f"env: {key!r} is not a valid variable name, or its value holds a NUL"
            raise ValueError(msg)
        env[key] = item
    return env


def check_max_output(value: object) -> int:
    """Return ``value`` if it is an int in 0..:data:`MAX_OUTPUT_LIMIT`."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"max_output must be an int, got {type(value).__name__}"
        raise TypeError(msg)
    if not 0 <= value <= MAX_OUTPUT_LIMIT:
        msg = f"max_output must be in 0..{MAX_OUTPUT_LIMIT}, got {value}"
        raise ValueError(msg)
    return value


@dataclass(frozen=True, slots=True)
class Completed:
    """How a command ended.

    Attributes:
        returncode: Its exit status; ``-N`` when signal ``N`` ended it.
        output: Its first ``max_output`` bytes of output, decoded (invalid UTF-8
            replaced) and redacted.
        truncated: Whether it printed more than that.
    """

    returncode: int
    output: str
    truncated: bool

    @property
    def outcome(self) -> str:
        """``"exit N"``, or ``"killed by SIGNAME"`` for a signal."""
        if self.returncode >= 0:
            return f"exit {self.returncode}"
        try:
            return f"killed by {signal.Signals(-self.returncode).name}"
        except ValueError:
            return f"killed by signal {-self.returncode}"


class _Capture(asyncio.SubprocessProtocol):
    """Keeps the first ``limit`` bytes of output and tells when the process and pipe end."""

    def __init__(self, limit: int) -> None:
        loop = asyncio.get_running_loop()
        self.limit = limit
        self.kept = bytearray()
        self.seen = 0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.seen += len(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def kill_group(pgid: int, signum: signal.Signals) -> None:
    """Send ``signum`` to process group ``pgid``; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _kill_abandoned(spawn: asyncio.Task[tuple[asyncio.SubprocessTransport, _Capture]]) -> None:
    """Kill the group of a command whose caller was cancelled while it was being started."""
    if spawn.cancelled() or spawn.exception() is not None:
        return  # never started, or asyncio's own clean-up already killed it
    transport, capture = spawn.result()
    kill_group(transport.get_pid(), signal.SIGKILL)
    # Closed once its exit is recorded, so the process object knows it was reaped.
    capture.exited.add_done_callback(lambda _: transport.close())


async def run_command(
    argv: Sequence[str],
    *,
    cwd: str | None,
    env: Mapping[str, str],
    max_output: int,
) -> Completed:
    """Run ``argv`` to its end in a process group of its own; kill the group when done.

    ``env`` is added to (and overrides) the inherited environment. Cancelling the call
    terminates the group as the module docstring says, then re-raises.

    Raises:
        FileNotFoundError: The program or ``cwd`` does not exist.
        PermissionError: The program may not be run.
        OSError: Starting it failed otherwise.
    """
    loop = asyncio.get_running_loop()
    spawn = loop.create_task(
        loop.subprocess_exec(
            lambda: _Capture(max_output),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            start_new_session=True,
        )
    )
    try:
        # Shielded: the process runs (and may fork) before its pipes are connected; if
        # asyncio's spawn were cancelled then, it would kill the command's pid only.
        transport, capture = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        spawn.add_done_callback(_kill_abandoned)  # also if this wait is cut short
        await asyncio.wait({spawn}, timeout=REAP_WAIT)
        if spawn.done() and not spawn.cancelled() and spawn.exception() is None:
            await asyncio.wait({spawn.result()[1].exited}, timeout=REAP_WAIT)
        raise
    pgid = transport.get_pid()  # a session leader's process group id is its pid
    killed = False
    try:
        await capture.exited
        kill_group(pgid, signal.SIGKILL)  # leftovers of a command that is done
        killed = True
        await asyncio.wait({capture.closed}, timeout=PIPE_GRACE)
    except asyncio.CancelledError:
        if not capture.exited.done():
            kill_group(pgid, signal.SIGTERM)
            await asyncio.wait({capture.exited}, timeout=TERM_GRACE)
        raise
    finally:
        try:
            if not killed:  # cancelled, maybe again during the grace: no more grace
                kill_group(pgid, signal.SIGKILL)
                # Reaped before the call ends: nothing of ours outlives it, and the
                # transport learns the exit status (on a loop closed before that, the
                # exit would go unrecorded and the process object would warn).
                await asyncio.wait({capture.exited}, timeout=REAP_WAIT)
        finally:
            transport.close()
    returncode = transport.get_returncode()
    assert returncode is not None  # exited is only set once it is known
    text = bytes(capture.kept).decode("utf-8", errors="replace")
    return Completed(returncode, redact(text), capture.seen > len(capture.kept))
