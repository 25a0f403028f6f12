"""A real Prometheus scrapes the daemon every second; promtool checks a scrape of it.

Prometheus sees the daemon's series through its HTTP query API. Skipped only when no
``prometheus`` / ``promtool`` binary is on PATH (Debian package ``prometheus``, which
scripts/test installs). Prometheus listens on loopback, keeps its data in the test's
temporary directory, and is stopped by pid.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from daemon_support import cli, http_get, running, write
from prometheus_support import needs_prometheus, prometheus

pytestmark = pytest.mark.integration
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
        with prometheus(tmp_path, daemon.metrics_port) as server:
            found = server.wait_for('engined_health_status{component="db",status="healthy"} == 1')
            assert found == {
                (("component", "db"), ("component_type", "custom"), ("status", "healthy")): 1.0
            }
            overall = server.series("engined_health_overall_status == 1")
            assert overall == {(("status", "healthy"),): 1.0}
            assert server.series('up{job="engined"}') == {(): 1.0}
