"""The daemon's config: what it accepts, and a one-line error naming path and line for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from engined import ComponentType, HealthCheckConfig
from engined.daemon._config import (
    HEALTH_FIELDS,
    CommandCheckSpec,
    CommandHealSpec,
    GrpcCheckSpec,
    HttpCheckSpec,
    PythonCheckSpec,
    RedisCheckSpec,
    TcpCheckSpec,
)
from engined.daemon._config_errors import ConfigError
from engined.daemon._config_load import load_config, parse_config

FILE = Path("/etc/engined/engined.toml")
SPECS = (
    TcpCheckSpec,
    HttpCheckSpec,
    GrpcCheckSpec,
    CommandCheckSpec,
    PythonCheckSpec,
    RedisCheckSpec,
)

TWO_CHECKS = """\
[server]
port = 9003

[[checks]]
name = "db"
type = "tcp"
target = "127.0.0.1:5432"

[[checks]]
name = "web"
type = "http"
target = "http://127.0.0.1:8080/health"
"""


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE)
    return caught.value


def test_an_empty_file_is_an_empty_system_on_the_default_ports() -> None:
    """An empty config has no checks and serves loopback on 9003 and 9004."""
    config = parse_config("", FILE)
    assert config.checks == ()
    assert (config.server.host, config.server.port, config.server.metrics_port) == (
        "127.0.0.1",
        9003,
        9004,
    )


def test_every_health_setting_is_healthcheckconfigs_own_field() -> None:
    """Each check type takes every HealthCheckConfig field with its type, bounds and default."""
    assert set(HEALTH_FIELDS) == set(HealthCheckConfig.model_fields)
    for spec in SPECS:
        for name, field in HealthCheckConfig.model_fields.items():
            mine = spec.model_fields[name]
            assert mine.annotation == field.annotation, (spec.__name__, name)
            assert mine.default == field.default, (spec.__name__, name)
            assert mine.metadata == field.metadata, (spec.__name__, name)


def test_a_check_carries_every_setting_to_the_manager() -> None:
    """Settings given in the file are the HealthCheckConfig the component is registered with."""
    config = parse_config(
        TWO_CHECKS
        + """
