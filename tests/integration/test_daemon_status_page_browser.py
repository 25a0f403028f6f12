"""The status page in a real browser: headless Chromium over the DevTools protocol.

A daemon runs one component, ``demo``, whose check reads a state file the test writes
(``0`` healthy, ``2`` unhealthy) and whose heal waits for a release file before writing
``0``: so the test decides when it breaks and when the heal may end, and the page has
time to show UNHEALTHY and HEALING. The assertions read the rendered DOM; a marker set on
``window`` after the first load, and a single navigation entry, prove the page changed
without a reload. Screenshots go to ``artifacts/`` at the repository root.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import Tab, chromium
from daemon_support import REPO_ROOT, Daemon, running, wait_for, write

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ARTIFACTS = REPO_ROOT / "artifacts"
STATUS = "document.querySelector('#components tr[data-name=\"demo\"] .c-status')?.textContent"
HEAL = "document.querySelector('#components tr[data-name=\"demo\"] .c-heal')?.textContent"
EVENTS = "[...document.querySelectorAll('#events tbody tr')].map(r => r.textContent)"
CONN = "document.documentElement.dataset.conn"


def demo_config(tmp_path: Path) -> Path:
    (tmp_path / "state").write_text("0\n")
    heal = "while [ ! -e release ]; do sleep 0.1; done; rm release; echo 0 > state"
    return write(
        tmp_path / "engined.toml",
        f"""\
[[checks]]
name = "demo"
type = "command"
command = ["sh", "-c", "echo state $(cat state); exit $(cat state)"]
component_type = "service"
interval = 0.25
heal_timeout = 30.0
heal = {{ type = "command", command = ["sh", "-c", "{heal}"] }}
""",
    )


def open_page(tab: Tab, daemon: Daemon) -> str:
    url = f"http://127.0.0.1:{daemon.metrics_port}/"
    tab.navigate(url)
    wait_for(lambda: tab.evaluate(CONN) == "live", what="the page polling")
    return url


def dom_equals(tab: Tab, expression: str, value: object, what: str) -> None:
    wait_for(lambda: tab.evaluate(expression) == value, what=what)


def test_the_page_follows_a_component_down_and_back_without_reloading(tmp_path: Path) -> None:
    """HEALTHY, UNHEALTHY while HEALING, HEALTHY again, all read from one page load's DOM."""
    with chromium(tmp_path) as tab, running(demo_config(tmp_path), tmp_path) as daemon:
        tab.viewport(1280, 800)
        open_page(tab, daemon)
        dom_equals(tab, STATUS, "HEALTHY", "demo HEALTHY on the page")
        tab.evaluate("window.__loadedOnce = 'still here'")

        (tmp_path / "state").write_text("2\n")
        dom_equals(tab, STATUS, "UNHEALTHY", "demo UNHEALTHY on the page")
        wait_for(lambda: "HEALING" in (tab.evaluate(HEAL) or ""), what="heal shown running")
        assert tab.evaluate("document.title").startswith("UNHEALTHY")
        assert tab.evaluate("document.querySelector('#overall').textContent") == "UNHEALTHY"
        wait_for(
            lambda: any("HEALTHY → UNHEALTHY" in row for row in tab.evaluate(EVENTS)),
            what="the transition in the events table",
        )
        tab.screenshot(ARTIFACTS / "status-page-unhealthy.png")

        (tmp_path / "release").write_text("")
        dom_equals(tab, STATUS, "HEALTHY", "demo HEALTHY again on the page")
        wait_for(
            lambda: any("heal 1 succeeded" in row for row in tab.evaluate(EVENTS)),
            what="the heal's end in the events table",
        )
        rows = tab.evaluate(EVENTS)
        assert any("UNHEALTHY → HEALTHY" in row for row in rows)
        assert any("heal 1 started" in row for row in rows)
        assert tab.evaluate("window.__loadedOnce") == "still here"
        assert tab.evaluate("performance.getEntriesByType('navigation').length") == 1
        assert tab.evaluate("document.querySelector('#conn').className") == "conn conn-live"
        tab.screenshot(ARTIFACTS / "status-page.png")

        tab.viewport(390, 844, mobile=True)
        wait_for(lambda: tab.evaluate("window.innerWidth") == 390, what="a phone-wide viewport")
        tab.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page overflows a 390 px phone: {width} px wide"
        assert tab.evaluate("getComputedStyle(document.querySelector('thead')).position") == (
            "absolute"
        )  # the tables are stacked cards, headed by each cell's data-label
        tab.screenshot(ARTIFACTS / "status-page-phone.png")

        daemon.terminate()
        dom_equals(tab, CONN, "stale", "the page marked stale once the daemon is gone")
        conn = tab.evaluate("document.querySelector('#conn').textContent")
        assert conn.startswith("STALE: cannot reach the daemon")
        assert tab.evaluate(STATUS) == "HEALTHY"  # the last data stays, marked stale
        assert tab.evaluate("window.__loadedOnce") == "still here"


def test_the_page_is_complete_with_javascript_off(tmp_path: Path) -> None:
    """With scripts disabled the server-rendered tables and the snapshot notice are there."""
    with chromium(tmp_path) as tab, running(demo_config(tmp_path), tmp_path) as daemon:
        wait_for(
            lambda: (daemon.component("demo") or {}).get("status") == "HEALTH_STATUS_HEALTHY",
            what="demo healthy",
        )
        tab.send("Emulation.setScriptExecutionDisabled", value=True)
        tab.send("DOM.enable")
        tab.navigate(f"http://127.0.0.1:{daemon.metrics_port}/")
        html = tab.html()
        assert 'data-name="demo"' in html
        assert (
            '<td class="c-status" data-label="Status"><span class="badge tone-ok">HEALTHY' in html
        )
        assert "UNKNOWN → HEALTHY" in html  # the events table
        assert "live updates need JavaScript" in html  # the script never ran to replace it
        assert 'class="conn conn-static"' in html
