"""A bad config exits 2 with one line naming the file, line and key, and starts nothing.

Each case runs ``engined check-config`` and ``engined serve`` as a user would; the
config's first check would write a marker file the moment it ran, so a marker proves
something started half-way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_support import cli, free_port, write

pytestmark = pytest.mark.integration

GOOD = """\
[server]
host = "127.0.0.1"

[[checks]]
name = "db"
type = "command"
command = ["sh", "-c", "touch {marker}"]
interval = 1.0

[[checks]]
name = "web"
type = "tcp"
target = "127.0.0.1:1"
"""

CASES = {
    "unknown key": (
        ('target = "127.0.0.1:1"', 'target = "127.0.0.1:1"\nretries = 3'),
        ":14: checks[1].retries: unknown key",
    ),
    "wrong type": (
        ("interval = 1.0", 'interval = "1s"'),
        ":8: checks[0].interval: must be a number; got '1s'",
    ),
    "bad enum": (
        ('type = "tcp"', 'type = "udp"'),
        ":12: checks[1].type: must be one of tcp, http, grpc, command, python, redis; got 'udp'",
    ),
    "bad component type": (
        ('type = "tcp"', 'type = "tcp"\ncomponent_type = "databse"'),
        ":13: checks[1].component_type: must be one of",
    ),
    "cycle": (
        ("interval = 1.0", 'interval = 1.0\ndepends_on = ["web"]'),
        ":9: checks[0].depends_on: dependency cycle: db -> web -> db",
        'depends_on = ["db"]\n',
    ),
    "unknown parent": (
        ("interval = 1.0", 'interval = 1.0\ndepends_on = ["cache"]'),
        ":9: checks[0].depends_on: unknown component 'cache'",
    ),
    "duplicate name": (
        ('name = "web"', 'name = "db"'),
        ":11: checks[1].name: duplicate name 'db' (also checks[0])",
    ),
    "toml syntax": (
        ('host = "127.0.0.1"', 'host = "127.0.0.1'),
        ":2: TOML syntax error: ",
    ),
}


def _config(tmp_path: Path, case: str) -> tuple[Path, Path]:
    (old, new), _, *tail = CASES[case]
    marker = tmp_path / "started"
    text = GOOD.format(marker=marker).replace(old, new, 1) + "".join(tail)
    return write(tmp_path / "engined.toml", text), marker


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_config_refuses_in_one_line_naming_the_key(tmp_path: Path, case: str) -> None:
    """check-config exits 2; stderr is one line: file:line: key: problem; no traceback."""
    config, _ = _config(tmp_path, case)
    out = cli("check-config", str(config))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"engined check-config: {config}:")
    assert CASES[case][1] in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_serve_refuses_before_anything_starts(tmp_path: Path, case: str) -> None:
    """Serve exits 2 with the same line; no check ran and no port was bound."""
    config, marker = _config(tmp_path, case)
    port = free_port()
    out = cli("serve", "--config", str(config), "--port", str(port), "--metrics-port", "0")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"engined serve: {config}:")
    assert CASES[case][1] in out.stderr
    assert not marker.exists()


def test_the_good_config_passes(tmp_path: Path) -> None:
    """The config the cases break is itself valid (so each case fails for its own edit)."""
    config = write(tmp_path / "engined.toml", GOOD.format(marker=tmp_path / "m"))
    out = cli("check-config", str(config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{config}: ok: 2 checks (db, web)")


def test_a_port_in_use_exits_1_in_one_line(tmp_path: Path) -> None:
    """Serving on a gRPC port already bound exits 1 naming the address, before any check runs."""
    import socket

    marker = tmp_path / "started"
    config = write(tmp_path / "engined.toml", GOOD.format(marker=marker))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", "--config", str(config), "--port", str(port), "--metrics-port", "0")
    assert out.returncode == 1
    assert f"127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
    assert not marker.exists()
