"""Every built-in check and heal refuses a bad argument at construction, naming it."""

from __future__ import annotations

import re
from typing import Any

import pytest

import engined.checks as checks
from engined import ComponentType
from engined.checks import (
    CHECK_TYPES,
    HEAL_TYPES,
    CommandCheck,
    CommandHeal,
    GrpcCheck,
    HttpCheck,
    PythonCheck,
    PythonHeal,
    RedisCheck,
    RedisReconnectHeal,
    TcpCheck,
    load_callable,
)


def test_all_lists_exactly_the_public_names_sorted() -> None:
    """``engined.checks.__all__`` is sorted and names every public attribute, no more."""
    public = {
        name
        for name, value in vars(checks).items()
        if not name.startswith("_") and not isinstance(value, type(checks))
    }
    public -= {"Mapping", "MappingProxyType", "Final"}  # typing imports of the module
    assert checks.__all__ == sorted(checks.__all__)
    assert set(checks.__all__) == public


def test_type_maps_name_each_config_type() -> None:
    """CHECK_TYPES and HEAL_TYPES map the config ``type`` names to the classes, read-only."""
    assert dict(CHECK_TYPES) == {
        "tcp": TcpCheck,
        "http": HttpCheck,
        "grpc": GrpcCheck,
        "command": CommandCheck,
        "python": PythonCheck,
        "redis": RedisCheck,
    }
    assert dict(HEAL_TYPES) == {
        "command": CommandHeal,
        "python": PythonHeal,
        "reconnect": RedisReconnectHeal,
    }
    with pytest.raises(TypeError):
        CHECK_TYPES["x"] = TcpCheck  # type: ignore[index]


@pytest.mark.parametrize(
    ("target", "error", "words"),
    [
        (5432, TypeError, "target must be a str"),
        ("db", ValueError, "target must be 'host:port'"),
        ("db:", ValueError, "port must be a number"),
        ("db:0", ValueError, "1..65535"),
        ("db:65536", ValueError, "1..65535"),
        ("db:54x", ValueError, "port must be a number"),
        (":5432", ValueError, "target must be 'host:port'"),
        ("::1:5432", ValueError, "target must be 'host:port'"),
        ("[db]:5432", ValueError, "not an IPv6 address"),
        ("[::1]5432", ValueError, "target must be 'host:port'"),
        ("user@db:5432", ValueError, "not a host name"),
        ("db..internal:5432", ValueError, "not a host name"),
        ("x" * 64 + ".internal:5432", ValueError, "not a host name"),
    ],
)
def test_tcp_refuses_a_bad_target(target: object, error: type[Exception], words: str) -> None:
    """A target that is not host:port with a port in 1..65535 is refused, naming target."""
    with pytest.raises(error, match=re.escape(words)):
        TcpCheck(target)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "shown"),
    [("db:5432", "db:5432"), ("[::1]:80", "[::1]:80"), (" 10.0.0.1:1 ", "10.0.0.1:1")],
)
def test_tcp_accepts_hosts_and_bracketed_ipv6(target: str, shown: str) -> None:
    """Names, IPv4 and bracketed IPv6 addresses are accepted and kept in canonical form."""
    assert TcpCheck(target).target == shown


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"name": ""}, ValueError, "name must not be empty"),
        ({"name": 3}, TypeError, "name must be a str"),
        ({"component_type": "databse"}, ValueError, "component_type must be one of"),
        ({"clock": None}, TypeError, "clock must be an engined.Clock"),
    ],
)
def test_checks_refuse_a_bad_name_type_or_clock(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    """name, component_type and clock are checked at construction like the target."""
    with pytest.raises(error, match=re.escape(words)):
        TcpCheck("db:1", **kwargs)


def test_component_type_is_accepted_in_any_case() -> None:
    """A component type given by name in any case reaches the results as the member."""
    check = HttpCheck("http://h/", component_type="DATABASE")
    assert check._id.component_type is ComponentType.DATABASE


@pytest.mark.parametrize(
    ("url", "error", "words"),
    [
        (None, TypeError, "url must be a str"),
        ("ftp://h/", ValueError, "url must start with http:// or https://"),
        ("h:80/x", ValueError, "url must start with http://"),
        ("http:///path", ValueError, "url must name a host"),
        ("http://h:99999/", ValueError, "url is not a valid URL"),
        ("http://h:0/", ValueError, "1..65535"),
        ("http://h/a b", ValueError, "without spaces or control characters"),
        ("http://h/\r\nX-Injected: 1", ValueError, "without spaces or control characters"),
    ],
)
def test_http_refuses_a_bad_url(url: object, error: type[Exception], words: str) -> None:
    """A URL that is not http(s) with a host and a valid port is refused, naming url."""
    with pytest.raises(error, match=re.escape(words)):
        HttpCheck(url)  # type: ignore[arg-type]


def test_http_errors_never_echo_the_url() -> None:
    """A refused URL's credentials do not appear in the error message."""
    with pytest.raises(ValueError, match="url") as caught:
        HttpCheck("http://user:hunter2@h:99999/")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"expect_status": 200}, TypeError, "expect_status must be a (low, high) pair"),
        ({"expect_status": (200,)}, TypeError, "expect_status must be a (low, high) pair"),
        ({"expect_status": (200, True)}, TypeError, "expect_status must be a (low, high)"),
        ({"expect_status": (300, 200)}, ValueError, "100 <= low <= high <= 599"),
        ({"expect_status": (99, 200)}, ValueError, "100 <= low <= high <= 599"),
        ({"body_contains": b"ok"}, TypeError, "body_contains must be a str or None"),
        ({"body_contains": ""}, ValueError, "body_contains must not be empty"),
    ],
)
def test_http_refuses_bad_expectations(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    """expect_status must be an ordered pair of statuses; body_contains a non-empty str."""
    with pytest.raises(error, match=re.escape(words)):
        HttpCheck("http://h/", **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (("h",), {}, ValueError, "target must be 'host:port'"),
        (("unix:",), {}, ValueError, "unix path is empty"),
        (("h:1",), {"service": None}, TypeError, "service must be a str"),
        (("h:1",), {"tls": "yes"}, TypeError, "tls must be a bool"),
    ],
)
def test_grpc_refuses_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    """The grpc target, service and tls are checked at construction, each named."""
    with pytest.raises(error, match=re.escape(words)):
        GrpcCheck(*args, **kwargs)


