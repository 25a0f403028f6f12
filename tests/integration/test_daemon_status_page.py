"""The status page and its JSON API, served by a real ``engined serve`` subprocess.

The daemon runs a command check whose output is hostile markup, and a python check that
owns a circuit breaker and trips it, so every table and every event source has a row.
Everything is read over HTTP with ``http.client``; the browser test is
test_daemon_status_page_browser.py.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_support import cli, http_get, running, wait_for, write

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert(1)</script>"

BREAKER_MODULE = """\
import engined

breaker = engined.circuit_breaker("payments", failure_threshold=1, recovery_timeout=600)


def _fail():
    raise ConnectionError("down")


def check():
    try:
        breaker.call(_fail)
    except Exception:
        pass
    return True
"""


def config(
    tmp_path: Path, *, web_parents: str = '["payments-api"]', api_parents: str = "[]"
) -> Path:
    write(tmp_path / "page_probe.py", BREAKER_MODULE)
    return write(
        tmp_path / "engined.toml",
        f"""\
[[checks]]
name = "web"
type = "command"
command = ["sh", "-c", "echo '{HOSTILE}'; exit 0"]
interval = 0.5
depends_on = {web_parents}

[[checks]]
name = "payments-api"
type = "python"
target = "page_probe:check"
component_type = "external_api"
interval = 0.5
depends_on = {api_parents}
""",
    )


def wait_checked(port: int, name: str) -> dict[str, Any]:
    """The component ``name`` from /api/v1/health once it has a check result."""

    def found() -> dict[str, Any] | None:
        for component in get_json(port, "/api/v1/health")["health"]["components"]:
            if component["name"] == name and "last_result" in component:
                return component
        return None

    component: dict[str, Any] = wait_for(found, what=f"{name} checked")
    return component


def get_json(port: int, path: str) -> dict[str, Any]:
    status, headers, body = http_get(port, path)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    document: dict[str, Any] = json.loads(body)
    return document


def test_the_page_and_the_api_answer_with_their_types_and_content(tmp_path: Path) -> None:
    """/, /api/v1/health, /breakers, /events, /dependencies and the static files all answer."""
    with running(config(tmp_path), tmp_path) as daemon:
        port = daemon.metrics_port
        wait_for(
            lambda: (
                get_json(port, "/api/v1/health")["health"]["overall_status"]
                == "HEALTH_STATUS_HEALTHY"
            ),
            what="both components healthy",
        )
        status, headers, body = http_get(port, "/")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in headers["content-security-policy"]
        page = body.decode()
        assert '<tr class="row-ok" data-name="web">' in page
        assert '<td class="c-deps" data-label="Depends on">payments-api</td>' in page
        assert '<tr class="row-bad" data-name="payments">' in page  # the breaker, OPEN

        for path, content_type in {
            "/static/status.js": "text/javascript; charset=utf-8",
            "/static/status.css": "text/css; charset=utf-8",
        }.items():
            status, headers, body = http_get(port, path)
            assert (status, headers["content-type"]) == (200, content_type)
            assert body

        health = get_json(port, "/api/v1/health")["health"]
        assert [(c["name"], c["status"]) for c in health["components"]] == [
            ("payments-api", "HEALTH_STATUS_HEALTHY"),
            ("web", "HEALTH_STATUS_HEALTHY"),
        ]
        wait_for(
            lambda: int(
                get_json(port, "/api/v1/breakers")["circuit_breakers"][0]["rejected_calls"]
            ),
            what="a call rejected by the open breaker",
        )
        breakers = get_json(port, "/api/v1/breakers")
        (payments,) = breakers["circuit_breakers"]
        assert (payments["name"], payments["state"]) == ("payments", "CIRCUIT_STATE_OPEN")
        assert int(payments["rejected_calls"]) >= 1
        assert payments["retry_after"].endswith("s")
        assert breakers["observed_at"].endswith("Z")
        assert get_json(port, "/api/v1/dependencies") == {
            "depends_on": {"payments-api": [], "web": ["payments-api"]}
        }
        events = get_json(port, "/api/v1/events")
        assert events["capacity"] == 50
        summaries = {(e["source"], e["name"], e["summary"]) for e in events["events"]}
        assert ("breaker", "payments", "CLOSED → OPEN") in summaries
        assert ("component", "web", "UNKNOWN → HEALTHY") in summaries
        assert all(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"])
            for e in events["events"]
        )


def test_the_api_says_what_engined_status_json_says(tmp_path: Path) -> None:
    """/api/v1/health and /breakers carry the same components and breakers as the CLI's JSON."""
    with running(config(tmp_path), tmp_path) as daemon:
        port = daemon.metrics_port
        wait_checked(port, "web")
        out = cli("status", "--target", daemon.target, "--json")
        assert out.returncode == 0, out.stderr
        from_cli = json.loads(out.stdout)
        health = get_json(port, "/api/v1/health")["health"]
        breakers = get_json(port, "/api/v1/breakers")["circuit_breakers"]

        def stable(component: dict[str, Any]) -> tuple[str, str, str, bool]:
            return (
                component["name"],
                component["component_type"],
                component["heal_state"],
                component["critical"],
            )

        assert [stable(c) for c in health["components"]] == [
            stable(c) for c in from_cli["health"]["components"]
        ]
        assert set(health) == set(from_cli["health"])
        assert [(b["name"], b["state"]) for b in breakers] == [
            (b["name"], b["state"]) for b in from_cli["circuit_breakers"]
        ]
        assert set(breakers[0]) == set(from_cli["circuit_breakers"][0])


