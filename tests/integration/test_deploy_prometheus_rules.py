"""deploy/prometheus/engined-rules.yml: promtool accepts it, its unit tests pass, and they bite.

``promtool check rules`` and ``promtool test rules`` run on the shipped files and must be
clean; copies broken on purpose in ``tmp_path`` must make them fail, so a pass means
something. A real Prometheus then loads the rules while scraping a daemon that exports
every family: every rule evaluates without error and exactly the alerts that daemon's
state calls for become pending. Skipped only without ``promtool`` / ``prometheus`` on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from daemon_support import running, wait_for
from deploy_support import (
    RULE_TESTS,
    RULES,
    all_families_config,
    needs_prometheus,
    needs_promtool,
    prometheus,
)

pytestmark = pytest.mark.integration

SEVERITIES = {"critical", "warning", "info"}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    """The rules with ``old`` replaced by ``new``, beside a copy of the unit tests."""
    text = RULES.read_text(encoding="utf-8")
    assert old in text, old
    (tmp_path / "tests").mkdir()
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    copy = tmp_path / RULES.name
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return copy


@needs_promtool
def test_promtool_check_rules_accepts_the_rules() -> None:
    """``promtool check rules`` finds every rule and reports nothing else."""
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr == ""
    lines = [line.strip() for line in checked.stdout.splitlines() if line.strip()]
    assert lines == [f"Checking {RULES}", f"SUCCESS: {len(rules())} rules found"]


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    """``promtool test rules`` on deploy/prometheus/tests succeeds."""
    tested = promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    assert "FAILED" not in tested.stdout + tested.stderr


@needs_promtool
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("expr: engined_heal_exhausted == 1", "expr: engined_heal_exhausted == "),  # PromQL
        ("{{ $labels.component }} on", "{{ $labels.component on"),  # template
        ("for: 10m", "for: ten minutes"),  # duration
    ],
    ids=["promql", "template", "duration"],
)
def test_promtool_check_rules_refuses_a_broken_copy(tmp_path: Path, old: str, new: str) -> None:
    """A syntax error in an expression, a template or a duration fails the check."""
    checked = promtool("check", "rules", broken_copy(tmp_path, old, new))
    assert checked.returncode != 0, checked.stdout
    assert "FAILED" in checked.stdout + checked.stderr


@needs_promtool
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("engined_heal_exhausted == 1", "engined_heal_exhausted >= 0"),
        ('state=~"open|half_open"', 'state="open"'),
        ("ratio_rate5m > 1.5", "ratio_rate5m > 3.5"),
        ("rate5m > 0.2", "rate5m > 0.01"),
        ('up{job=~"engined.*"} == 0', 'up{job=~".+"} == 0'),
        ("for: 1h", "for: 30m"),
        ('status="healthy"} == 0', 'status="unhealthy"} == 1'),
        ('engined_health_status{status="unhealthy"} == 1', "engined_health_status == 1"),
        (") >= 3", ") >= 1"),
        ("for: 2m", "for: 0m"),
    ],
    ids=[
        "heal-exhausted",
        "breaker-open-only",
        "retry-ratio",
        "retry-floor",
        "job-regex",
        "override-for",
        "not-healthy",
        "component-any-status",
        "flapping-once",
        "down-at-once",
    ],
)
def test_the_unit_tests_catch_a_changed_rule(tmp_path: Path, old: str, new: str) -> None:
    """A rule that still parses but decides differently fails ``promtool test rules``."""
    copy = broken_copy(tmp_path, old, new)
    assert promtool("check", "rules", copy).returncode == 0  # valid, only wrong
    tested = promtool("test", "rules", tmp_path / "tests" / RULE_TESTS.name)
    assert tested.returncode != 0, tested.stdout
    assert "FAILED" in tested.stdout + tested.stderr


def test_every_alert_has_a_severity_and_its_annotations() -> None:
    """Each alert has a known severity, no template in its labels, a summary and description."""
    for alert in alerts():
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["severity"] in SEVERITIES, alert["alert"]
        assert not any("{{" in str(value) for value in labels.values()), alert["alert"]
        assert annotations["summary"].strip(), alert["alert"]
        assert annotations["description"].strip(), alert["alert"]


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """Each alert has a unit test expecting it to fire and one expecting no firing alert."""
    document = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in document["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set(), "never tested firing"
    assert names - quiet == set(), "never tested quiet"


@needs_prometheus
@pytest.mark.timeout(150)  # up to 30 s to start and 60 s to see every series
def test_a_real_prometheus_evaluates_every_rule_on_a_real_daemon(tmp_path: Path) -> None:
    """Loaded by Prometheus over a live scrape, every rule is healthy and the right alerts pend."""
    # The daemon of deploy_support: "broken" is a critical component, UNHEALTHY with its
    # heals exhausted; breaker "payments" is open; retry "inventory" makes 3 attempts per call.
    expected = {
        "EnginedNotHealthy",
        "EnginedUnhealthy",
        "EnginedComponentUnhealthy",
        "EnginedHealExhausted",
        "EnginedCircuitBreakerOpen",
        "EnginedRetryRateHigh",
    }
    with running(all_families_config(tmp_path), tmp_path) as daemon:
        daemon.wait_event("heal_exhausted", component="broken", within=30)
        with prometheus(tmp_path, daemon.metrics_port, rule_files=[RULES]) as server:

            def pending() -> set[str]:
                rows = server.query('ALERTS{alertstate=~"pending|firing"}')
                return {row["metric"]["alertname"] for row in rows}

            wait_for(lambda: expected <= pending(), within=60, what=f"pending {expected}")
            assert pending() == expected
            groups = server.get("/api/v1/rules")["data"]["groups"]
            evaluated = [rule for group in groups for rule in group["rules"]]
            assert len(evaluated) == len(rules())
            for rule in evaluated:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
            exhausted = server.query('ALERTS{alertname="EnginedHealExhausted"}')
            assert [row["metric"]["component"] for row in exhausted] == ["broken"]
            assert exhausted[0]["metric"]["severity"] == "critical"
