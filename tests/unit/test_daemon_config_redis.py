"""The daemon's ``type = "redis"`` check and ``reconnect`` heal: accepted, built, refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engined import ComponentType
from engined.checks import CommandHeal, RedisCheck, RedisReconnectHeal
from engined.daemon._build import build
from engined.daemon._config_errors import ConfigError
from engined.daemon._config_load import parse_config

FILE = Path("/etc/engined/engined.toml")

REDIS = """\
[[checks]]
name = "cache"
type = "redis"
target = "127.0.0.1:6379"
"""


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build(parse_config(text, FILE), file=FILE, text=text)
    return caught.value


def test_a_redis_check_builds_a_redischeck_that_is_a_cache_by_default() -> None:
    """A check of type "redis" is a RedisCheck with its defaults, a cache by default."""
    config = parse_config(REDIS, FILE)
    (spec,) = config.checks
    assert spec.component_type is ComponentType.CACHE
    check = build(config)["cache"].check
    assert isinstance(check, RedisCheck)
    assert (check.target, check.degraded_latency, check.unhealthy_latency) == (
        "127.0.0.1:6379",
        0.05,
        0.2,
    )
    assert check.reconnect_mode == "auto"
    assert spec.settings().degraded_latency is None  # the manager's stays unset


def test_every_redis_key_reaches_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """password_env, username, key and both latency bounds are passed to RedisCheck."""
    monkeypatch.setenv("CACHE_PW", "pw")
    text = REDIS + (
        'password_env = "CACHE_PW"\nusername = "app"\nkey = "engined:health"\n'
        "degraded_latency = 0.02\nunhealthy_latency = 0.1\n"
    )
    check = build(parse_config(text, FILE))["cache"].check
    assert (check.password_env, check.username, check.key) == ("CACHE_PW", "app", "engined:health")
    assert (check.degraded_latency, check.unhealthy_latency) == (0.02, 0.1)


def test_a_reconnect_heal_renews_the_checks_own_connection() -> None:
    """A heal of type "reconnect" is a RedisReconnectHeal of that very check, in heal mode."""
    built = build(parse_config(REDIS + 'heal = { type = "reconnect" }\n', FILE))["cache"]
    assert isinstance(built.heal, RedisReconnectHeal)
    assert built.heal.check is built.check
    assert built.check.reconnect_mode == "heal"


def test_a_redis_check_may_have_a_command_heal() -> None:
    """A command heal (restart the server) fits a redis check too; it reconnects by itself."""
    text = REDIS + 'heal = { type = "command", command = ["true"] }\n'
    built = build(parse_config(text, FILE))["cache"]
    assert isinstance(built.heal, CommandHeal)
    assert built.check.reconnect_mode == "auto"


def test_a_reconnect_heal_on_another_type_is_refused_naming_the_heal() -> None:
    """A tcp check holds no connection: its reconnect heal is refused at checks[0].heal."""
    text = REDIS.replace('"redis"', '"tcp"') + 'heal = { type = "reconnect" }\n'
    error = refused(text)
    assert (error.path, error.line) == ("checks[0].heal", 5)
    assert error.problem == "a reconnect heal is for redis checks only (it renews their connection)"


def test_an_unknown_heal_type_lists_the_heal_types() -> None:
    """A heal type that does not exist lists command, python and reconnect (not check types)."""
    error = refused(REDIS + 'heal = { type = "restart" }\n')
    assert error.path == "checks[0].heal.type"
    assert error.problem == "must be one of command, python, reconnect; got 'restart'"


def test_a_key_of_another_type_is_refused_naming_its_owner() -> None:
    """``service`` on a redis check is not a redis key; ``key`` on a tcp check neither."""
    error = refused(REDIS + 'service = "x"\n')
    assert (error.path, error.problem) == (
        "checks[0].service",
        "not a key of a redis check (only of: grpc)",
    )
    tcp = refused(REDIS.replace('"redis"', '"tcp"') + 'key = "k"\n')
    assert (tcp.path, tcp.problem) == ("checks[0].key", "not a key of a tcp check (only of: redis)")


@pytest.mark.parametrize(
    ("line", "path", "problem"),
    [
        ('target = "redis"', "checks[0].target", "must be host:port with a port in 1-65535"),
        ("unhealthy_latency = 0", "checks[0].unhealthy_latency", "must be > 0; got 0"),
        ('unhealthy_latency = "1"', "checks[0].unhealthy_latency", "must be a number"),
        ('password_env = "A-B"', "checks[0].password_env", "must be an environment variable"),
        ('key = ""', "checks[0].key", "must not be empty"),
        ('username = "u"', "checks[0]", "username needs password_env"),
        ("degraded_latency = 0.5", "checks[0]", "degraded_latency must be <= unhealthy_latency"),
    ],
)
def test_a_bad_redis_key_is_refused_naming_it(line: str, path: str, problem: str) -> None:
    """Each bad value is one ConfigError naming the check and the key."""
    text = REDIS.replace('target = "127.0.0.1:6379"\n', "") if line.startswith("target") else REDIS
    error = refused(text + line + "\n")
    assert error.path == path
    assert problem in error.problem
    assert error.line is not None


def test_an_unset_password_variable_is_refused_naming_password_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """password_env naming a variable that is not set fails the build at its key and line."""
    monkeypatch.delenv("NO_SUCH_CACHE_PW", raising=False)
    error = refused(REDIS + 'password_env = "NO_SUCH_CACHE_PW"\n')
    assert (error.path, error.line) == ("checks[0].password_env", 5)
    assert error.problem == "the environment variable 'NO_SUCH_CACHE_PW' is not set or empty"
