"""A real Prometheus scrapes the daemon every second; promtool checks a scrape of it.

Prometheus sees the daemon's series through its HTTP query API. Skipped only when no
``prometheus`` / ``promtool`` binary is on PATH (Debian package ``prometheus``, which
scripts/test installs). Prometheus listens on loopback, keeps its data in the test's
temporary directory, and is stopped by pid.
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
from daemon_support import cli, free_port, http_get, running, wait_for, write

pytestmark = pytest.mark.integration
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="no prometheus on PATH"
)
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool on PATH")

CONFIG = '[[checks]]\nname = "db"\ntype = "command"\ncommand = ["true"]\ninterval = 0.5\n'

BREAKERS = """\
import engined

payments = engined.circuit_breaker("payments", failure_threshold=1)
engined.circuit_breaker("mail")


def check() -> bool:
    try:
        payments.call(_refused)
    except (ConnectionError, engined.CircuitBreakerOpenError):
        pass
    return False


def _refused() -> None:
    raise ConnectionRefusedError("payments down")
"""


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except OSError:
        return []
    result: list[dict[str, Any]] = body.get("data", {}).get("result", [])
    return result


@needs_promtool
def test_promtool_passes_a_scrape_of_the_daemon(tmp_path: Path) -> None:
    """Health, breakers (one open), gRPC server families: promtool check metrics is silent."""
    write(tmp_path / "daemon_breakers.py", BREAKERS)
    config = CONFIG + (
        '\n[[checks]]\nname = "pay"\ntype = "python"\ntarget = "daemon_breakers:check"\n'
        "interval = 0.5\nfailure_threshold = 1\ncritical = false\n"
    )
    with running(write(tmp_path / "engined.toml", config), tmp_path) as daemon:
        daemon.wait_event("transition", component="pay", to="unhealthy")
        assert cli("status", "--target", daemon.target).returncode == 0  # engined.v1 calls
        status, _, body = http_get(daemon.metrics_port, "/metrics")
    assert status == 200
    text = body.decode("utf-8")
    for needed in (
        'engined_circuit_breaker_state{breaker="payments",state="open"} 1.0',
        'engined_health_status{component="pay",component_type="custom",status="unhealthy"} 1.0',
    ):
        assert needed in text, needed
    assert any(
        line.startswith("grpc_server_handled_total{") and 'grpc_method="GetSystemHealth"' in line
        for line in text.splitlines()
    )
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


@needs_prometheus
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
