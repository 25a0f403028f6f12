"""Smoke test of the daemon benchmark: its quick mode runs and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import run_quick

pytestmark = pytest.mark.integration


def test_quick_daemon_benchmark_reports_every_server_and_kind(tmp_path: Path) -> None:
    """bench_daemon.py --quick exits 0 with positive rates and latencies for each case."""
    report, _ = run_quick("bench_daemon.py", tmp_path)
    cases = sorted(
        f"{s}_{k}" for s in ("daemon", "bare", "floor") for k in ("overall", "component")
    )
    for figure in ("calls_per_s", "p50_ms", "p99_ms"):
        assert sorted(report[figure]) == cases
        assert all(value > 0 for value in report[figure].values()), figure
    assert report["p99_ms"]["daemon_overall"] >= report["p50_ms"]["daemon_overall"]
    assert all(count > 0 for count in report["watch_messages"].values()), report["watch_messages"]
    assert sorted(report["idle_cpu_pct"]) == ["bare", "daemon", "floor"]
    assert report["idle_cpu_pct"]["daemon"] > 0  # it runs a check per component and second
    assert len(report["targets"]) == 4
    assert {target["status"] for target in report["targets"]} <= {"PASS", "FAIL"}
