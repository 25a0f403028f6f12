"""The daemon heals: a tcp check on a port the test closes, a command heal that leaves a marker.

The test plays the service: it listens on a port, the daemon sees it HEALTHY; the test
closes it, the daemon sees UNHEALTHY and runs the heal command (which writes a marker
with the component's name and status from its environment); the test "restarts" the
service on the same port, and the daemon sees it HEALTHY again. Every step is read from
the daemon's JSON log lines and from ``engined status``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from daemon_support import free_port, running, wait_for, write

pytestmark = pytest.mark.integration


def listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    return sock


def test_a_closed_port_is_healed_by_its_command(tmp_path: Path) -> None:
    """Port closed: UNHEALTHY, the heal command runs, port back: HEALTHY; each logged once."""
    port = free_port()
    marker = tmp_path / "healed.txt"
    heal = f"echo $ENGINED_COMPONENT $ENGINED_COMPONENT_STATUS >> {marker}"
    config = write(
        tmp_path / "engined.toml",
        f"""\
[[checks]]
name = "svc"
type = "tcp"
target = "127.0.0.1:{port}"
interval = 0.5
heal_backoff_initial = 5.0
heal = {{ type = "command", command = ["sh", "-c", '{heal}'] }}
""",
    )
    service = listen(port)
    try:
        with running(config, tmp_path) as daemon:
            daemon.wait_event("transition", component="svc", to="healthy")
            service.close()
            daemon.wait_event("transition", component="svc", **{"from": "healthy"}, to="unhealthy")
            finished = daemon.wait_event("heal_finished", component="svc")
            assert (finished["attempt"], finished["result"]) == (1, "success")
            assert marker.read_text() == "svc unhealthy\n"
            service = listen(port)  # the "restart" the heal stands for
            daemon.wait_event("transition", component="svc", **{"from": "unhealthy"}, to="healthy")
            svc = wait_for(lambda: daemon.component("svc"), what="status of svc")
            assert svc["status"] == "HEALTH_STATUS_HEALTHY"
            assert svc["heal_attempts"] == "1"  # int64 in proto3 JSON is a string
            assert len(daemon.events("transition", component="svc")) == 3
            assert len(daemon.events("heal_started", component="svc")) == 1
            assert len(daemon.events("heal_finished", component="svc")) == 1
    finally:
        service.close()
