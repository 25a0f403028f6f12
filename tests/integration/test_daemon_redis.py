"""The daemon with a ``type = "redis"`` check on a real redis-server, end to end.

The test plays the outage: redis-server is killed (SIGKILL) and started again on the same
port; the daemon's reconnect heal, paced by its heal backoff, brings the component back.
Every step is read from the daemon's JSON log lines and ``engined status --json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_support import cli, running, wait_for, write
from redis_support import started

pytestmark = pytest.mark.integration

PASSWORD = "redis-pw-0f9e8d"


def _config(tmp_path: Path, target: str, extra: str = "") -> Path:
    return write(
        tmp_path / "engined.toml",
        f"""\
[[checks]]
name = "cache"
type = "redis"
target = "{target}"
password_env = "CACHE_REDIS_PW"
key = "engined:health"
interval = 0.2
heal_backoff_initial = 0.2
heal_backoff_multiplier = 1.0
heal_max_attempts = 100
heal = {{ type = "reconnect" }}
{extra}""",
    )


def test_a_killed_redis_is_unhealthy_and_the_reconnect_heal_brings_it_back(
    tmp_path: Path,
) -> None:
    """HEALTHY; redis killed: UNHEALTHY, reconnects fail; restarted: a reconnect heals it."""
    env = {"CACHE_REDIS_PW": PASSWORD}
    with started(tmp_path, password=PASSWORD) as server:
        config = _config(tmp_path, server.target)
        with running(config, tmp_path, env=env) as daemon:
            daemon.wait_event("transition", component="cache", to="healthy")
            cache = wait_for(lambda: daemon.component("cache"), what="status of cache")
            assert cache["status"] == "HEALTH_STATUS_HEALTHY"
            assert cache["component_type"] == "COMPONENT_TYPE_CACHE"
            assert cache["last_result"]["message"].startswith("PONG, SET and GET in ")

            server.kill()
            daemon.wait_event("transition", component="cache", to="unhealthy")
            daemon.wait_event("heal_finished", component="cache", attempt=2)
            down = daemon.component("cache")
            assert down is not None
            assert down["status"] == "HEALTH_STATUS_UNHEALTHY"
            assert down["last_result"]["message"] == (
                "connection refused; waiting for the reconnect heal"
            )

            server.start()
            daemon.wait_event(
                "transition", component="cache", to="healthy", **{"from": "unhealthy"}
            )
            finished = daemon.events("heal_finished", component="cache")
            assert finished[-1]["result"] == "success"
            assert all(line["result"] != "success" for line in finished[:-1])
            back = wait_for(lambda: daemon.component("cache"), what="status of cache")
            assert back["status"] == "HEALTH_STATUS_HEALTHY"
            status = cli("status", "--target", daemon.target, "--json").stdout
        log = daemon.log_path.read_text(encoding="utf-8")
    assert PASSWORD not in log
    assert PASSWORD not in status


def test_a_wrong_password_shows_as_authentication_failed(tmp_path: Path) -> None:
    """The daemon reports "authentication failed (WRONGPASS)"; the password is nowhere."""
    with started(tmp_path, password=PASSWORD) as server:
        config = _config(tmp_path, server.target)
        with running(config, tmp_path, env={"CACHE_REDIS_PW": "wrong-one-77"}) as daemon:
            daemon.wait_event("transition", component="cache", to="unhealthy")
            cache = wait_for(lambda: daemon.component("cache"), what="status of cache")
            status = cli("status", "--target", daemon.target, "--json").stdout
        log = daemon.log_path.read_text(encoding="utf-8")
    assert cache["last_result"]["message"].startswith("authentication failed (WRONGPASS)")
    for secret in (PASSWORD, "wrong-one-77"):
        assert secret not in log
        assert secret not in status


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("unhealthy_latency = 0\n", ":12: checks[0].unhealthy_latency: must be > 0; got 0"),
        ("database = 3\n", ":12: checks[0].database: unknown key"),
        (
            "degraded_latency = 1.0\n",
            ":12: checks[0]: degraded_latency must be <= unhealthy_latency",
        ),
    ],
)
def test_a_bad_redis_key_exits_2_naming_it(tmp_path: Path, extra: str, expected: str) -> None:
    """check-config and serve both exit 2 with one line naming the key and its line."""
    config = _config(tmp_path, "127.0.0.1:6379", extra)
    env = {"CACHE_REDIS_PW": PASSWORD}
    for args in (("check-config", str(config)), ("serve", "--config", str(config))):
        out = (
            cli(*args, "--port", "0", "--metrics-port", "0", env=env)
            if args[0] == "serve"
            else cli(*args, env=env)
        )
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1, out.stderr
        assert expected in out.stderr


def test_an_unset_password_variable_exits_2_naming_password_env(tmp_path: Path) -> None:
    """password_env naming an unset variable is refused before anything starts."""
    config = _config(tmp_path, "127.0.0.1:6379")
    out = cli("check-config", str(config), env={"CACHE_REDIS_PW": ""})
    assert out.returncode == 2
    assert out.stderr.strip().endswith(
        ":5: checks[0].password_env: the environment variable 'CACHE_REDIS_PW' is not set or empty"
    )
