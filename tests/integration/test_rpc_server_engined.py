"""The engined.v1.Engined service on a real grpc.aio server: every RPC, its errors, its auth."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from rpc_server_support import ADMIN, TOKEN, WALL_NS, Switch, eventually, manager_with, serve

import engined
import engined.rpc
from engined import CircuitBreakerRegistry, HealthCheckManager, HealthStatus
from engined.rpc._server_errors import INTERNAL_DETAIL
from engined.testing import FakeClock
from engined.v1 import engined_pb2 as pb
from engined.v1 import engined_pb2_grpc

pytestmark = pytest.mark.integration


def _breakers(clock: FakeClock) -> CircuitBreakerRegistry:
    """A registry with 'pay' tripped open by two failures and 'mail' closed."""
    registry = CircuitBreakerRegistry()
    pay = registry.get_or_create("pay", failure_threshold=2, recovery_timeout=30.0, clock=clock)
    registry.get_or_create("mail", clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            pay.call(_fail)
    return registry


def _fail() -> None:
    raise ConnectionError


async def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


# ------------------------------------------------------------------------ read-only health


async def test_get_system_health_serves_the_snapshot_sorted_and_stamped() -> None:
    """Overall status, every component by name and observed_at come from the manager's snapshot."""
    manager = manager_with(web=Switch(), db=Switch(HealthStatus.UNHEALTHY))
    await manager.run_all()
    async with serve(manager) as served:
        reply = await served.engined.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=5)
    health = reply.health
    assert health.overall_status == pb.HEALTH_STATUS_UNHEALTHY
    assert [(c.name, c.status) for c in health.components] == [
        ("db", pb.HEALTH_STATUS_UNHEALTHY),
        ("web", pb.HEALTH_STATUS_HEALTHY),
    ]
    assert health.components[0].check_count == 1
    assert health.observed_at.ToNanoseconds() == WALL_NS


async def test_get_system_health_never_runs_a_check() -> None:
    """Reading health over gRPC does not call any check (DESIGN.md §5: snapshots only)."""
    check = Switch()
    manager = manager_with(db=check)
    async with serve(manager) as served:
        for _ in range(3):
            await served.engined.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=5)
    assert check.runs == 0


async def test_check_messages_and_details_arrive_redacted() -> None:
    """A secret in a check's message or details never reaches a gRPC client (DESIGN.md §9)."""
    manager = HealthCheckManager(clock=FakeClock())

    def leaky() -> engined.HealthCheckResult:
        return engined.HealthCheckResult(
            "db",
            "database",
            "unhealthy",
            message="cannot connect to postgres://app:hunter2@db:5432",
            details={"password": "hunter2", "dsn": "token=hunter2", "attempts": 3},
        )

    manager.register("db", leaky)
    await manager.run_all()
    async with serve(manager) as served:
        reply = await served.engined.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=5)
    result = reply.health.components[0].last_result
    assert "hunter2" not in str(reply)
    assert result.message.startswith("cannot connect to postgres://app:")
    assert json_format.MessageToDict(result.details)["attempts"] == 3


async def test_watch_system_health_sends_the_current_value_then_a_change() -> None:
    """The stream starts with the current health and gets a new value after run_check."""
    check = Switch()
    manager = manager_with(db=check)
    await manager.run_all()
    async with serve(manager) as served:
        stream = served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=10)
        first = await stream.read()
        assert first.health.overall_status == pb.HEALTH_STATUS_HEALTHY
        check.status = HealthStatus.UNHEALTHY
        await manager.run_check("db")
        second = await stream.read()
        assert second.health.overall_status == pb.HEALTH_STATUS_UNHEALTHY
        assert second.health.components[0].consecutive_failures == 1
        stream.cancel()


async def test_watch_system_health_ends_cleanly_when_the_client_goes_away() -> None:
    """Cancelling the stream ends the handler: no stream, no watch subscription is left."""
    manager = manager_with(db=Switch())
    async with serve(manager) as served:
        stream = served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=10)
        await stream.read()
        assert served.services.open_streams == 1
        stream.cancel()
        await eventually(lambda: served.services.open_streams == 0)
        assert not served.services._feed.feeding
        assert not manager._publisher._watchers  # the manager lost its watcher too


async def test_watch_system_health_streams_share_one_manager_subscription() -> None:
    """Many streams cost one manager.watch() subscription, not one each."""
    manager = manager_with(db=Switch())
    async with serve(manager) as served:
        streams = [
            served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=10)
            for _ in range(5)
        ]
        for stream in streams:
            await stream.read()
        assert served.services.open_streams == 5
        assert len(manager._publisher._watchers) == 1
        for stream in streams:
            stream.cancel()


# ------------------------------------------------------------------------ read-only breakers


