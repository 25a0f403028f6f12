"""SIGHUP reloads the config: kept checks keep their history, a bad file changes nothing.

The daemon runs ``a``, failing with a heal that fails, so it builds up a check count and
heal attempts (EXHAUSTED after two), and ``b``. The new config keeps ``a`` as it was,
drops ``b`` and adds ``c``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_support import Daemon, cli, running, wait_for, write

pytestmark = pytest.mark.integration

A = """\
[[checks]]
name = "a"
type = "command"
command = ["sh", "-c", "exit 2"]
interval = 0.3
heal_max_attempts = 2
heal_backoff_initial = 0.1
heal = { type = "command", command = ["false"] }
"""
B = '\n[[checks]]\nname = "b"\ntype = "command"\ncommand = ["true"]\ninterval = 0.3\n'
C = '\n[[checks]]\nname = "c"\ntype = "command"\ncommand = ["true"]\ninterval = 0.3\n'


def components(daemon: Daemon) -> dict[str, dict[str, Any]]:
    out = cli("status", "--target", daemon.target, "--json")
    assert out.returncode == 0, out.stderr
    return {c["name"]: c for c in json.loads(out.stdout)["health"].get("components", [])}


def exhausted(daemon: Daemon) -> dict[str, Any] | None:
    a = components(daemon).get("a")
    return a if a and a["heal_state"] == "HEAL_STATE_EXHAUSTED" else None


def test_a_good_config_keeps_unchanged_checks_and_swaps_the_rest(tmp_path: Path) -> None:
    """After SIGHUP, `a` keeps its count and heal attempts, `b` is gone and `c` is there."""
    config = write(tmp_path / "engined.toml", A + B)
    with running(config, tmp_path) as daemon:
        before = wait_for(lambda: exhausted(daemon), what="a exhausted")
        write(config, A + C)
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_event("config_reloaded")
        assert (reloaded["kept"], reloaded["added"], reloaded["removed"]) == ("a", "c", "b")
        assert reloaded["changed"] == ""
        after = wait_for(lambda: "c" in (now := components(daemon)) and now)
        assert sorted(after) == ["a", "c"]
        a = after["a"]
        assert int(a["check_count"]) >= int(before["check_count"])
        assert (a["heal_attempts"], a["heal_state"]) == ("2", "HEAL_STATE_EXHAUSTED")
        assert a["last_heal_error"] == before["last_heal_error"]


def test_a_changed_check_starts_over(tmp_path: Path) -> None:
    """A check whose settings changed is registered anew: its history starts over."""
    config = write(tmp_path / "engined.toml", A)
    with running(config, tmp_path) as daemon:
        wait_for(lambda: exhausted(daemon), what="a exhausted")
        write(config, A.replace("heal_max_attempts = 2", "heal_max_attempts = 50"))
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_event("config_reloaded")["changed"] == "a"
        assert components(daemon)["a"]["heal_state"] != "HEAL_STATE_EXHAUSTED"


def test_a_bad_config_is_refused_in_one_line_and_the_old_one_runs_on(tmp_path: Path) -> None:
    """A broken file on SIGHUP: one error line naming the key; a, b and serving unchanged."""
    config = write(tmp_path / "engined.toml", A + B)
    with running(config, tmp_path) as daemon:
        wait_for(lambda: components(daemon).get("b", {}).get("status") == "HEALTH_STATUS_HEALTHY")
        write(config, A + C.replace("interval = 0.3", "interval = -1"))
        daemon.signal(signal.SIGHUP)
        refused = daemon.wait_event("reload_refused")
        assert refused["key"] == "checks[1].interval"
        assert refused["line"] == 14
        assert "checks[1].interval: must be > 0; got -1" in refused["msg"]
        errors = [line for line in daemon.lines() if line["level"] == "error"]
        assert errors == [refused]
        write(config, "[[checks]\n")  # a TOML syntax error, too
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: len(daemon.events("reload_refused")) == 2)
        assert sorted(components(daemon)) == ["a", "b"]
        assert daemon.proc.poll() is None
        assert daemon.events("config_reloaded") == []
