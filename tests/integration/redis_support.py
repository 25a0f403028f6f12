"""A real ``redis-server`` for a test: on a free loopback port, in tmp_path, stopped by pid.

``started(tmp_path)`` runs one for a ``with`` block. ``RedisServer.start()`` waits (bounded)
until it answers PING; ``kill()`` stops it (SIGKILL by default, a crash; SIGKILL after 5 s
for any signal) and ``start()`` brings it back on the same port, which is how the tests
play an outage. Without ``redis-server`` on PATH the test is skipped, saying so
(``scripts/test`` installs Debian's package when run as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from daemon_support import free_port

REDIS_SERVER = shutil.which("redis-server")
START_WITHIN = 10.0


class RedisServer:
    """One redis-server process at a time on a fixed port, restartable.

    Args:
        directory: Its working directory (AOF files go there when ``durable``).
        password: ``--requirepass``, or None.
        durable: Append-only file with fsync on every write, so a SIGKILL loses nothing
            that was acknowledged (the event-bus scenario needs its stream to survive).
    """

    def __init__(self, directory: Path, *, password: str | None = None, durable: bool = False):
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        """The command line: loopback only, no RDB snapshots, DEBUG allowed for slowdowns."""
        assert REDIS_SERVER is not None
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--dir", str(self.directory), "--enable-debug-command", "yes"]
        if self.durable:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv

    def start(self) -> None:
        """Start it and wait until it answers PING (fail the test after 10 s)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            self.argv(), cwd=self.directory, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_WITHIN  # noqa: TID251 - a real server starting
        while not self._answers():
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited ({self.proc.returncode}): {self.log_tail()}")
            if time.monotonic() > deadline:  # noqa: TID251
                self.kill()
                pytest.fail(f"redis-server did not answer within {START_WITHIN} s")
            time.sleep(0.02)  # noqa: TID251

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def kill(self, signum: signal.Signals = signal.SIGKILL) -> None:
        """Stop it by pid with ``signum`` (SIGKILL: a crash), SIGKILL after 5 s; reap it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signum)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def command(self, *args: str) -> bytes:
        """Send one command on a fresh connection (AUTH first if needed); its raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            if self.password:
                sock.sendall(_encode("AUTH", self.password))
                sock.recv(64)
            sock.sendall(_encode(*args))
            return sock.recv(65536)

    def log_tail(self) -> str:
        """The end of its log, for failure messages."""
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _encode(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out += [b"$%d\r\n" % len(data), data, b"\r\n"]
    return b"".join(out)


@contextmanager
def started(
    tmp_path: Path, *, password: str | None = None, durable: bool = False
) -> Iterator[RedisServer]:
    """A running redis-server for the block, stopped by pid afterwards whatever happened.

    Skips the test when ``redis-server`` is not installed.
    """
    if REDIS_SERVER is None:
        pytest.skip("redis-server not found (scripts/test installs it as root)")
    directory = tmp_path / f"redis-{free_port()}"
    directory.mkdir()
    server = RedisServer(directory, password=password, durable=durable)
    server.start()
    try:
        yield server
    finally:
        server.kill(signal.SIGTERM)
