"""Run a benchmark script's quick mode as a user would, and read the JSON it writes.

Every benchmark in ``benchmarks/`` takes ``--quick`` (tiny loops, one repeat) and
``--json FILE``; their smoke tests only differ in what they check of the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_quick(script: str, tmp_path: Path, *, timeout: float = 50) -> tuple[dict[str, Any], str]:
    """Run ``benchmarks/<script> --quick --json`` to its end; fail unless it exits 0.

    Returns:
        The JSON report and what the script printed (its Markdown tables and verdicts).
    """
    out = tmp_path / f"{Path(script).stem}.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / script), "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report, proc.stdout
