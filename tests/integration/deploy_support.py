"""Helpers for the tests of deploy/: a daemon that exports every family, a real Prometheus.

``all_families_config(tmp_path)`` writes an engined.toml whose components make every
engined_* family appear: a healthy python check that trips one breaker, keeps another at a
50 % failure ratio and calls a named retry that needs two retries per call; and a command
check that always fails, with a heal that runs twice and is then exhausted.
``prometheus(...)`` (from prometheus_support) runs Debian's ``prometheus`` scraping it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from daemon_support import REPO_ROOT, write
from prometheus_support import Prometheus, needs_prometheus, prometheus

__all__ = [
    "DASHBOARD",
    "DEPLOY",
    "KUBERNETES",
    "RULES",
    "RULE_TESTS",
    "Prometheus",
    "all_families_config",
    "needs_prometheus",
    "needs_promtool",
    "prometheus",
]

DEPLOY = REPO_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "engined-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "engined-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "engined-dashboard.json"
KUBERNETES = DEPLOY / "kubernetes"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="no promtool on PATH (Debian package prometheus; scripts/test installs it)",
)

TARGETS_MODULE = """\
import engined

# Trips at its first failure and stays open for a minute: state open, not_permitted calls.
payments = engined.circuit_breaker("payments", failure_threshold=1, recovery_timeout=60.0)
# One success and one failure per check: closed, failure ratio 0.5 from the second check.
search = engined.circuit_breaker(
    "search", failure_threshold=None, failure_rate_threshold=0.9, minimum_calls=2, window_size=10
)
_attempts = 0


@engined.retry(
    on=ConnectionError, attempts=3, backoff=engined.Backoff(initial=0.0), name="inventory"
)
def fetch_inventory() -> str:
    # Fails twice, then answers: every call makes three attempts.
    global _attempts
    _attempts += 1
    if _attempts % 3:
        raise ConnectionResetError("inventory busy")
    return "ok"


def _refused() -> None:
    raise ConnectionRefusedError("down")


def check() -> bool:
    try:
        payments.call(_refused)
    except (ConnectionError, engined.CircuitBreakerOpenError):
        pass
    search.call(lambda: None)
    try:
        search.call(_refused)
    except ConnectionError:
        pass
    return fetch_inventory() == "ok"
"""

CONFIG = """\
[[checks]]
name = "deps"
type = "python"
target = "deploy_targets:check"
component_type = "service"
interval = 0.5
critical = false

[[checks]]
name = "broken"
type = "command"
command = ["sh", "-c", "exit 2"]
component_type = "database"
interval = 0.5
failure_threshold = 1
heal_max_attempts = 2
heal_backoff_initial = 0.1
heal = { type = "command", command = ["true"] }
"""


def all_families_config(tmp_path: Path) -> Path:
    """Write the config and its python target module to ``tmp_path``; return the config."""
    write(tmp_path / "deploy_targets.py", TARGETS_MODULE)
    return write(tmp_path / "engined.toml", CONFIG)