async def test_list_circuit_breakers_maps_every_breaker_sorted() -> None:
    """Every breaker of the registry is listed by name with its state and counters."""
    clock = FakeClock()
    async with serve(manager_with(), registry=_breakers(clock)) as served:
        reply = await served.engined.ListCircuitBreakers(pb.ListCircuitBreakersRequest(), timeout=5)
    assert [(b.name, b.state) for b in reply.circuit_breakers] == [
        ("mail", pb.CIRCUIT_STATE_CLOSED),
        ("pay", pb.CIRCUIT_STATE_OPEN),
    ]
    pay = reply.circuit_breakers[1]
    assert (pay.failed_calls, pay.total_calls, pay.times_opened) == (2, 2, 1)
    assert pay.retry_after.ToNanoseconds() == 30 * 10**9
    assert [(t.from_state, t.to_state, t.count) for t in pay.transitions] == [
        (pb.CIRCUIT_STATE_CLOSED, pb.CIRCUIT_STATE_OPEN, 1)
    ]
    assert reply.observed_at.ToNanoseconds() == WALL_NS


async def test_get_circuit_breaker_returns_one_breaker() -> None:
    """GetCircuitBreaker answers the named breaker's metrics."""
    clock = FakeClock()
    async with serve(manager_with(), registry=_breakers(clock)) as served:
        clock.advance(10.0)
        reply = await served.engined.GetCircuitBreaker(
            pb.GetCircuitBreakerRequest(name="pay"), timeout=5
        )
    assert reply.circuit_breaker.name == "pay"
    assert reply.circuit_breaker.state == pb.CIRCUIT_STATE_OPEN
    assert reply.circuit_breaker.retry_after.ToNanoseconds() == 20 * 10**9


async def test_the_default_registry_is_served_when_none_is_given() -> None:
    """add_to_server without registry= serves engined.default_registry()."""
    server = grpc.aio.server()
    engined.circuit_breaker("default-registry-probe")
    try:
        engined.rpc.add_to_server(server, manager_with())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = engined_pb2_grpc.EnginedStub(channel)
            reply = await stub.GetCircuitBreaker(
                pb.GetCircuitBreakerRequest(name="default-registry-probe"), timeout=5
            )
        assert reply.circuit_breaker.state == pb.CIRCUIT_STATE_CLOSED
    finally:
        engined.default_registry().remove("default-registry-probe")
        await server.stop(None)


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
        code, details = await _code(getattr(served.engined, method)(request_, metadata=ADMIN))
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
        code, details = await _code(getattr(served.engined, method)(request_, metadata=ADMIN))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in details


@pytest.mark.parametrize("action", [pb.CIRCUIT_BREAKER_ACTION_UNSPECIFIED, 99])
async def test_an_unspecified_or_unknown_action_is_invalid_argument(action: int) -> None:
    """SetCircuitBreakerState refuses UNSPECIFIED and unknown numbers, listing the valid ones."""
    registry = _breakers(FakeClock())
    async with serve(manager_with(), registry=registry) as served:
        request = pb.SetCircuitBreakerStateRequest(name="mail", action=action)
        code, details = await _code(served.engined.SetCircuitBreakerState(request, metadata=ADMIN))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "CIRCUIT_BREAKER_ACTION_FORCE_OPEN" in details
    assert registry.get("mail").state is engined.CircuitState.CLOSED


# ------------------------------------------------------------------------ admin RPCs


async def test_run_health_check_runs_the_check_and_answers_the_component() -> None:
    """RunHealthCheck runs the check now and answers the component as it is afterwards."""
    check = Switch(HealthStatus.UNHEALTHY)
    manager = manager_with(db=check)
    async with serve(manager) as served:
        reply = await served.engined.RunHealthCheck(
            pb.RunHealthCheckRequest(name="db"), metadata=ADMIN, timeout=5
        )
    assert check.runs == 1
    assert reply.component.status == pb.HEALTH_STATUS_UNHEALTHY
    assert reply.component.last_result.status == pb.HEALTH_STATUS_UNHEALTHY
    assert reply.observed_at.ToNanoseconds() == WALL_NS


async def test_reset_heal_rearms_an_exhausted_component() -> None:
    """ResetHeal brings an EXHAUSTED component's heal attempts back to zero."""
    manager = HealthCheckManager(clock=FakeClock())
    manager.register(
        "db", Switch(HealthStatus.UNHEALTHY), heal=lambda result: False, heal_max_attempts=1
    )
    await manager.run_check("db")  # unhealthy: the one heal runs and fails
    await manager.run_check("db")  # still unhealthy: no attempt left
    assert manager.component("db").heal_state is engined.HealState.EXHAUSTED
    async with serve(manager) as served:
        reply = await served.engined.ResetHeal(
            pb.ResetHealRequest(name="db"), metadata=ADMIN, timeout=5
        )
    assert reply.component.heal_attempts == 0
    assert reply.component.heal_state != pb.HEAL_STATE_EXHAUSTED
    assert manager.component("db").heal_attempts == 0


