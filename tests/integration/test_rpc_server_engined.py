"""The engined.v1.Engined service on a real grpc.aio server: what each RPC answers.

Auth is in test_rpc_server_auth.py, refusals and INTERNAL in test_rpc_server_errors.py.
"""

from __future__ import annotations

import threading

import grpc
import pytest
from google.protobuf import json_format
from rpc_server_support import ADMIN, WALL_NS, Switch, breakers, eventually, manager_with, serve

import engined
import engined.rpc
from engined import HealthCheckManager, HealthStatus
from engined.testing import FakeClock
from engined.v1 import engined_pb2 as pb
from engined.v1 import engined_pb2_grpc

pytestmark = pytest.mark.integration


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


async def test_watch_system_health_streams_share_one_conversion_per_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 streams and one status change: the health is converted to a message once, not 20 times."""
    converted: list[int] = []
    convert = engined.rpc._convert.system_message

    def counting(health: engined.SystemHealth, observed_at_ns: int) -> pb.SystemHealth:
        converted.append(id(health))
        return convert(health, observed_at_ns)

    monkeypatch.setattr(engined.rpc._convert, "system_message", counting)
    check = Switch()
    manager = manager_with(db=check)
    await manager.run_all()
    async with serve(manager) as served:
        streams = [
            served.engined.WatchSystemHealth(pb.WatchSystemHealthRequest(), timeout=10)
            for _ in range(20)
        ]
        firsts = [await stream.read() for stream in streams]
        assert {f.health.overall_status for f in firsts} == {pb.HEALTH_STATUS_HEALTHY}
        check.status = HealthStatus.UNHEALTHY
        await manager.run_check("db")
        seconds = [await stream.read() for stream in streams]
        assert {s.health.overall_status for s in seconds} == {pb.HEALTH_STATUS_UNHEALTHY}
        assert len(set(converted)) == len(converted) == 2  # the first value, then the change
        for stream in streams:
            stream.cancel()


async def test_get_system_health_and_list_breakers_convert_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The unary health and breaker replies are built in a worker thread, not on the loop."""
    loop_thread = threading.get_ident()
    threads: list[int] = []
    system_message = engined.rpc._convert.system_message
    breaker_message = engined.rpc._convert.breaker_message

    def system(health: engined.SystemHealth, observed_at_ns: int) -> pb.SystemHealth:
        threads.append(threading.get_ident())
        return system_message(health, observed_at_ns)

    def breaker(metrics: engined.CircuitBreakerMetrics) -> pb.CircuitBreakerMetrics:
        threads.append(threading.get_ident())
        return breaker_message(metrics)

    monkeypatch.setattr(engined.rpc._convert, "system_message", system)
    monkeypatch.setattr(engined.rpc._convert, "breaker_message", breaker)
    manager = manager_with(db=Switch())
    async with serve(manager, registry=breakers(FakeClock())) as served:
        await served.engined.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=10)
        reply = await served.engined.ListCircuitBreakers(
            pb.ListCircuitBreakersRequest(), timeout=10
        )
    assert len(reply.circuit_breakers) == 2
    assert len(threads) == 3
    assert loop_thread not in threads


# ------------------------------------------------------------------------ read-only breakers


async def test_list_circuit_breakers_maps_every_breaker_sorted() -> None:
    """Every breaker of the registry is listed by name with its state and counters."""
    clock = FakeClock()
    async with serve(manager_with(), registry=breakers(clock)) as served:
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
    async with serve(manager_with(), registry=breakers(clock)) as served:
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
    registry = breakers(FakeClock())
    async with serve(manager_with(), registry=registry) as served:
        reply = await served.engined.SetCircuitBreakerState(
            pb.SetCircuitBreakerStateRequest(name="pay", action=action), metadata=ADMIN, timeout=5
        )
    assert registry.get("pay").state is state
    assert pb.CircuitState.Name(reply.circuit_breaker.state) == f"CIRCUIT_STATE_{state.name}"
