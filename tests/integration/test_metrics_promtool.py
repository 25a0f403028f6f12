"""``promtool check metrics`` on a real scrape of every engined and gRPC family."""

from __future__ import annotations

import subprocess

import pytest
from metrics_scrape_support import MetricsServer, missing, populated

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing("promtool") is not None, reason=str(missing("promtool"))),
]


def _promtool(text: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "metrics"],
        input=text.decode("utf-8"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_promtool_flags_a_bad_exposition() -> None:
    """The check below means something: promtool rejects a counter without _total."""
    checked = _promtool(b"# HELP bad_count A counter.\n# TYPE bad_count counter\nbad_count 1\n")
    assert checked.returncode != 0
    assert "_total" in checked.stdout + checked.stderr


async def test_a_scrape_of_every_family_passes_promtool() -> None:
    """A scrape over HTTP with every family and value kind: promtool reports nothing at all."""
    feeds = await populated()
    with MetricsServer(feeds.registry) as server:
        content_type, body = server.scrape()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    for family in ("engined_circuit_breaker_state", "engined_heal_attempts_total"):
        assert f"# TYPE {family} ".encode() in body
    assert b"grpc_server_handled_total" in body
    assert b"grpc_client_handling_seconds_bucket" in body
    checked = _promtool(body)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == ""
    assert checked.stderr.strip() == ""
    assert b"hunter2" not in body