@pytest.mark.parametrize(
    ("action", "state"),
    [
        (pb.CIRCUIT_BREAKER_ACTION_FORCE_OPEN, engined.CircuitState.FORCED_OPEN),
        (pb.CIRCUIT_BREAKER_ACTION_DISABLE, engined.CircuitState.DISABLED),
        (pb.CIRCUIT_BREAKER_ACTION_RESET, engined.CircuitState.CLOSED),
    ],
)
async def test_set_circuit_breaker_state_applies_each_action(
    action: int, state: engined.CircuitState
) -> None:
    """FORCE_OPEN, DISABLE and RESET reach the breaker and the reply shows the new state."""
    registry = _breakers(FakeClock())
    async with serve(manager_with(), registry=registry) as served:
        reply = await served.engined.SetCircuitBreakerState(
            pb.SetCircuitBreakerStateRequest(name="pay", action=action), metadata=ADMIN, timeout=5
        )
    assert registry.get("pay").state is state
    assert pb.CircuitState.Name(reply.circuit_breaker.state) == f"CIRCUIT_STATE_{state.name}"


_ADMIN_CALLS = [
    ("RunHealthCheck", pb.RunHealthCheckRequest(name="db")),
    ("ResetHeal", pb.ResetHealRequest(name="db")),
    (
        "SetCircuitBreakerState",
        pb.SetCircuitBreakerStateRequest(name="pay", action=pb.CIRCUIT_BREAKER_ACTION_FORCE_OPEN),
    ),
]


@pytest.fixture
def admin_world() -> tuple[HealthCheckManager, CircuitBreakerRegistry, Switch]:
    """A manager with component 'db' and a registry with breaker 'pay'."""
    check = Switch()
    return manager_with(db=check), _breakers(FakeClock()), check


@pytest.mark.parametrize(("method", "request_"), _ADMIN_CALLS)
@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong-token"),),
        (("authorization", f"Basic {TOKEN}"),),
        (("authorization", TOKEN),),
        (("authorization", f"Bearer {TOKEN}x"),),
        (("authorization", f"Bearer {TOKEN}"), ("authorization", f"Bearer {TOKEN}")),
    ],
    ids=["missing", "wrong", "basic", "no-scheme", "longer", "twice"],
)
async def test_admin_rpcs_without_the_right_token_are_unauthenticated(
    admin_world: tuple[HealthCheckManager, CircuitBreakerRegistry, Switch],
    method: str,
    request_: Any,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    """A missing, malformed or wrong bearer token is UNAUTHENTICATED and changes nothing."""
    manager, registry, check = admin_world
    async with serve(manager, registry=registry) as served:
        code, details = await _code(getattr(served.engined, method)(request_, metadata=metadata))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert TOKEN not in details
    assert check.runs == 0
    assert registry.get("pay").state is engined.CircuitState.OPEN


@pytest.mark.parametrize(("method", "request_"), _ADMIN_CALLS)
async def test_admin_rpcs_with_the_right_token_succeed(
    admin_world: tuple[HealthCheckManager, CircuitBreakerRegistry, Switch],
    method: str,
    request_: Any,
) -> None:
    """The configured token, in any case of the Bearer scheme, authorizes every admin RPC."""
    manager, registry, _ = admin_world
    async with serve(manager, registry=registry) as served:
        metadata = (("authorization", f"bearer {TOKEN}"),)
        await getattr(served.engined, method)(request_, metadata=metadata, timeout=5)


@pytest.mark.parametrize(("method", "request_"), _ADMIN_CALLS)
async def test_admin_rpcs_are_permission_denied_when_no_token_is_configured(
    admin_world: tuple[HealthCheckManager, CircuitBreakerRegistry, Switch],
    method: str,
    request_: Any,
) -> None:
    """A server without an admin token refuses admin RPCs, whatever token the caller sends."""
    manager, registry, check = admin_world
    async with serve(manager, registry=registry, admin_token=None) as served:
        code, _ = await _code(getattr(served.engined, method)(request_, metadata=ADMIN))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert check.runs == 0


async def test_auth_is_checked_before_arguments() -> None:
    """Without the token, an unknown name is UNAUTHENTICATED, not NOT_FOUND: names stay hidden."""
    async with serve(manager_with()) as served:
        code, _ = await _code(served.engined.ResetHeal(pb.ResetHealRequest(name="nope")))
    assert code is grpc.StatusCode.UNAUTHENTICATED


async def test_read_only_rpcs_need_no_token() -> None:
    """GetSystemHealth and ListCircuitBreakers answer without metadata even with admin off."""
    async with serve(manager_with(db=Switch()), admin_token=None) as served:
        await served.engined.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=5)
        await served.engined.ListCircuitBreakers(pb.ListCircuitBreakersRequest(), timeout=5)


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
            code, details = await _code(
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
        code, details = await _code(call)
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
        code, _ = await _code(
            served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=5).read()
        )
        assert code is grpc.StatusCode.INTERNAL
        await eventually(lambda: served.services.open_streams == 0)
        stream = served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=5)
        reply = await asyncio.wait_for(stream.read(), 5)
        assert reply.health.overall_status == pb.HEALTH_STATUS_HEALTHY
        stream.cancel()
