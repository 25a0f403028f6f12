"""Smoke tests of the benchmarks: each one's quick mode runs and reports engined."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO_ROOT / "benchmarks"
CASES = ("sync_success", "sync_failure", "sync_open_reject", "async_success", "async_open_reject")
RETRY_CASES = ("sync_success", "sync_success_budget", "async_success", "async_success_budget")

pytestmark = pytest.mark.integration


def _run_quick(script: str, out: Path, timeout: float) -> Any:
    """Run ``benchmarks/<script> --quick --json out``; assert it exits 0; return the JSON."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_quick_benchmark_reports_every_case_for_engined(tmp_path: Path) -> None:
    """The quick benchmark exits 0 and writes a positive figure for engined in every case."""
    report = _run_quick("bench_breakers.py", tmp_path / "bench.json", timeout=45)
    assert "engined" not in report["skipped"], report["skipped"]
    for case in CASES:
        assert report["ns_per_call"][case]["engined"] > 0, case
        assert isinstance(report["retained_bytes_per_call"][case]["engined"], float), case
    assert report["threads_calls_per_s"]["engined"] > 0


def test_quick_retry_benchmark_reports_every_case_for_engined(tmp_path: Path) -> None:
    """The quick retry benchmark exits 0 and writes a positive figure for engined in every case."""
    report = _run_quick("bench_retry.py", tmp_path / "bench_retry.json", timeout=30)
    assert "engined" not in report["skipped"], report["skipped"]
    for case in RETRY_CASES:
        assert report["ns_per_call"][case]["engined"] > 0, case
    assert len(report["targets"]) == len(RETRY_CASES)


def test_quick_health_benchmark_measures_lag_and_cpu(tmp_path: Path) -> None:
    """The quick health benchmark runs every check about once per second and reports its lag."""
    report = _run_quick("bench_health.py", tmp_path / "bench_health.json", timeout=30)
    assert report["checks"] == 100
    assert report["runs"] >= 0.5 * report["expected_runs"]
    assert -1.0 <= report["lag_p50_ms"] <= report["lag_p99_ms"] <= report["lag_max_ms"]  # ms
    assert 0 < report["cpu_share"] < 1.5