interval = 5.0
timeout = 2
initial_delay = 1
failure_threshold = 3
success_threshold = 2
degraded_latency = 0.5
critical = false
depends_on = ["db"]
heal_max_attempts = 4
heal_backoff_initial = 2.0
heal_backoff_multiplier = 3.0
heal_backoff_max = 30.0
heal_timeout = 9.0
heal_reset_after = 120.0
""",
        FILE,
    )
    web = config.checks[1]
    assert web.settings() == HealthCheckConfig(
        interval=5.0,
        timeout=2.0,
        initial_delay=1.0,
        failure_threshold=3,
        success_threshold=2,
        degraded_latency=0.5,
        critical=False,
        depends_on=("db",),
        heal_max_attempts=4,
        heal_backoff_initial=2.0,
        heal_backoff_multiplier=3.0,
        heal_backoff_max=30.0,
        heal_timeout=9.0,
        heal_reset_after=120.0,
    )


def test_a_bound_names_the_check_index_key_file_and_line() -> None:
    """An interval of 0 in the third check reads 'checks[2].interval: must be > 0' at its line."""
    text = TWO_CHECKS + '\n[[checks]]\nname = "x"\ntype = "tcp"\ntarget = "h:1"\ninterval = 0\n'
    error = refused(text)
    assert (error.path, error.line) == ("checks[2].interval", 18)
    assert str(error) == f"{FILE}:18: checks[2].interval: must be > 0; got 0"


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    """A misspelt key is refused by name, with the key it probably meant."""
    error = refused(TWO_CHECKS + "intervall = 3\n")
    assert error.path == "checks[1].intervall"
    assert error.problem == "unknown key (did you mean 'interval'?)"
    assert error.line == 13


def test_a_key_of_another_check_type_names_the_types_that_take_it() -> None:
    """`service` on a tcp check is refused, saying only grpc checks take it."""
    error = refused(
        TWO_CHECKS.replace('target = "127.0.0.1:5432"', 'target = "h:1"\nservice = "x"')
    )
    assert error.path == "checks[0].service"
    assert error.problem == "not a key of a tcp check (only of: grpc)"
    assert error.line == 8


def test_an_unknown_top_level_key_and_section_key_are_refused() -> None:
    """Extra keys are refused at the top and inside [server], with their line."""
    top = refused("bogus = 1\n")
    assert (top.path, top.line) == ("bogus", 1)
    server = refused("[server]\nprot = 1\n")
    assert (server.path, server.problem, server.line) == (
        "server.prot",
        "unknown key (did you mean 'port'?)",
        2,
    )


def test_a_wrong_type_is_refused_not_converted() -> None:
    """A TOML string where a number belongs is refused with the value found, never parsed."""
    error = refused(TWO_CHECKS + 'interval = "5"\n')
    assert str(error) == f"{FILE}:13: checks[1].interval: must be a number; got '5'"
    flag = refused(TWO_CHECKS + 'critical = "yes"\n')
    assert flag.problem == "must be true or false; got 'yes'"


def test_an_unknown_check_type_lists_the_valid_ones() -> None:
    """A type of "ftp" names checks[i].type, its line and the six types."""
    error = refused(TWO_CHECKS.replace('type = "http"', 'type = "ftp"'))
    assert error.path == "checks[1].type"
    assert error.problem == "must be one of tcp, http, grpc, command, python, redis; got 'ftp'"
    assert error.line == 11


def test_a_missing_type_or_target_is_required() -> None:
    """A check without type, or a tcp check without target, is refused naming the key."""
    no_type = refused('[[checks]]\nname = "a"\ntarget = "h:1"\n')
    assert (no_type.path, no_type.line) == ("checks[0].type", 1)
    assert no_type.problem.startswith("is required")
    no_target = refused('[[checks]]\nname = "a"\ntype = "tcp"\n')
    assert (no_target.path, no_target.problem, no_target.line) == (
        "checks[0].target",
        "is required",
        1,
    )


def test_a_bad_component_type_lists_the_valid_ones() -> None:
    """component_type takes the ComponentType names in any case; others are refused."""
    config = parse_config(TWO_CHECKS + 'component_type = "Database"\n', FILE)
    assert config.checks[1].component_type is ComponentType.DATABASE
    error = refused(TWO_CHECKS + 'component_type = "db"\n')
    assert error.path == "checks[1].component_type"
    assert "'service'" in error.problem
    assert error.problem.endswith("got 'db'")


def test_a_rule_between_settings_points_at_the_first_key_it_names() -> None:
    """A timeout above the interval is refused on the check, at the line of `timeout`."""
    error = refused(TWO_CHECKS + "interval = 1\ntimeout = 2\n")
    assert (error.path, error.line) == ("checks[1]", 14)
    assert error.problem == "timeout (2s) must not exceed interval (1s)"


def test_duplicate_names_are_refused_naming_both() -> None:
    """A second check named like an earlier one is refused at its name's line."""
    error = refused(TWO_CHECKS.replace('name = "web"', 'name = "db"'))
    assert (error.path, error.line) == ("checks[1].name", 10)
    assert error.problem == "duplicate name 'db' (also checks[0])"


def test_an_unknown_parent_is_refused() -> None:
    """depends_on naming no check is refused at its line."""
    error = refused(TWO_CHECKS + 'depends_on = ["cache"]\n')
    assert (error.path, error.line) == ("checks[1].depends_on", 13)
    assert error.problem == "unknown component 'cache' (no check has that name)"


def test_a_dependency_cycle_is_refused_showing_it() -> None:
    """A cycle db -> web -> db is refused before anything starts, showing the cycle."""
    text = TWO_CHECKS.replace('"127.0.0.1:5432"', '"127.0.0.1:5432"\ndepends_on = ["web"]')
    error = refused(text + 'depends_on = ["db"]\n')
    assert error.path == "checks[0].depends_on"
    assert error.problem == "dependency cycle: db -> web -> db"
    assert error.line == 8
    assert "depends on itself" in refused(TWO_CHECKS + 'depends_on = ["web"]\n').problem


def test_a_toml_syntax_error_names_its_line() -> None:
    """TOMLDecodeError's position becomes file:line, the column kept in the message."""
    error = refused('[server]\nport = 9003\nhost = "127.0.0.1\n')
    assert error.line == 3
    assert str(error).startswith(f"{FILE}:3: TOML syntax error: ")
    assert "(column" in error.problem


def test_an_error_is_one_line_and_counts_the_others() -> None:
    """Several problems give one line: the first, and how many more there are."""
    error = refused(TWO_CHECKS + "interval = 0\nfailure_threshold = 0\nbogus = 1\n")
    assert "\n" not in str(error)
    assert error.problem == "must be > 0; got 0 (and 2 more problems)"


