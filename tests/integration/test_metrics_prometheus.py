"""A real Prometheus server (Debian's ``prometheus``) scraping engined's metrics every second.

The test serves a populated registry over HTTP on 127.0.0.1, starts Prometheus on a free
loopback port with a generated ``prometheus.yml`` and its data in ``tmp_path``, and polls
Prometheus's query API until the series appear (bounded). Prometheus is killed by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from metrics_scrape_support import MetricsServer, missing, populated

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing("prometheus") is not None, reason=str(missing("prometheus"))),
]

WITHIN = 30.0  # seconds for Prometheus to start and scrape


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Prometheus:
    """A Prometheus process scraping one target every second; killed by pid on exit."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        self.port = _free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: engined\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n",
            encoding="utf-8",
        )
        self._log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: the process never outlives the test."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its ``data``; raise on failure."""
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant query: each series' labels (without __name__, job, instance) -> value."""
        found = {}
        for series in self.api("query", query=expression)["result"]:
            labels = {
                key: value
                for key, value in series["metric"].items()
                if key not in ("__name__", "job", "instance")
            }
            found[tuple(sorted(labels.items()))] = float(series["value"][1])
        return found

    def wait_for(self, expression: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Poll until ``expression`` has a result (Prometheus up, scraped at least once)."""
        deadline = time.monotonic() + WITHIN  # noqa: TID251 - a real server on real time
        while True:
            assert self.proc.poll() is None, "prometheus exited; see prometheus.log"
            with contextlib.suppress(OSError):
                found = self.query(expression)
                if found:
                    return found
            assert time.monotonic() < deadline, f"no {expression} within {WITHIN} s"  # noqa: TID251
            time.sleep(0.25)  # noqa: TID251


@pytest.fixture
async def scraped(tmp_path: Path) -> AsyncIterator[Prometheus]:
    feeds = await populated()
    with MetricsServer(feeds.registry) as server:
        prometheus = Prometheus(tmp_path, server.port)
        try:
            yield prometheus
        finally:
            prometheus.stop()


def test_prometheus_scrapes_every_family_through_its_query_api(scraped: Prometheus) -> None:
    """Prometheus ingests the scrape: breaker, health, heal, retry, build and gRPC series."""
    builds = scraped.wait_for("engined_build_info")
    assert list(builds.values()) == [1.0]
    up = scraped.query('up{job="engined"}')
    assert list(up.values()) == [1.0]
    state = scraped.query('engined_circuit_breaker_state{state="open"} == 1')
    assert state == {(("breaker", "rpc:db:5432"), ("state", "open")): 1.0}
    assert scraped.query("count(engined_circuit_breaker_state)") == {(): 25.0}
    health = scraped.query('engined_health_status{component="cache"} == 1')
    assert health == {
        (("component", "cache"), ("component_type", "cache"), ("status", "degraded")): 1.0
    }
    heals = scraped.query('engined_heal_attempts_total{component="queue",result="failure"}')
    assert list(heals.values()) == [2.0]
    retries = scraped.query('engined_retry_attempts_total{name="payments-api"}')
    assert list(retries.values()) == [1.0]
    handled = scraped.query('sum by (grpc_code) (grpc_server_handled_total{grpc_method="Get"})')
    assert handled == {(("grpc_code", "NotFound"),): 1.0, (("grpc_code", "OK"),): 2.0}


def test_prometheus_reports_a_healthy_target_with_no_scrape_error(scraped: Prometheus) -> None:
    """The target is up and its last scrape raised no error (no format or name problem)."""
    scraped.wait_for('up{job="engined"} == 1')
    targets = scraped.api("targets")["activeTargets"]
    assert [(target["health"], target["lastError"]) for target in targets] == [("up", "")]
    samples = scraped.query('scrape_samples_scraped{job="engined"}')
    assert next(iter(samples.values())) > 100
