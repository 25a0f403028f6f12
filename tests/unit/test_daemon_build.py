"""Building a config's checks and heals with engined.checks, and refusing what cannot be built."""

from __future__ import annotations

from pathlib import Path

import pytest

from engined.checks import (
    CommandCheck,
    CommandHeal,
    GrpcCheck,
    HttpCheck,
    PythonCheck,
    PythonHeal,
    TcpCheck,
)
from engined.daemon._build import build
from engined.daemon._config_errors import ConfigError
from engined.daemon._config_load import load_config, parse_config

ALL_TYPES = """\
[[checks]]
name = "tcp"
type = "tcp"
target = "127.0.0.1:5432"
heal = { type = "command", command = ["true"] }

[[checks]]
name = "http"
type = "http"
target = "http://127.0.0.1:8080/"

[[checks]]
name = "grpc"
type = "grpc"
target = "127.0.0.1:50051"
service = "api"

[[checks]]
name = "command"
type = "command"
command = ["true"]

[[checks]]
name = "python"
type = "python"
target = "os.path:exists"
heal = { type = "python", target = "os.path:isdir" }
"""


def test_each_type_builds_its_builtin_check_and_heal() -> None:
    """tcp, http, grpc, command and python give the engined.checks classes, heals too."""
    built = build(parse_config(ALL_TYPES, Path("/x.toml")))
    kinds = {name: type(item.check) for name, item in built.items()}
    assert kinds == {
        "tcp": TcpCheck,
        "http": HttpCheck,
        "grpc": GrpcCheck,
        "command": CommandCheck,
        "python": PythonCheck,
    }
    assert isinstance(built["tcp"].heal, CommandHeal)
    assert isinstance(built["python"].heal, PythonHeal)
    assert built["http"].heal is None


def test_a_python_target_that_does_not_import_is_a_config_error() -> None:
    """An unimportable check target is refused naming checks[i].target and its line."""
    text = ALL_TYPES.replace("os.path:exists", "no_such_module_xyz:check")
    with pytest.raises(ConfigError) as caught:
        build(parse_config(text, Path("/x.toml")), file=Path("/x.toml"), text=text)
    assert (caught.value.path, caught.value.line) == ("checks[4].target", 26)
    assert "no_such_module_xyz" in caught.value.problem
    assert "\n" not in str(caught.value)


def test_a_python_heal_that_does_not_import_names_the_heal() -> None:
    """An unimportable heal target is refused naming checks[i].heal."""
    text = ALL_TYPES.replace("os.path:isdir", "os.path:no_such_function")
    with pytest.raises(ConfigError) as caught:
        build(parse_config(text, Path("/x.toml")), file=Path("/x.toml"), text=text)
    assert (caught.value.path, caught.value.line) == ("checks[4].heal", 27)


def test_a_module_next_to_the_config_can_be_a_target(tmp_path: Path) -> None:
    """The config's directory is on the import path for python targets."""
    (tmp_path / "ops_next_to_config_a1.py").write_text("def ok():\n    return True\n")
    config = tmp_path / "engined.toml"
    config.write_text(
        '[[checks]]\nname = "ops"\ntype = "python"\ntarget = "ops_next_to_config_a1:ok"\n'
    )
    built = build(load_config(config), file=config)
    assert isinstance(built["ops"].check, PythonCheck)
