"""The client stacks against the test server in another process, killed by pid mid-test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from rpc_testserver import UNARY, plan, raw

from engined import CircuitState, default_registry
from engined.rpc import BreakerOpenRpcError, RpcPolicy, open_aio_channel, open_channel

pytestmark = pytest.mark.integration

SERVER = Path(__file__).with_name("rpc_testserver.py")
C = grpc.StatusCode
POLICY = RpcPolicy(retry=None, breaker={"failure_threshold": 3, "recovery_timeout": 60})


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    default_registry().clear()
    yield
    default_registry().clear()


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The test server in a subprocess, its port read from its first line; killed by pid."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVER)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=SERVER.parent,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=20)
        assert line, "the server printed nothing within 20 s"
        assert line[0].strip().isdigit(), f"the server did not start: {line!r}"
        yield proc, f"127.0.0.1:{line[0].strip()}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_sync_calls_fail_then_open_the_breaker_once_the_server_is_killed(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    """After the server process dies, 3 UNAVAILABLE calls open the breaker; then none is sent."""
    proc, target = served
    with open_channel(target, POLICY) as channel:
        assert raw(channel, UNARY)(b"x", metadata=plan("up"), timeout=10) == b"reply:x"
        _kill(proc)
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as caught:
                raw(channel, UNARY)(b"x", metadata=plan("down"), timeout=10)
            assert caught.value.code() is C.UNAVAILABLE
            assert not isinstance(caught.value, BreakerOpenRpcError)
        began = time.perf_counter()  # noqa: TID251 - real time on purpose
        with pytest.raises(BreakerOpenRpcError):
            raw(channel, UNARY)(b"x", metadata=plan("refused"), timeout=10)
        assert time.perf_counter() - began < 0.05  # noqa: TID251
    breaker = default_registry().get(f"rpc:{target}")
    assert breaker is not None
    m = breaker.metrics
    assert (m.state, m.successful_calls, m.failed_calls, m.rejected_calls) == (
        CircuitState.OPEN,
        1,
        3,
        1,
    )


async def test_aio_calls_fail_then_open_the_breaker_once_the_server_is_killed(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    """The same through grpc.aio: a killed server's calls fail, then the breaker refuses."""
    proc, target = served
    async with open_aio_channel(target, POLICY) as channel:
        assert await raw(channel, UNARY)(b"x", metadata=plan("up"), timeout=10) == b"reply:x"
        _kill(proc)
        for _ in range(3):
            call = raw(channel, UNARY)(b"x", metadata=plan("down"), timeout=10)
            assert await call.code() is C.UNAVAILABLE
        call = raw(channel, UNARY)(b"x", metadata=plan("refused"), timeout=10)
        assert await call.code() is C.UNAVAILABLE
        assert dict(await call.trailing_metadata())["engined-breaker"] == "open"
    breaker = default_registry().get(f"rpc:{target}")
    assert breaker is not None
    assert (breaker.state, breaker.metrics.failed_calls) == (CircuitState.OPEN, 3)
