"""Smoke tests of the benchmarks: each one's quick mode runs and reports engined."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_breakers.py"
CASES = ("sync_success", "sync_failure", "sync_open_reject", "async_success", "async_open_reject")
RETRY_SCRIPT = REPO_ROOT / "benchmarks" / "bench_retry.py"
RETRY_CASES = ("sync_success", "sync_success_budget", "async_success", "async_success_budget")


@pytest.mark.integration
def test_quick_benchmark_reports_every_case_for_engined(tmp_path: Path) -> None:
    """The quick benchmark exits 0 and writes a positive figure for engined in every case."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert "engined" not in report["skipped"], report["skipped"]
    for case in CASES:
        assert report["ns_per_call"][case]["engined"] > 0, case
        assert isinstance(report["retained_bytes_per_call"][case]["engined"], float), case
    assert report["threads_calls_per_s"]["engined"] > 0


@pytest.mark.integration
def test_quick_retry_benchmark_reports_every_case_for_engined(tmp_path: Path) -> None:
    """The quick retry benchmark exits 0 and writes a positive figure for engined in every case."""
    out = tmp_path / "bench_retry.json"
    proc = subprocess.run(
        [sys.executable, str(RETRY_SCRIPT), "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert "engined" not in report["skipped"], report["skipped"]
    for case in RETRY_CASES:
        assert report["ns_per_call"][case]["engined"] > 0, case
    assert len(report["targets"]) == len(RETRY_CASES)
