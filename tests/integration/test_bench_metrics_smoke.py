"""Smoke test of the metrics scrape benchmark: its quick mode runs and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import run_quick

pytestmark = pytest.mark.integration


def test_quick_metrics_benchmark_scrapes_the_full_size_and_reports(tmp_path: Path) -> None:
    """bench_metrics.py --quick scrapes 1,000 breakers and components and writes every figure."""
    report, printed = run_quick("bench_metrics.py", tmp_path)
    assert (report["breakers"], report["components"]) == (1000, 1000)
    assert report["samples"] > 25_000
    for key in ("scrape", "collect_only", "generate_latest", "reference_loop"):
        figures = report[key]
        assert 0 < figures["wall_ms_min"] <= figures["wall_ms_median"] <= figures["wall_ms_p90"]
        assert figures["cpu_ms_median"] > 0
    assert report["collect_only"]["wall_ms_min"] < report["scrape"]["wall_ms_median"]
    assert 0 < report["scrape_in_reference_loops"] < 10
    assert report["status"] in {"PASS", "FAIL"}
    assert "median scrape < 50 ms" in printed
