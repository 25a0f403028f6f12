"""The checked-in engined/v1 modules are exactly what scripts/gen-protos makes of the proto.

The proto is the contract grpcurl users read; the generated modules are what the servicers
run. A proto edited without regenerating (or generated code edited by hand) would make the
two disagree silently, so this regenerates into a temporary directory and compares.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "engined" / "v1"

# Version stamps of the generators: a newer grpcio-tools or protobuf release stamps its own
# numbers without the contract changing. They are compared separately, as a hint.
_STAMPS = (
    re.compile(r"# Protobuf Python Version: \S+"),
    re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*[\d,\s]+"),
    re.compile(r"GRPC_GENERATED_VERSION = '[^']*'"),
)


def _unstamped(text: str) -> str:
    for stamp in _STAMPS:
        text = stamp.sub("<version>", text)
    return text


def _regenerate(out: Path) -> Path:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-protos"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, f"scripts/gen-protos failed:\n{result.stderr}"
    return out / "engined" / "v1"


def test_checked_in_engined_v1_matches_a_fresh_generation(tmp_path: Path) -> None:
    """Each file scripts/gen-protos writes equals the checked-in one; none is missing or extra."""
    fresh = _regenerate(tmp_path)
    generated = sorted(p.name for p in fresh.iterdir() if p.is_file())
    checked_in = sorted(
        p.name for p in CHECKED_IN.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"}
    )
    assert generated == checked_in, (
        f"engined/v1 holds {checked_in} but scripts/gen-protos makes {generated}: "
        "run scripts/gen-protos and commit the result"
    )
    drifted = []
    for name in generated:
        want = _unstamped((fresh / name).read_text())
        have = _unstamped((CHECKED_IN / name).read_text())
        if want != have:
            diff = difflib.unified_diff(
                have.splitlines(),
                want.splitlines(),
                f"checked-in/{name}",
                f"fresh/{name}",
                n=1,
                lineterm="",
            )
            drifted.append("\n".join(list(diff)[:30]))
    assert not drifted, (
        "engined/v1 is out of date with protos/engined/v1/engined.proto: run "
        "scripts/gen-protos and commit the result (generators here: grpcio-tools "
        f"{version('grpcio-tools')}, mypy-protobuf {version('mypy-protobuf')}).\n\n"
        + "\n\n".join(drifted)
    )


def test_checked_in_code_runs_on_the_installed_runtime() -> None:
    """The generated modules import on this grpcio and protobuf (their version guards pass)."""
    from engined.v1 import engined_pb2, engined_pb2_grpc

    service = engined_pb2.DESCRIPTOR.services_by_name["Engined"]
    assert service.full_name == "engined.v1.Engined"
    assert callable(engined_pb2_grpc.add_EnginedServicer_to_server)


def test_generated_imports_are_absolute_package_imports() -> None:
    """The gRPC module imports its messages as ``engined.v1.engined_pb2``, not top-level."""
    source = (CHECKED_IN / "engined_pb2_grpc.py").read_text()
    assert "from engined.v1 import engined_pb2 as" in source
    assert not re.search(r"^import engined_pb2", source, re.MULTILINE)