def test_grpc_accepts_a_unix_socket_target() -> None:
    """``unix:/path`` is a grpc target too, passed through as it is."""
    assert GrpcCheck("unix:/run/app.sock").target == "unix:/run/app.sock"


@pytest.mark.parametrize("kind", [CommandCheck, CommandHeal])
@pytest.mark.parametrize(
    ("argv", "error", "words"),
    [
        ("pg_isready -q", TypeError, "argv must be a list of strings, not a shell command"),
        (b"true", TypeError, "argv must be a list of strings, not a shell command"),
        (None, TypeError, "argv must be a list of strings"),
        ([], ValueError, "argv must name a program"),
        ([""], ValueError, "argv must name a program"),
        (["echo", 3], TypeError, "argv[1] must be a str"),
        (["echo", "a\0b"], ValueError, "argv[1] must not contain a NUL"),
    ],
)
def test_commands_refuse_a_bad_argv(
    kind: type[Any], argv: object, error: type[Exception], words: str
) -> None:
    """The argv is a non-empty list of strings; a shell string is refused with a hint."""
    with pytest.raises(error, match=re.escape(words)):
        kind(argv)


@pytest.mark.parametrize("kind", [CommandCheck, CommandHeal])
@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"cwd": 3}, TypeError, "cwd must be a str or None"),
        ({"cwd": ""}, ValueError, "cwd must be a non-empty path"),
        ({"env": ["A=1"]}, TypeError, "env must be a mapping"),
        ({"env": {"A": 1}}, TypeError, "env must map str to str"),
        ({"env": {"A=B": "1"}}, ValueError, "not a valid variable name"),
        ({"max_output": 4096.0}, TypeError, "max_output must be an int"),
        ({"max_output": True}, TypeError, "max_output must be an int"),
        ({"max_output": -1}, ValueError, "max_output must be in 0..1048576"),
        ({"max_output": 1 << 30}, ValueError, "max_output must be in 0..1048576"),
    ],
)
def test_commands_refuse_bad_settings(
    kind: type[Any], kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    """cwd, env and max_output are checked at construction, each named."""
    with pytest.raises(error, match=re.escape(words)):
        kind(["true"], **kwargs)


def test_command_keeps_argv_as_a_tuple() -> None:
    """The argv is copied: changing the list afterwards changes nothing."""
    argv = ["echo", "a"]
    check = CommandCheck(argv)
    argv.append("b")
    assert check.argv == ("echo", "a")


@pytest.mark.parametrize(
    ("target", "error", "words"),
    [
        (None, TypeError, "target must be a str"),
        ("os.path", ValueError, "target must be 'package.module:function'"),
        ("os.path:", ValueError, "target must be 'package.module:function'"),
        ("os path:join", ValueError, "target must be 'package.module:function'"),
        ("no_such_module_xyz:f", ValueError, "target 'no_such_module_xyz:f': cannot import"),
        ("os.path:no_such_function", ValueError, "has no attribute 'no_such_function'"),
        ("os:sep", TypeError, "target 'os:sep' is not callable"),
    ],
)
def test_load_callable_refuses_what_it_cannot_resolve(
    target: object, error: type[Exception], words: str
) -> None:
    """A target that is malformed, unimportable, missing or not callable names ``target``."""
    with pytest.raises(error, match=re.escape(words)):
        load_callable(target)  # type: ignore[arg-type]


def test_load_callable_follows_a_dotted_attribute_path() -> None:
    """``module:Class.method`` resolves attribute by attribute."""
    import pathlib

    assert load_callable("pathlib:Path.cwd") == pathlib.Path.cwd


@pytest.mark.parametrize("kind", [PythonCheck, PythonHeal])
def test_python_check_and_heal_resolve_at_construction(kind: type[Any]) -> None:
    """A python check or heal whose target does not import fails when it is built."""
    with pytest.raises(ValueError, match="no_such_module_xyz"):
        kind("no_such_module_xyz:f")
