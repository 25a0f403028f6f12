"""engined.v1 refusals (NOT_FOUND, INVALID_ARGUMENT) and the INTERNAL boundary.

A handler that raises must never answer UNKNOWN with the exception's text (grpc.aio's
default): it is INTERNAL with a generic detail, and the log has the traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from rpc_server_support import ADMIN, Switch, breakers, eventually, failure, manager_with, serve

import engined
from engined import CircuitBreakerRegistry, HealthCheckManager
from engined.rpc._server_errors import INTERNAL_DETAIL
from engined.testing import FakeClock
from engined.v1 import engined_pb2 as pb

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------ argument errors


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("GetCircuitBreaker", pb.GetCircuitBreakerRequest(name="nope")),
        ("RunHealthCheck", pb.RunHealthCheckRequest(name="nope")),
        ("ResetHeal", pb.ResetHealRequest(name="nope")),
        (
            "SetCircuitBreakerState",
            pb.SetCircuitBreakerStateRequest(name="nope", action=pb.CIRCUIT_BREAKER_ACTION_RESET),
        ),
    ],
)
async def test_unknown_names_are_not_found(method: str, request_: Any) -> None:
    """An unknown component or breaker is NOT_FOUND, naming it."""
    async with serve(manager_with(db=Switch())) as served:
        code, details = await failure(getattr(served.engined, method)(request_, metadata=ADMIN))
    assert code is grpc.StatusCode.NOT_FOUND
    assert "'nope'" in details


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("GetCircuitBreaker", pb.GetCircuitBreakerRequest()),
        ("RunHealthCheck", pb.RunHealthCheckRequest()),
        ("ResetHeal", pb.ResetHealRequest()),
        (
            "SetCircuitBreakerState",
            pb.SetCircuitBreakerStateRequest(action=pb.CIRCUIT_BREAKER_ACTION_RESET),
        ),
    ],
)
async def test_an_empty_name_is_invalid_argument(method: str, request_: Any) -> None:
    """A request without a name is INVALID_ARGUMENT, naming the field."""
    async with serve(manager_with(db=Switch())) as served:
        code, details = await failure(getattr(served.engined, method)(request_, metadata=ADMIN))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in details


@pytest.mark.parametrize("action", [pb.CIRCUIT_BREAKER_ACTION_UNSPECIFIED, 99])
async def test_an_unspecified_or_unknown_action_is_invalid_argument(action: int) -> None:
    """SetCircuitBreakerState refuses UNSPECIFIED and unknown numbers, listing the valid ones."""
    registry = breakers(FakeClock())
    async with serve(manager_with(), registry=registry) as served:
        request = pb.SetCircuitBreakerStateRequest(name="mail", action=action)
        code, details = await failure(
            served.engined.SetCircuitBreakerState(request, metadata=ADMIN)
        )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "CIRCUIT_BREAKER_ACTION_FORCE_OPEN" in details
    assert registry.get("mail").state is engined.CircuitState.CLOSED


# ------------------------------------------------------------------------ internal errors


class _BrokenRegistry(CircuitBreakerRegistry):
    def __iter__(self) -> Any:
        msg = "registry exploded: password=hunter2"
        raise RuntimeError(msg)


class _BrokenManager(HealthCheckManager):
    def snapshot(self) -> Any:
        msg = "snapshot exploded: password=hunter2"
        raise RuntimeError(msg)

    def watch(self) -> Any:
        msg = "watch exploded: password=hunter2"
        raise RuntimeError(msg)


async def test_an_unexpected_exception_is_internal_with_a_generic_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that raises answers INTERNAL (never UNKNOWN), without the text; the log has it."""
    async with serve(manager_with(), registry=_BrokenRegistry()) as served:
        with caplog.at_level(logging.ERROR, logger="engined.rpc"):
            code, details = await failure(
                served.engined.ListCircuitBreakers(pb.ListCircuitBreakersRequest(), timeout=5)
            )
    assert code is grpc.StatusCode.INTERNAL
    assert details == INTERNAL_DETAIL
    assert "hunter2" not in details
    assert any("ListCircuitBreakers" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", ["GetSystemHealth", "WatchSystemHealth"])
async def test_a_failing_manager_is_internal_for_unary_and_streaming_rpcs(method: str) -> None:
    """A manager whose snapshot or watch() raises gives INTERNAL on both kinds of RPC."""
    manager = _BrokenManager(clock=FakeClock())
    async with serve(manager) as served:
        request = getattr(pb, f"{method}Request")()
        call = getattr(served.engined, method)(request, timeout=5)
        if method.startswith("Watch"):
            call = call.read()
        code, details = await failure(call)
    assert code is grpc.StatusCode.INTERNAL
    assert "hunter2" not in details


async def test_a_failed_watch_feed_recovers_for_the_next_stream() -> None:
    """After the manager's watch() failed, a later stream subscribes afresh and is served."""
    failures = [RuntimeError("once")]

    class _FlakyManager(HealthCheckManager):
        def watch(self) -> Any:
            if failures:
                raise failures.pop()
            return super().watch()

    manager = _FlakyManager(clock=FakeClock())
    async with serve(manager) as served:
        code, _ = await failure(
            served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=5).read()
        )
        assert code is grpc.StatusCode.INTERNAL
        await eventually(lambda: served.services.open_streams == 0)
        stream = served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=5)
        reply = await asyncio.wait_for(stream.read(), 5)
        assert reply.health.overall_status == pb.HEALTH_STATUS_HEALTHY
        stream.cancel()
