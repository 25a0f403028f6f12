"""The ``engined`` command line refuses bad flags in one line with the right exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from engined.daemon._cli import main


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    err = capsys.readouterr().err
    assert isinstance(caught.value.code, int)
    return caught.value.code, err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--port", "x"], "--port"),
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--log-format", "xml"], "--log-format"),
        (["serve", "--bogus"], "--bogus"),
        (["status", "--timeout", "0"], "--timeout"),
        (["status", "--tls-client-cert", "c.pem", "--tls"], "--tls-client-key"),
        (["check-config"], "FILE"),
        (["nope"], "nope"),
        ([], "command"),
    ],
)
def test_a_bad_flag_exits_2_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    """Usage errors of serve, status, check-config and the top level exit 2 in one line."""
    code, err = refusal(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1, err
    assert named in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["probe", "--bogus"], "--bogus"),
        (["probe", "--connect-timeout", "-1"], "--connect-timeout"),
        (["probe", "--rpc-timeout", "soon"], "--rpc-timeout"),
        (["probe", "--tls-ca-cert", "ca.pem"], "--tls"),
        (["probe", "--tls", "--tls-ca-cert", "/nonexistent/ca.pem"], "cannot read"),
    ],
)
def test_probe_bad_arguments_exit_1_as_grpc_health_probe(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    """Probe's bad arguments exit 1 (grpc_health_probe's code), in one line."""
    code, err = refusal(capsys, *argv)
    assert code == 1
    assert err.count("\n") == 1, err
    assert named in err


def test_check_config_of_a_missing_file_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """check-config on a file that is not there exits 2 with one line naming it."""
    assert main(["check-config", str(tmp_path / "gone.toml")]) == 2
    err = capsys.readouterr().err
    missing = tmp_path / "gone.toml"
    assert (
        err
        == f"engined check-config: {missing}: cannot read the config: No such file or directory\n"
    )


def test_check_config_summarises_a_valid_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A valid file exits 0 with one line: the checks and where it would serve."""
    config = tmp_path / "engined.toml"
    config.write_text('[[checks]]\nname = "db"\ntype = "tcp"\ntarget = "127.0.0.1:5432"\n')
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out == f"{config}: ok: 1 check (db); gRPC on 127.0.0.1:9003, metrics on 127.0.0.1:9004\n"


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed version."""
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"engined {version('engined')}\n"
