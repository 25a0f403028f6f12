"""Helpers for the daemon's end-to-end tests: ``python -m engined`` as a user runs it.

Every daemon is a subprocess of ``sys.executable -m engined serve`` on free loopback
ports, logging JSON lines to a file the test reads; it is stopped by pid (SIGTERM, then
SIGKILL if it hangs) when the test ends, whatever happened. Every wait has a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ENGINED = [sys.executable, "-m", "engined"]
GRPCURL = Path(sys.executable).with_name("grpcurl")
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for(predicate: Callable[[], Any], *, within: float = 15.0, what: str = "") -> Any:
    """Poll ``predicate`` on the real clock until it returns something truthy; return it."""
    deadline = time.monotonic() + within  # noqa: TID251 - end-to-end tests wait on real time
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:  # noqa: TID251
            pytest.fail(f"not within {within} s: {what or predicate}")
        time.sleep(0.05)  # noqa: TID251


def cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m engined ARGS`` to its end."""
    return subprocess.run(
        [*ENGINED, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def http_get(port: int, path: str, *, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:``port``: status, headers (lower-case names), body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


class Daemon:
    """A running ``engined serve`` subprocess and what it logged."""

    def __init__(
        self,
        config: Path | None,
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.log_path = log
        args = [
            *ENGINED,
            "serve",
            "--port",
            str(self.grpc_port),
            "--metrics-port",
            str(self.metrics_port),
            "--log-format",
            "json",
            *extra,
        ]
        if config is not None:
            args += ["--config", str(config)]
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **(env or {})},
            )

    @property
    def target(self) -> str:
        """``127.0.0.1:<grpc port>``."""
        return f"127.0.0.1:{self.grpc_port}"

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (a line still being written is skipped)."""
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def events(self, event: str, **match: object) -> list[dict[str, Any]]:
        """The log lines of ``event`` whose fields equal ``match``."""
        return [
            line
            for line in self.lines()
            if line.get("event") == event and all(line.get(k) == v for k, v in match.items())
        ]

    def wait_event(self, event: str, *, within: float = 15.0, **match: object) -> dict[str, Any]:
        """The first log line of ``event`` matching ``match``, waiting for it."""

        def found() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                pytest.fail(f"the daemon exited ({self.proc.returncode}):\n{self.tail()}")
            hits = self.events(event, **match)
            return hits[0] if hits else None

        hit: dict[str, Any] = wait_for(found, within=within, what=f"{event} {match}")
        return hit

    def wait_serving(self) -> None:
        """Until the daemon logged that it serves."""
        self.wait_event("serving", within=30)

    def tail(self) -> str:
        """The end of the log, for failure messages."""
        return self.log_path.read_text(encoding="utf-8")[-3000:]

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` by pid."""
        os.kill(self.proc.pid, signum)

    def terminate(self, *, within: float = 10.0) -> int:
        """SIGTERM by pid and the exit status; SIGKILL and fail if it does not exit in time."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the daemon ignored SIGTERM for {within} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL by pid if still running, and reap."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def component(self, name: str) -> dict[str, Any] | None:
        """The component ``name`` from ``engined status --json``, or None."""
        out = cli("status", "--target", self.target, "--json")
        if out.returncode != 0:
            return None
        for component in json.loads(out.stdout)["health"].get("components", []):
            if component["name"] == name:
                found: dict[str, Any] = component
                return found
        return None


@contextmanager
def running(
    config: Path | None,
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[Daemon]:
    """A daemon serving for the block, killed by pid afterwards whatever happened."""
    daemon = Daemon(config, tmp_path / f"daemon-{free_port()}.log", env=env, extra=extra)
    try:
        daemon.wait_serving()
        yield daemon
    finally:
        if daemon.proc.poll() is None:
            daemon.signal(signal.SIGTERM)
            try:
                daemon.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``; return it."""
    path.write_text(text, encoding="utf-8")
    return path
