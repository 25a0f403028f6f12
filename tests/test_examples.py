"""Every example in examples/ runs, finishes in under 3 s and exits 0."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))

pytestmark = pytest.mark.integration


def test_there_are_examples() -> None:
    """The examples folder is not empty (a glob typo would otherwise pass silently)."""
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_quickly_and_cleanly(path: Path) -> None:
    """The example exits 0 within 3 s and prints what it does."""
    started = time.perf_counter()  # noqa: TID251  # real time: examples run on the real clock
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=10, check=False
    )
    elapsed = time.perf_counter() - started  # noqa: TID251
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an example should show what happens"
    assert elapsed < 3.0, f"{path.name} took {elapsed:.2f}s"