def test_heal_errors_name_the_heal_keys() -> None:
    """A heal's own keys are checked: an empty command, a bad python target, a bad type."""
    empty = refused(TWO_CHECKS + 'heal = { type = "command", command = [] }\n')
    assert (empty.path, empty.problem, empty.line) == (
        "checks[1].heal.command",
        "must not be empty",
        13,
    )
    target = refused(TWO_CHECKS + 'heal = { type = "python", target = "pkg.mod" }\n')
    assert target.path == "checks[1].heal.target"
    assert target.problem == "must be 'package.module:function'; got 'pkg.mod'"
    kind = refused(TWO_CHECKS + 'heal = { type = "shell", command = ["x"] }\n')
    assert kind.path == "checks[1].heal.type"


def test_a_heal_subtable_is_found_by_its_header() -> None:
    """A heal written as a [checks.heal] table is reported at the line of its bad key."""
    error = refused(TWO_CHECKS + '[checks.heal]\ntype = "command"\ncommand = "restart"\n')
    assert (error.path, error.line) == ("checks[1].heal.command", 15)
    assert error.problem == "must be an array; got 'restart'"


def test_target_forms_are_checked_per_type() -> None:
    """Targets: tcp and grpc want host:port, http a URL, python 'module:function'."""
    assert refused(TWO_CHECKS.replace('"127.0.0.1:5432"', '"db"')).path == "checks[0].target"
    url = refused(TWO_CHECKS.replace('"http://127.0.0.1:8080/health"', '"127.0.0.1:8080"'))
    assert url.problem == "must be an http:// or https:// URL; got '127.0.0.1:8080'"
    port = refused(TWO_CHECKS.replace("5432", "70000"))
    assert "port in 1-65535" in port.problem


def test_http_expect_status_is_one_code_or_a_range() -> None:
    """expect_status = 204 means [204, 204]; a reversed or out-of-range one is refused."""
    config = parse_config(TWO_CHECKS + "expect_status = 204\n", FILE)
    web = config.checks[1]
    assert isinstance(web, HttpCheckSpec)
    assert web.expect_status == (204, 204)
    assert refused(TWO_CHECKS + "expect_status = [300, 200]\n").path == "checks[1].expect_status"


def test_server_values_are_checked() -> None:
    """Ports in range, tls_cert with tls_key, a token variable that is a variable name."""
    assert refused("[server]\nport = 70000\n").problem == "must be <= 65535; got 70000"
    pair = refused('[server]\ntls_cert = "a.pem"\n')
    assert (pair.path, pair.line) == ("server", 2)
    assert pair.problem.startswith("tls_cert and tls_key go together")
    assert refused('[server]\nadmin_token_env = "MY TOKEN"\n').path == "server.admin_token_env"


def test_tls_files_must_be_readable_pem(tmp_path: Path) -> None:
    """A TLS file that is missing or not PEM is refused naming the key."""
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "key.pem").write_text("not pem\n")
    config = tmp_path / "engined.toml"
    config.write_text('[server]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert (caught.value.path, caught.value.line) == ("server.tls_key", 3)
    assert caught.value.problem == "'key.pem' is not a PEM file"
    config.write_text('[server]\ntls_cert = "cert.pem"\ntls_key = "gone.pem"\n')
    with pytest.raises(ConfigError, match=r"cannot read 'gone\.pem'"):
        load_config(config)


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    """A program with a slash and cwd resolve against the file's directory; a bare name does not."""
    config = tmp_path / "conf" / "engined.toml"
    config.parent.mkdir()
    config.write_text(
        '[[checks]]\nname = "a"\ntype = "command"\ncommand = ["bin/check", "x/y"]\n'
        'heal = { type = "command", command = ["restart"], cwd = "work" }\n'
    )
    check = load_config(config).checks[0]
    assert isinstance(check, CommandCheckSpec)
    assert check.command == [str(config.parent / "bin" / "check"), "x/y"]
    assert check.cwd == config.parent
    assert isinstance(check.heal, CommandHealSpec)
    assert check.heal.command == ["restart"]
    assert check.heal.cwd == config.parent / "work"


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    """A missing config file is a ConfigError naming it."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml")
    assert (
        str(caught.value)
        == f"{tmp_path / 'missing.toml'}: cannot read the config: No such file or directory"
    )


def test_equal_files_give_equal_checks(tmp_path: Path) -> None:
    """Loading the same text twice gives equal entries: what a reload compares."""
    config = tmp_path / "engined.toml"
    config.write_text(TWO_CHECKS)
    assert load_config(config) == load_config(config)
