"""deploy/grafana/engined-dashboard.json: a valid Grafana model whose every query finds data.

The static tests read the JSON: unique panel ids, panels that do not overlap, the
Prometheus data source taken from the ``datasource`` variable everywhere (an import input,
DS_PROMETHEUS, gives its default), an ``expr`` in every target. The end-to-end test starts
a daemon whose components export every family, makes gRPC calls to it, has a real
Prometheus scrape it every second, and runs every panel's and every variable's query with
the Grafana variables substituted: each must return a series with a number.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from daemon_support import cli, running, wait_for
from deploy_support import DASHBOARD, all_families_config, needs_prometheus, prometheus
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.integration

# What Grafana would put in place of its built-in variables for a 1 s scrape interval:
# $__rate_interval is at least four scrape intervals, so rate() always has two samples.
BUILT_IN = {"__rate_interval": "10s", "__interval": "2s", "__range": "1m"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard() -> dict[str, Any]:
    model: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return model


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in panels(model) if panel["type"] != "row"]


def variables(model: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = model["templating"]["list"]
    return found


def substitute(expr: str, names: set[str]) -> str:
    """``expr`` with Grafana's variables replaced: built-ins by durations, ours by ``.*``."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILT_IN:
            return BUILT_IN[name]
        if name in names:
            return ".*"
        return match.group(0)  # left for the caller's check

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def test_the_dashboard_has_unique_panel_ids_and_a_recent_schema() -> None:
    """Every panel has an id of its own, and the model is schemaVersion 36 to 41."""
    model = dashboard()
    ids = [panel["id"] for panel in panels(model)]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert all(isinstance(i, int) for i in ids)
    assert 36 <= model["schemaVersion"] <= 41
    assert model["uid"]
    assert model["title"]


def test_no_two_panels_overlap_on_the_grid() -> None:
    """No two panels' gridPos rectangles share a cell, and all fit in 24 columns."""
    taken: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard()):
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_every_query_uses_the_datasource_variable() -> None:
    """Each panel, target and query variable reads the Prometheus of ``${datasource}``."""
    model = dashboard()
    for panel in query_panels(model):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no target"
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, (panel["title"], target["refId"])
    for variable in variables(model):
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_the_datasource_variable_defaults_to_the_import_input() -> None:
    """Importing asks for DS_PROMETHEUS, which the ``datasource`` variable starts from."""
    model = dashboard()
    assert [(i["name"], i["type"], i["pluginId"]) for i in model["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    (source,) = [v for v in variables(model) if v["name"] == "datasource"]
    assert source["type"] == "datasource"
    assert source["query"] == "prometheus"
    assert source["current"]["value"] == "${DS_PROMETHEUS}"


def test_every_target_has_an_expr_with_only_known_variables() -> None:
    """Each target has a PromQL expr, a unique refId in its panel, and no unknown variable."""
    model = dashboard()
    names = {v["name"] for v in variables(model)}
    for panel in query_panels(model):
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            expr = target.get("expr", "")
            assert expr.strip(), (panel["title"], target["refId"])
            assert "$" not in substitute(expr, names), (panel["title"], expr)


def test_substitute_replaces_grafana_variables() -> None:
    """Built-in intervals become durations, dashboard variables ``.*``, unknown ones stay."""
    got = substitute(
        'rate(x{job=~"$job",i=~"${instance}"}[$__rate_interval]) $other', {"job", "instance"}
    )
    assert got == 'rate(x{job=~".*",i=~".*"}[10s]) $other'


def health_check(target: str) -> None:
    """One grpc.health.v1 Check of "" against the daemon (a unary call it measures)."""
    with grpc.insecure_channel(target) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


def has_number(rows: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(row["value"][1])) for row in rows)


@needs_prometheus
@pytest.mark.timeout(150)  # up to 30 s to start and 60 s to see every series
def test_every_panel_query_returns_data_from_a_real_daemon(tmp_path: Path) -> None:
    """Every target's expr, run by Prometheus on a scraped daemon, gives a numeric series."""
    model = dashboard()
    names = {v["name"] for v in variables(model)}
    queries = [
        (f"panel {panel['title']!r} target {target['refId']}", substitute(target["expr"], names))
        for panel in query_panels(model)
        for target in panel["targets"]
    ]
    with running(all_families_config(tmp_path), tmp_path) as daemon:
        daemon.wait_event("heal_exhausted", component="broken", within=30)
        assert cli("status", "--target", daemon.target).returncode == 0
        # A NotFound answer, so that the by-code panel has a non-OK series too.
        assert cli("probe", "--addr", daemon.target, "--service", "nope").returncode == 3
        with prometheus(tmp_path, daemon.metrics_port) as server:
            missing = list(queries)

            def all_answered() -> bool:
                health_check(daemon.target)  # keep unary traffic in every rate window
                missing[:] = [(what, q) for what, q in missing if not has_number(server.query(q))]
                return not missing

            try:
                wait_for(all_answered, within=60, what="every panel query")
            except pytest.fail.Exception:
                pytest.fail(
                    "no numeric series within 60 s for:\n"
                    + "\n".join(f"{what}: {q}" for what, q in missing)
                    + f"\nprometheus log:\n{server.tail()}"
                )
            for variable in variables(model):
                if variable["type"] != "query":
                    continue
                selector, label = label_values(substitute(variable["query"]["query"], names))
                rows = server.query(selector)
                assert any(label in row["metric"] for row in rows), (variable["name"], selector)


def label_values(query: str) -> tuple[str, str]:
    """The series selector and label of a Grafana ``label_values(selector, label)`` query."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    assert match, query
    return match.group(1), match.group(2)
