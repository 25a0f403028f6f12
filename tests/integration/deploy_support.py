"""Helpers for the tests of deploy/: a daemon that exports every family, a real Prometheus.

``all_families_config(tmp_path)`` writes an engined.toml whose components make every
engined_* family appear: a healthy python check that trips one breaker, keeps another at a
50 % failure ratio and calls a named retry that needs two retries per call; and a command
check that always fails, with a heal that runs twice and is then exhausted.
``prometheus(...)`` runs Debian's ``prometheus`` on a free loopback port, scraping one
target every second, its data in the test's directory, stopped by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon_support import REPO_ROOT, free_port, wait_for, write

DEPLOY = REPO_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "engined-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "engined-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "engined-dashboard.json"
KUBERNETES = DEPLOY / "kubernetes"

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="no prometheus on PATH (Debian package prometheus; scripts/test installs it)",
)
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="no promtool on PATH (Debian package prometheus; scripts/test installs it)",
)

TARGETS_MODULE = """\
import engined

# Trips at its first failure and stays open for a minute: state open, not_permitted calls.
payments = engined.circuit_breaker("payments", failure_threshold=1, recovery_timeout=60.0)
# One success and one failure per check: closed, failure ratio 0.5 from the second check.
search = engined.circuit_breaker(
    "search", failure_threshold=None, failure_rate_threshold=0.9, minimum_calls=2, window_size=10
)
_attempts = 0


@engined.retry(
    on=ConnectionError, attempts=3, backoff=engined.Backoff(initial=0.0), name="inventory"
)
def fetch_inventory() -> str:
    # Fails twice, then answers: every call makes three attempts.
    global _attempts
    _attempts += 1
    if _attempts % 3:
        raise ConnectionResetError("inventory busy")
    return "ok"


def _refused() -> None:
    raise ConnectionRefusedError("down")


def check() -> bool:
    try:
        payments.call(_refused)
    except (ConnectionError, engined.CircuitBreakerOpenError):
        pass
    search.call(lambda: None)
    try:
        search.call(_refused)
    except ConnectionError:
        pass
    return fetch_inventory() == "ok"
"""

CONFIG = """\
[[checks]]
name = "deps"
type = "python"
target = "deploy_targets:check"
component_type = "service"
interval = 0.5
critical = false

[[checks]]
name = "broken"
type = "command"
command = ["sh", "-c", "exit 2"]
component_type = "database"
interval = 0.5
failure_threshold = 1
heal_max_attempts = 2
heal_backoff_initial = 0.1
heal = { type = "command", command = ["true"] }
"""


def all_families_config(tmp_path: Path) -> Path:
    """Write the config and its python target module to ``tmp_path``; return the config."""
    write(tmp_path / "deploy_targets.py", TARGETS_MODULE)
    return write(tmp_path / "engined.toml", CONFIG)


@dataclass
class Prometheus:
    """A running Prometheus: its web port and log."""

    port: int
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar as one row) ``promql`` gives now; [] on any error."""
        body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        data = body.get("data", {})
        result = data.get("result", [])
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": result}]
        rows: list[dict[str, Any]] = result
        return rows

    def get(self, path: str) -> dict[str, Any]:
        """GET ``path`` from the HTTP API as JSON; {} when unreachable or refused."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                body: dict[str, Any] = json.loads(r.read())
        except (OSError, ValueError):
            return {}
        return body

    def tail(self) -> str:
        """The end of Prometheus's log, for failure messages."""
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


@contextmanager
def prometheus(
    workdir: Path, metrics_port: int, *, rule_files: Sequence[Path] = ()
) -> Iterator[Prometheus]:
    """Prometheus scraping 127.0.0.1:``metrics_port`` as job ``engined`` every second."""
    web = free_port()
    rules = "".join(f"  - {path}\n" for path in rule_files)
    config = write(
        workdir / "prometheus.yml",
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n  - job_name: engined\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n",
    )
    log = workdir / "prometheus.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = Prometheus(web, log)
    try:
        wait_for(
            lambda: proc.poll() is not None or _ready(web),
            within=30,
            what="Prometheus ready",
        )
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited ({proc.returncode}):\n{server.tail()}")
        yield server
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False
