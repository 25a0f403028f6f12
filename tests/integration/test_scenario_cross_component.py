"""Scenario: a daemon supervising a gRPC backend through engined.rpc, seen through three interfaces.

``python -m engined serve`` (a subprocess) runs two python checks from a module written to
tmp_path: ``backend`` calls a real grpc.aio backend (another subprocess) through
``engined.rpc.aio_interceptors``, so the breaker ``rpc:<backend>`` lives in the daemon's default
registry; ``backend-breaker`` is ``engined.breaker_health_check`` on that breaker, with a python
heal that starts the backend again. The test kills the backend by pid and follows the whole
loop, HEALTHY -> breaker OPEN -> UNHEALTHY -> heal -> probe closes the breaker -> HEALTHY,
through ``engined status --json``, grpc.health.v1 (a plain grpc client and ``engined probe``)
and ``/metrics``; the events API gives the order. Every process is killed by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import grpc
import pytest
from daemon_support import cli, free_port, http_get, running, wait_for, write
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RECOVERY = 8.0  # s the breaker stays OPEN: long enough to read every interface meanwhile

BACKEND = """\
import asyncio, os, sys

import grpc
import grpc.aio


async def main(port: str, pidfile: str) -> None:
    async def ping(request: bytes, context: object) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "demo.Backend", {"Ping": grpc.unary_unary_rpc_method_handler(ping)}
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:" + port)
    await server.start()
    with open(pidfile + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)  # the pid appears once the port serves
    await server.wait_for_termination()


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""

OPS = """\
import os, socket, subprocess, sys, time

import grpc
import grpc.aio

import engined
from engined.rpc import RpcPolicy, aio_interceptors

TARGET = "127.0.0.1:{port}"
HERE = os.path.dirname(os.path.abspath(__file__))
PIDFILE = os.path.join(HERE, "backend.pid")
POLICY = RpcPolicy(
    breaker={{"failure_threshold": 2, "recovery_timeout": {recovery}}},
    retry=None,
    default_timeout=0.4,
)
# Built at import, so the breaker rpc:<target> is in the daemon's registry from the start.
INTERCEPTORS = aio_interceptors(POLICY, target=TARGET)
breaker_check = engined.breaker_health_check(engined.default_registry().get("rpc:" + TARGET))
OPTIONS = [
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]
_channel = None


async def call_backend() -> bool:
    # One Ping through engined's interceptors: breaker permit, status classification.
    global _channel
    if _channel is None:  # made on the daemon's loop, on first use
        _channel = grpc.aio.insecure_channel(TARGET, interceptors=INTERCEPTORS, options=OPTIONS)
    try:
        return await _channel.unary_unary("/demo.Backend/Ping")(b"ping") == b"ping"
    except grpc.aio.AioRpcError:
        return False


def restart_backend(trigger: engined.HealthCheckResult) -> bool:
    # Start the backend unless its port already answers; succeed once it serves.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", {port})) == 0:
            return True
    if os.path.exists(PIDFILE):
        os.remove(PIDFILE)
    subprocess.Popen(
        [sys.executable, os.path.join(HERE, "backend.py"), "{port}", PIDFILE],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not os.path.exists(PIDFILE):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
"""

CONFIG = """\
[[checks]]
name = "backend"
type = "python"
target = "ops:call_backend"
component_type = "rpc"
interval = 0.5

[[checks]]
name = "backend-breaker"
type = "python"
target = "ops:breaker_check"
component_type = "circuit_breaker"
interval = 0.2
heal_timeout = 25.0
heal_backoff_initial = 60.0
heal = { type = "python", target = "ops:restart_backend" }
"""

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


@contextmanager
def _backends(tmp_path: Path, port: int) -> Iterator[set[int]]:
    """Start the backend; on the way out, kill by pid every backend the test or a heal started."""
    pidfile = tmp_path / "backend.pid"
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "backend.py"), str(port), str(pidfile)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids = {proc.pid}
    try:
        wait_for(lambda: _pid(pidfile) == proc.pid, within=30, what="the backend serving")
        yield pids
    finally:
        if (pid := _pid(pidfile)) is not None:
            pids.add(pid)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, _, body = http_get(port, "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _one_hot(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], Any], name: str, **labels: str
) -> str:
    """The label value of ``name``'s one-hot family that is 1, among samples matching ``labels``."""
    hot = [
        dict(key)
        for (metric, key), value in metrics.items()
        if metric == name and value == 1 and set(labels.items()) <= key
    ]
    assert len(hot) == 1, (name, labels, hot)
    return hot[0]["state" if "breaker" in labels else "status"]


