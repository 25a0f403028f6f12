"""Headless Chromium driven over the DevTools protocol, for tests that need a real browser.

:func:`chromium` starts ``chromium --headless=new`` on a free loopback debugging port with
a throw-away profile, attaches to its blank tab over the websocket the browser announces
(``websocket-client``), and on leaving stops it by pid: SIGTERM, then SIGKILL to its
own process group (it was started in a session of its own, so the group is the browser
and its helpers only). Every wait has a deadline; a command without an answer within
:data:`COMMAND_TIMEOUT` seconds fails the test.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import websocket
from daemon_support import free_port, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
COMMAND_TIMEOUT = 15.0


class Tab:
    """One browser tab over its DevTools websocket: commands, script evaluation, screenshots."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self._next_id = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run ``method`` and return its result; fail on an error reply or no reply in time."""
        self._next_id += 1
        ident = self._next_id
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT  # noqa: TID251 - a real browser
        while time.monotonic() < deadline:  # noqa: TID251
            message = json.loads(self._ws.recv())
            if message.get("id") != ident:
                continue  # an event, or the reply to an earlier command
            if "error" in message:
                pytest.fail(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result
        pytest.fail(f"{method}: no reply within {COMMAND_TIMEOUT} s")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        reply = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            pytest.fail(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait until the document is complete."""
        self.send("Page.navigate", url=url)
        wait_for(
            lambda: (
                self.evaluate(f"location.href === {json.dumps(url)} && document.readyState")
                == "complete"
            ),
            what=f"{url} loaded",
        )

    def html(self) -> str:
        """The current DOM as HTML (works with page scripts disabled)."""
        root = self.send("DOM.getDocument", depth=-1)["root"]
        outer: str = self.send("DOM.getOuterHTML", nodeId=root["nodeId"])["outerHTML"]
        return outer

    def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Emulate a screen of ``width`` x ``height`` CSS pixels."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page by default) to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def _page_target(port: int) -> str | None:
    try:
        targets = _get_json(f"http://127.0.0.1:{port}/json/list")
    except OSError:
        return None
    for target in targets:
        if target.get("type") == "page" and target.get("webSocketDebuggerUrl"):
            url: str = target["webSocketDebuggerUrl"]
            return url
    return None


@contextmanager
def chromium(tmp_path: Path) -> Iterator[Tab]:
    """A headless Chromium on loopback with one blank tab; stopped by pid afterwards."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (scripts/test installs Debian's as root)")
    port = free_port()
    profile = tmp_path / "chromium-profile"
    log = tmp_path / "chromium.log"
    args = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--remote-debugging-address=127.0.0.1",
        f"--remote-debugging-port={port}",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ws: websocket.WebSocket | None = None
    try:
        url = wait_for(lambda: _page_target(port), within=30, what="chromium's DevTools")
        ws = websocket.create_connection(url, timeout=COMMAND_TIMEOUT, suppress_origin=True)
        tab = Tab(ws)
        tab.send("Page.enable")
        tab.send("Runtime.enable")
        yield tab
    finally:
        if ws is not None:
            ws.close()
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by pid, then SIGKILL the browser's own process group if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # its helpers; the group is the browser's own
    if proc.poll() is None:
        proc.wait(timeout=5)
