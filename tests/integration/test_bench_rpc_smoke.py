"""Smoke test of the gRPC client benchmark: its quick mode runs and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_support import run_quick

pytestmark = pytest.mark.integration


def test_quick_rpc_benchmark_reports_every_case(tmp_path: Path) -> None:
    """bench_rpc.py --quick exits 0 and writes a positive figure for every case and target."""
    report, _ = run_quick("bench_rpc.py", tmp_path)
    cpu = report["cpu_us_per_call"]
    assert sorted(cpu) == sorted(
        f"{s}_{k}" for s in ("aio", "sync") for k in ("bare", "noop", "engined")
    )
    assert all(value > 0 for value in cpu.values())
    failing = report["failing_call_wall_us"]
    assert sorted(failing) == sorted(
        f"{s}_{k}" for s in ("aio", "sync") for k in ("dead_fresh", "dead_same", "refuse", "open")
    )
    assert all(value > 0 for value in failing.values())
    alone = report["interceptor_alone_us"]
    assert sorted(alone) == ["aio_engined", "aio_noop", "sync_engined", "sync_noop"]
    assert all(value > 0 for value in alone.values())
    assert len(report["targets"]) == 6
    assert {target["status"] for target in report["targets"]} <= {"PASS", "FAIL"}
