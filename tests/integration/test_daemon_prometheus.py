"""A real Prometheus server scrapes the daemon's /metrics every second and sees its series.

Skipped only when no ``prometheus`` binary is on PATH (Debian package ``prometheus``).
Prometheus listens on loopback, keeps its data in the test's temporary directory, and is
stopped by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from daemon_support import free_port, running, wait_for, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus on PATH"),
]

CONFIG = '[[checks]]\nname = "db"\ntype = "command"\ncommand = ["true"]\ninterval = 0.5\n'


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except OSError:
        return []
    result: list[dict[str, Any]] = body.get("data", {}).get("result", [])
    return result


def test_prometheus_scrapes_the_daemon(tmp_path: Path) -> None:
    """Within 30 s Prometheus stores the health one-hot, the overall status and gRPC counts."""
    with running(write(tmp_path / "engined.toml", CONFIG), tmp_path) as daemon:
        daemon.wait_event("transition", component="db", to="healthy")
        web = free_port()
        scrape = write(
            tmp_path / "prometheus.yml",
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: engined\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{daemon.metrics_port}']\n",
        )
        with (tmp_path / "prometheus.log").open("w") as log:
            prometheus = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={scrape}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{web}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            found = wait_for(
                lambda: query(web, 'engined_health_status{component="db",status="healthy"} == 1'),
                within=30,
                what="engined_health_status in Prometheus",
            )
            assert found[0]["metric"]["component_type"] == "custom"
            overall = query(web, "engined_health_overall_status == 1")
            assert [r["metric"]["status"] for r in overall] == ["healthy"]
            up = query(web, 'up{job="engined"}')
            assert up[0]["value"][1] == "1"
        finally:
            os.kill(prometheus.pid, signal.SIGTERM)
            try:
                prometheus.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(prometheus.pid, signal.SIGKILL)
                prometheus.wait(timeout=10)