def test_a_hostile_check_message_shows_as_text(tmp_path: Path) -> None:
    """The check's <script> output is escaped in the page, and in the JSON as unicode escapes."""
    with running(config(tmp_path), tmp_path) as daemon:
        port = daemon.metrics_port
        wait_checked(port, "web")
        page = http_get(port, "/")[2].decode()
        assert HOSTILE not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        raw = http_get(port, "/api/v1/health")[2]
        assert b"<script>" not in raw
        (web,) = [c for c in json.loads(raw)["health"]["components"] if c["name"] == "web"]
        message = web["last_result"]["message"]
        assert HOSTILE in message


def test_the_page_loads_nothing_from_anywhere_else(tmp_path: Path) -> None:
    """No absolute URL anywhere; every src and href is a path on the daemon itself."""
    with running(config(tmp_path), tmp_path) as daemon:
        page = http_get(daemon.metrics_port, "/")[2].decode()
        assert "http://" not in page
        assert "https://" not in page
        assert "//" not in re.sub(r"<!doctype html>", "", page).replace("://", "")
        links = re.findall(r'(?:src|href)="([^"]*)"', page)
        assert links
        assert all(link.startswith("/") and not link.startswith("//") for link in links)
        for path in ("/static/status.js", "/static/status.css"):
            text = http_get(daemon.metrics_port, path)[2].decode()
            assert "http://" not in text
            assert "https://" not in text


def test_head_answers_the_headers_without_a_body(tmp_path: Path) -> None:
    """HEAD / and HEAD /api/v1/health send the GET headers and no body."""
    with running(None, tmp_path) as daemon:
        for path, content_type in (
            ("/", "text/html; charset=utf-8"),
            ("/api/v1/health", "application/json"),
        ):
            status, headers, body = http_get(daemon.metrics_port, path, method="HEAD")
            assert (status, headers["content-type"], body) == (200, content_type, b"")
            assert int(headers["content-length"]) > 100
        status, _, body = http_get(daemon.metrics_port, "/")
        assert b"No components configured." in body


def test_a_reload_changes_the_dependencies_shown(tmp_path: Path) -> None:
    """After SIGHUP with a new depends_on, /api/v1/dependencies and the page show it."""
    path = config(tmp_path)
    with running(path, tmp_path) as daemon:
        port = daemon.metrics_port
        config(tmp_path, web_parents="[]", api_parents='["web"]')
        daemon.signal(signal.SIGHUP)
        daemon.wait_event("config_reloaded")
        assert get_json(port, "/api/v1/dependencies") == {
            "depends_on": {"payments-api": ["web"], "web": []}
        }
        page = http_get(port, "/")[2].decode()
        assert '<td class="c-deps" data-label="Depends on">web</td>' in page