def _value(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def _status_json(target: str) -> dict[str, Any]:
    out = cli("status", "--target", target, "--json")
    assert out.returncode == 0, out.stderr
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def _views(status: dict[str, Any], breaker: str) -> tuple[str, str, str, str]:
    """(backend status, backend-breaker status, overall, breaker state) from status --json."""
    components = {c["name"]: c for c in status["health"]["components"]}
    (state,) = [b["state"] for b in status["circuit_breakers"] if b["name"] == breaker]
    return (
        components["backend"]["status"],
        components["backend-breaker"]["status"],
        status["health"]["overall_status"],
        state,
    )


def test_a_daemon_sees_its_backend_fail_heals_it_and_recovers_through_every_interface(
    tmp_path: Path,
) -> None:
    """Backend killed: breaker OPEN, component UNHEALTHY, heal restarts it, the probe closes it."""
    port = free_port()
    breaker = f"rpc:127.0.0.1:{port}"
    write(tmp_path / "backend.py", BACKEND)
    write(tmp_path / "ops.py", OPS.format(port=port, recovery=RECOVERY))
    config = write(tmp_path / "engined.toml", CONFIG)
    with _backends(tmp_path, port) as pids, running(config, tmp_path) as daemon:
        metrics_port = daemon.metrics_port
        channel = grpc.insecure_channel(daemon.target)
        health = health_pb2_grpc.HealthStub(channel)

        def check(service: str) -> int:
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            return int(reply.status)

        def probe(service: str) -> int:
            return cli("probe", "--addr", daemon.target, "--service", service).returncode

        def component_is(status: str) -> bool:
            hot = _one_hot(
                _metrics(metrics_port), "engined_health_status", component="backend-breaker"
            )
            return hot == status

        try:
            # 1. Start: everything HEALTHY, the breaker CLOSED, through all three interfaces.
            wait_for(
                lambda: component_is("healthy") and check("") == SERVING, within=30, what="healthy"
            )
            wait_for(
                lambda: (
                    _views(_status_json(daemon.target), breaker)
                    == (
                        "HEALTH_STATUS_HEALTHY",
                        "HEALTH_STATUS_HEALTHY",
                        "HEALTH_STATUS_HEALTHY",
                        "CIRCUIT_STATE_CLOSED",
                    )
                ),
                what="status --json all healthy",
            )
            metrics = _metrics(metrics_port)
            assert _one_hot(metrics, "engined_circuit_breaker_state", breaker=breaker) == "closed"
            assert (check("backend-breaker"), probe("backend-breaker"), probe("")) == (
                SERVING,
                0,
                0,
            )

            # 2. The backend dies: the breaker opens and its component goes UNHEALTHY.
            (first,) = pids
            os.kill(first, signal.SIGKILL)
            wait_for(lambda: component_is("unhealthy"), within=15, what="backend-breaker unhealthy")
            metrics = _metrics(metrics_port)
            assert _one_hot(metrics, "engined_circuit_breaker_state", breaker=breaker) == "open"
            assert (
                _value(
                    metrics,
                    "engined_circuit_breaker_transitions_total",
                    breaker=breaker,
                    from_state="closed",
                    to_state="open",
                )
                == 1
            )
            assert (check("backend-breaker"), check("")) == (NOT_SERVING, NOT_SERVING)
            backend, breaker_component, overall, state = _views(
                _status_json(daemon.target), breaker
            )
            assert (breaker_component, overall, state) == (
                "HEALTH_STATUS_UNHEALTHY",
                "HEALTH_STATUS_UNHEALTHY",
                "CIRCUIT_STATE_OPEN",
            )
            assert backend == "HEALTH_STATUS_UNHEALTHY"  # its calls are refused by the breaker
            assert probe("backend-breaker") == 4  # NOT_SERVING
            assert (
                _one_hot(_metrics(metrics_port), "engined_circuit_breaker_state", breaker=breaker)
                == "open"
            )

            # 3. The heal started the backend again (a new pid), once.
            wait_for(
                lambda: (
                    _value(
                        _metrics(metrics_port),
                        "engined_heal_attempts_total",
                        component="backend-breaker",
                        result="success",
                    )
                    == 1
                ),
                within=30,
                what="one successful heal",
            )
            restarted = _pid(tmp_path / "backend.pid")
            assert restarted is not None
            assert restarted != first
            pids.add(restarted)

            # 4. The breaker's probe succeeds after its recovery timeout: all HEALTHY again.
            wait_for(
                lambda: component_is("healthy") and check("") == SERVING,
                within=RECOVERY + 20,
                what="healthy again",
            )
            wait_for(
                lambda: (
                    _views(_status_json(daemon.target), breaker)
                    == (
                        "HEALTH_STATUS_HEALTHY",
                        "HEALTH_STATUS_HEALTHY",
                        "HEALTH_STATUS_HEALTHY",
                        "CIRCUIT_STATE_CLOSED",
                    )
                ),
                what="status --json healthy again",
            )
            metrics = _metrics(metrics_port)
            assert _one_hot(metrics, "engined_circuit_breaker_state", breaker=breaker) == "closed"
            assert (
                _value(
                    metrics,
                    "engined_circuit_breaker_transitions_total",
                    breaker=breaker,
                    from_state="half_open",
                    to_state="closed",
                )
                == 1
            )
            assert (
                _value(
                    metrics,
                    "engined_heal_attempts_total",
                    component="backend-breaker",
                    result="success",
                )
                == 1
            )
            assert (check("backend-breaker"), probe("backend-breaker"), probe("")) == (
                SERVING,
                0,
                0,
            )
            status = _status_json(daemon.target)
            (healed,) = [
                c for c in status["health"]["components"] if c["name"] == "backend-breaker"
            ]
            assert int(healed["heal_attempts"]) == 1

            # The order, from the daemon's events (oldest first).
            _, _, body = http_get(metrics_port, "/api/v1/events")
            events = [
                (e["source"], e["name"], e["kind"], e["from"], e["to"])
                for e in reversed(json.loads(body)["events"])
            ]
        finally:
            channel.close()
    breaker_moves = [(f, t) for s, n, k, f, t in events if s == "breaker" and n == breaker]
    assert breaker_moves[0] == ("CLOSED", "OPEN")
    assert breaker_moves[-2:] == [("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    component = [(k, f, t) for s, n, k, f, t in events if n == "backend-breaker"]
    kinds = [k for k, _, _ in component]
    assert component[kinds.index("transition", 1)][1:] == ("HEALTHY", "UNHEALTHY")
    assert kinds.count("heal_started") == kinds.count("heal_finished") == 1
    assert kinds.index("heal_started") > kinds.index("transition", 1)
    assert component[-1] == ("transition", component[-1][1], "HEALTHY")
    assert events.index(("breaker", breaker, "state_change", "CLOSED", "OPEN")) < events.index(
        ("component", "backend-breaker", "transition", "HEALTHY", "UNHEALTHY")
    )
