"""Admin RPCs of a running daemon with and without the token, from grpcurl and grpclib.

The token comes from the environment variable the config names (``admin_token_env``);
grpcurl (Go, through reflection) and grpclib (pure Python, its own HTTP/2) are clients
that share no code with engined.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_support import GRPCURL, Daemon, running, write
from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from engined.v1 import engined_pb2 as pb

pytestmark = pytest.mark.integration

TOKEN = "daemon-admin-t0ken"
ENV = "ENGINED_TEST_ADMIN_TOKEN"

CONFIG = f"""\
[server]
admin_token_env = "{ENV}"

[[checks]]
name = "db"
type = "python"
target = "daemon_admin_ops:ok"
interval = 30.0
initial_delay = 3600.0
"""

OPS = """\
import engined

payments = engined.circuit_breaker("payments")


def ok() -> bool:
    return True
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon whose admin token is TOKEN, with a 'db' component and a 'payments' breaker."""
    tmp = tmp_path_factory.mktemp("admin")
    write(tmp / "daemon_admin_ops.py", OPS)
    with running(write(tmp / "engined.toml", CONFIG), tmp, env={ENV: TOKEN}) as served:
        yield served


def grpcurl(daemon: Daemon, method: str, body: dict[str, object], *headers: str) -> Any:
    args = [str(GRPCURL), "-plaintext", "-max-time", "10"]
    for header in headers:
        args += ["-H", header]
    args += ["-d", json.dumps(body), daemon.target, f"engined.v1.Engined/{method}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def test_grpcurl_with_the_token_forces_a_breaker_open(daemon: Daemon) -> None:
    """SetCircuitBreakerState FORCE_OPEN with 'authorization: Bearer TOKEN' succeeds."""
    out = grpcurl(
        daemon,
        "SetCircuitBreakerState",
        {"name": "payments", "action": "CIRCUIT_BREAKER_ACTION_FORCE_OPEN"},
        f"authorization: Bearer {TOKEN}",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["circuit_breaker"]["state"] == "CIRCUIT_STATE_FORCED_OPEN"
    reset = grpcurl(
        daemon,
        "SetCircuitBreakerState",
        {"name": "payments", "action": "CIRCUIT_BREAKER_ACTION_RESET"},
        f"authorization: Bearer {TOKEN}",
    )
    assert json.loads(reset.stdout)["circuit_breaker"]["state"] == "CIRCUIT_STATE_CLOSED"


def test_grpcurl_without_or_with_a_wrong_token_is_unauthenticated(daemon: Daemon) -> None:
    """No token, or another one, is UNAUTHENTICATED (grpcurl exit 64 + 16)."""
    body = {"name": "payments", "action": "CIRCUIT_BREAKER_ACTION_FORCE_OPEN"}
    for headers in ((), ("authorization: Bearer not-the-token",)):
        out = grpcurl(daemon, "SetCircuitBreakerState", body, *headers)
        assert out.returncode == 64 + 16, out.stderr
        assert "Unauthenticated" in out.stderr


def test_grpcurl_run_health_check_runs_it_now(daemon: Daemon) -> None:
    """RunHealthCheck with the token runs the check at once, each call exactly once.

    The scheduler's first run is an hour away, so no scheduled check lands between them.
    """
    first = grpcurl(daemon, "RunHealthCheck", {"name": "db"}, f"authorization: Bearer {TOKEN}")
    second = grpcurl(daemon, "RunHealthCheck", {"name": "db"}, f"authorization: Bearer {TOKEN}")
    assert first.returncode == 0, first.stderr
    counts = [int(json.loads(o.stdout)["component"]["check_count"]) for o in (first, second)]
    assert counts[1] == counts[0] + 1
    assert json.loads(second.stdout)["component"]["status"] == "HEALTH_STATUS_HEALTHY"


async def _grpclib_run_check(
    port: int, metadata: dict[str, str] | None
) -> pb.RunHealthCheckResponse:
    channel = Channel("127.0.0.1", port)
    try:
        method = UnaryUnaryMethod(
            channel,
            "/engined.v1.Engined/RunHealthCheck",
            pb.RunHealthCheckRequest,
            pb.RunHealthCheckResponse,
        )
        reply: pb.RunHealthCheckResponse = await asyncio.wait_for(
            method(pb.RunHealthCheckRequest(name="db"), timeout=10, metadata=metadata), 15
        )
        return reply
    finally:
        channel.close()


async def test_grpclib_needs_the_token_too(daemon: Daemon) -> None:
    """grpclib: without the token UNAUTHENTICATED, with it the component's state."""
    with pytest.raises(GRPCError) as caught:
        await _grpclib_run_check(daemon.grpc_port, None)
    assert caught.value.status is Status.UNAUTHENTICATED
    reply = await _grpclib_run_check(daemon.grpc_port, {"authorization": f"Bearer {TOKEN}"})
    assert reply.component.name == "db"
    assert reply.component.status == pb.HEALTH_STATUS_HEALTHY


async def test_without_the_variable_admin_rpcs_are_permission_denied(tmp_path: Path) -> None:
    """The variable unset: a warning line, and admin RPCs refused PERMISSION_DENIED."""
    write(tmp_path / "daemon_admin_ops.py", OPS)
    config = write(tmp_path / "engined.toml", CONFIG)
    with running(config, tmp_path, env={ENV: ""}) as daemon:
        warning = daemon.wait_event("admin_disabled")
        assert warning["env"] == ENV
        with pytest.raises(GRPCError) as caught:
            await _grpclib_run_check(daemon.grpc_port, {"authorization": f"Bearer {TOKEN}"})
    assert caught.value.status is Status.PERMISSION_DENIED
