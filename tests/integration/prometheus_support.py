"""A real Prometheus (Debian's ``prometheus``) scraping one loopback target every second.

``prometheus(workdir, port)`` writes a ``prometheus.yml`` (job ``engined``, scrape and rule
evaluation every second, optional rule files), runs the server on a free loopback port
with its data in ``workdir``, waits until it is ready, and stops it by pid (SIGTERM, then
SIGKILL) however the test ends. The tests of the metrics, of the daemon and of deploy/
share it.
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
from daemon_support import free_port, wait_for, write

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="no prometheus on PATH (Debian package prometheus; scripts/test installs it)",
)

Labels = tuple[tuple[str, str], ...]


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

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/``path`` and return its ``data``; fail the test unless it succeeded."""
        body = self.get(f"/api/v1/{path}?" + urllib.parse.urlencode(params))
        assert body.get("status") == "success", body or f"no answer from Prometheus\n{self.tail()}"
        return body["data"]

    def series(self, promql: str) -> dict[Labels, float]:
        """Each series of ``promql`` now: its labels (no __name__, job, instance) -> value."""
        found: dict[Labels, float] = {}
        for row in self.query(promql):
            labels = {
                key: value
                for key, value in row["metric"].items()
                if key not in ("__name__", "job", "instance")
            }
            found[tuple(sorted(labels.items()))] = float(row["value"][1])
        return found

    def wait_for(self, promql: str, *, within: float = 30.0) -> dict[Labels, float]:
        """Poll until ``promql`` has a result (scraped at least once); return :meth:`series`."""
        found: dict[Labels, float] = wait_for(
            lambda: self.series(promql), within=within, what=f"{promql} in Prometheus"
        )
        return found

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
