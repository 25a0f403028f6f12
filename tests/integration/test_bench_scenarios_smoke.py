"""Smoke test of the scenario benchmark: its quick mode runs and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import run_quick

pytestmark = pytest.mark.integration


def test_quick_scenario_benchmark_reports_percentiles_and_rates_for_every_case(
    tmp_path: Path,
) -> None:
    """bench_scenarios.py --quick exits 0 with ordered percentiles and positive rates per case."""
    report, printed = run_quick("bench_scenarios.py", tmp_path)
    assert "| tcp | engined |" in printed
    assert sorted(report["figures"]) == sorted(
        [
            "inproc_bare",
            "inproc_floor",
            "inproc_engined",
            "tcp_bare",
            "tcp_floor",
            "tcp_engined",
            "grpc_bare",
            "grpc_engined",
        ]
    )
    for case, figures in report["figures"].items():
        assert 0 < figures["p50_us"] <= figures["p95_us"] <= figures["p99_us"], case
        assert figures["calls_per_s"] > 0, case
        assert figures["calls_per_s_16_in_flight"] > 0, case
    assert [t["status"] in {"PASS", "FAIL"} for t in report["targets"]] == [True, True]
