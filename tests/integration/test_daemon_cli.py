"""``engined serve``, ``status`` and ``probe`` end to end, as a user runs them (subprocesses).

One daemon serves the read-only tests of this module: a healthy command check, an
unhealthy non-critical one (so the overall status is DEGRADED, still SERVING), and a
python check whose module registers a circuit breaker, so ``status`` has a breaker row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import Daemon, cli, free_port, running, wait_for, write

pytestmark = pytest.mark.integration

CONFIG = """\
[[checks]]
name = "ok"
type = "command"
command = ["true"]
interval = 1.0

[[checks]]
name = "down"
type = "command"
command = ["sh", "-c", "echo refused; exit 2"]
interval = 1.0
critical = false

[[checks]]
name = "py"
type = "python"
target = "daemon_cli_ops:ok"
component_type = "database"
interval = 1.0
"""

OPS = """\
import engined

payments = engined.circuit_breaker("payments")


def ok() -> bool:
    return True
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon with ok, down and py checked (each first check has a jitter), a breaker."""
    tmp = tmp_path_factory.mktemp("cli")
    write(tmp / "daemon_cli_ops.py", OPS)
    with running(write(tmp / "engined.toml", CONFIG), tmp) as served:
        expected = {"ok": "HEALTHY", "py": "HEALTHY", "down": "UNHEALTHY"}
        wait_for(
            lambda: all(
                (c := served.component(name)) and c["status"] == f"HEALTH_STATUS_{status}"
                for name, status in expected.items()
            ),
            what="ok and py healthy, down unhealthy",
        )
        yield served


def test_status_prints_components_then_breakers_as_tables(daemon: Daemon) -> None:
    """`engined status` shows the overall status, a row per component, then the breaker."""
    out = cli("status", "--target", daemon.target)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "overall: degraded (3 components)"
    rows = {line.split()[0]: line.split() for line in lines[3:6]}
    assert lines[2].split()[:3] == ["COMPONENT", "TYPE", "STATUS"]
    assert rows["ok"][1:4] == ["custom", "healthy", "idle"]
    assert rows["down"][1:4] == ["custom", "unhealthy", "(non-critical)"]
    assert rows["py"][1:3] == ["database", "healthy"]
    assert "exit 2: refused" in lines[3 + sorted(rows).index("down")]
    assert lines[7].split()[:2] == ["BREAKER", "STATE"]
    assert lines[8].split()[:2] == ["payments", "closed"]


def test_status_json_prints_the_replies(daemon: Daemon) -> None:
    """`engined status --json` prints both replies in the proto3 JSON mapping."""
    out = cli("status", "--target", daemon.target, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["health"]["overall_status"] == "HEALTH_STATUS_DEGRADED"
    names = [c["name"] for c in data["health"]["components"]]
    assert names == ["down", "ok", "py"]
    assert [b["name"] for b in data["circuit_breakers"]] == ["payments"]
    assert data["circuit_breakers"][0]["state"] == "CIRCUIT_STATE_CLOSED"


def test_status_of_an_unreachable_daemon_exits_1() -> None:
    """Nothing listening: one line on stderr naming the target, exit 1."""
    target = f"127.0.0.1:{free_port()}"
    out = cli("status", "--target", target, "--timeout", "2")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert target in out.stderr
    assert "UNAVAILABLE" in out.stderr


def test_probe_exits_0_for_a_serving_system(daemon: Daemon) -> None:
    """The overall service ("") is SERVING when DEGRADED: exit 0, 'status: SERVING'."""
    out = cli("probe", "--addr", daemon.target)
    assert (out.returncode, out.stdout) == (0, "status: SERVING\n")
    assert cli("probe", "--addr", daemon.target, "--service", "ok").returncode == 0


def test_probe_exits_4_for_a_component_not_serving(daemon: Daemon) -> None:
    """An unhealthy component answers NOT_SERVING: exit 4."""
    out = cli("probe", "--addr", daemon.target, "--service", "down")
    assert out.returncode == 4
    assert out.stderr == "service unhealthy (responded with 'NOT_SERVING')\n"


def test_probe_exits_3_for_an_unknown_service(daemon: Daemon) -> None:
    """An unknown service is NOT_FOUND, an RPC failure: exit 3."""
    out = cli("probe", "--addr", daemon.target, "--service", "nope")
    assert out.returncode == 3
    assert "NOT_FOUND" in out.stderr


def test_probe_exits_2_when_it_cannot_connect() -> None:
    """Nothing listening: exit 2 after the connect timeout."""
    out = cli("probe", "--addr", f"127.0.0.1:{free_port()}", "--connect-timeout", "0.5")
    assert out.returncode == 2
    assert out.stderr.startswith("timeout: failed to connect service")


def test_probe_exits_2_on_a_plaintext_server_with_tls(daemon: Daemon) -> None:
    """A TLS handshake against a plaintext port never connects: exit 2, as the Go probe."""
    out = cli("probe", "--addr", daemon.target, "--tls", "--connect-timeout", "0.5")
    assert out.returncode == 2


def test_probe_exits_1_for_bad_flags() -> None:
    """A bad flag is grpc_health_probe's exit 1, in one line on stderr."""
    out = cli("probe", "--connect-timeout", "never")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert "--connect-timeout" in out.stderr


def test_the_console_script_is_the_same_cli(tmp_path: Path) -> None:
    """The installed `engined` script runs the same command line as `python -m engined`."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("engined")
    assert script.exists(), "install the package (scripts/bootstrap) to get the console script"
    write(tmp_path / "daemon_cli_ops.py", OPS)
    config = write(tmp_path / "engined.toml", CONFIG)
    out = subprocess.run(
        [str(script), "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{config}: ok: 3 checks (ok, down, py)")
