"""grpc.health.v1.Health (Check, Watch, List) on a real grpc.aio server, and graceful shutdown.

The protocol is grpc/grpc doc/health-checking.md; List is engined's own, since grpcio's
servicer lacks it (grpc/grpc#41991). grpclib (pure Python, its own HTTP/2 stack) checks
that an independent client reads the same answers.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpclib.client import Channel, UnaryStreamMethod, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from rpc_server_support import Served, Switch, eventually, manager_with, serve

from engined import HealthCheckManager, HealthStatus
from engined.rpc._health_service import LIST_LIMIT
from engined.testing import FakeClock

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def _watch(served: Served, service: str) -> grpc.aio.UnaryStreamCall:
    return served.health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=20)


async def _next_status(call: grpc.aio.UnaryStreamCall) -> int:
    reply = await asyncio.wait_for(call.read(), 5)
    assert reply is not grpc.aio.EOF, "the Watch stream ended"
    status: int = reply.status
    return status


@pytest.mark.parametrize(
    ("status", "serving"),
    [
        (HealthStatus.HEALTHY, SERVING),
        (HealthStatus.DEGRADED, SERVING),
        (HealthStatus.UNHEALTHY, NOT_SERVING),
    ],
)
async def test_check_maps_each_component_status(status: HealthStatus, serving: int) -> None:
    """HEALTHY and DEGRADED are SERVING, UNHEALTHY is NOT_SERVING, for a component and for ""."""
    manager = manager_with(db=Switch(status))
    await manager.run_all()
    async with serve(manager) as served:
        assert await served.check("db") == serving
        assert await served.check("") == serving


async def test_an_undecided_component_is_not_serving() -> None:
    """UNKNOWN (never checked) is NOT_SERVING: nobody saw it pass."""
    async with serve(manager_with(db=Switch())) as served:
        assert await served.check("db") == NOT_SERVING
        assert await served.check("") == NOT_SERVING


async def test_the_overall_service_follows_critical_components_only() -> None:
    """The overall service "" ignores a failing non-critical component: it stays SERVING."""
    manager = HealthCheckManager(clock=FakeClock())
    manager.register("core", Switch())
    manager.register("extra", Switch(HealthStatus.UNHEALTHY), critical=False)
    await manager.run_all()
    async with serve(manager) as served:
        assert await served.check("") == SERVING
        assert await served.check("extra") == NOT_SERVING


async def test_an_empty_manager_is_serving() -> None:
    """No components: the system is HEALTHY, so "" is SERVING."""
    async with serve(manager_with()) as served:
        assert await served.check("") == SERVING


async def test_check_of_an_unknown_service_is_not_found() -> None:
    """A name that is no component is NOT_FOUND, as the protocol says for Check."""
    async with serve(manager_with(db=Switch())) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.check("nope")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_list_has_the_overall_service_and_every_component() -> None:
    """List answers "" and one entry per component with its status (grpc/grpc#41991)."""
    manager = manager_with(db=Switch(), cache=Switch(HealthStatus.UNHEALTHY))
    await manager.run_all()
    async with serve(manager) as served:
        reply = await served.health.List(health_pb2.HealthListRequest(), timeout=5)
    assert {name: r.status for name, r in reply.statuses.items()} == {
        "": NOT_SERVING,
        "db": SERVING,
        "cache": NOT_SERVING,
    }


async def test_list_beyond_its_limit_is_resource_exhausted() -> None:
    """More than LIST_LIMIT services (with "") is RESOURCE_EXHAUSTED, as grpc-go's server does."""
    manager = manager_with(**{f"c{i}": Switch() for i in range(LIST_LIMIT)})
    async with serve(manager) as served:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.health.List(health_pb2.HealthListRequest(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "GetSystemHealth" in (caught.value.details() or "")


async def test_watch_sends_the_current_status_then_each_change() -> None:
    """Watch answers at once, then only when its own service's status changes."""
    db, cache = Switch(), Switch()
    manager = manager_with(db=db, cache=cache)
    await manager.run_all()
    async with serve(manager) as served:
        call = _watch(served, "db")
        assert await _next_status(call) == SERVING
        cache.status = HealthStatus.UNHEALTHY
        await manager.run_check("cache")  # another service: nothing sent on this stream
        db.status = HealthStatus.UNHEALTHY
        await manager.run_check("db")
        assert await _next_status(call) == NOT_SERVING
        db.status = HealthStatus.HEALTHY
        await manager.run_check("db")
        assert await _next_status(call) == SERVING
        call.cancel()


async def test_watch_of_the_overall_service_follows_the_roll_up() -> None:
    """Watch "" follows the overall status."""
    db = Switch()
    manager = manager_with(db=db)
    await manager.run_all()
    async with serve(manager) as served:
        call = _watch(served, "")
        assert await _next_status(call) == SERVING
        db.status = HealthStatus.UNHEALTHY
        await manager.run_check("db")
        assert await _next_status(call) == NOT_SERVING
        call.cancel()


async def test_watch_of_an_unknown_service_waits_for_it_to_be_registered() -> None:
    """SERVICE_UNKNOWN keeps the stream open; once registered the real status follows."""
    manager = manager_with()
    async with serve(manager) as served:
        call = _watch(served, "late")
        assert await _next_status(call) == SERVICE_UNKNOWN
        manager.register("late", Switch())
        assert await _next_status(call) == NOT_SERVING  # registered, not yet checked: UNKNOWN
        await manager.run_check("late")
        assert await _next_status(call) == SERVING
        manager.unregister("late")
        assert await _next_status(call) == SERVICE_UNKNOWN
        call.cancel()


async def test_graceful_shutdown_tells_watchers_not_serving_before_the_server_stops() -> None:
    """shutdown(): Watch sees NOT_SERVING while the server still serves, then it stops.

    During the drain Check answers NOT_SERVING; then the streams end with OK and the server
    refuses connections (the sequence of grpc/grpc PR #26622's example).
    """
    manager = manager_with(db=Switch())
    await manager.run_all()
    async with serve(manager) as served:
        overall, db = _watch(served, ""), _watch(served, "db")
        assert await _next_status(overall) == SERVING
        assert await _next_status(db) == SERVING
        stopping = asyncio.create_task(served.services.shutdown(grace=1.0, drain=0.3))
        assert await _next_status(overall) == NOT_SERVING
        assert await _next_status(db) == NOT_SERVING
        assert not stopping.done()  # the server still answers during the drain
        assert await served.check("db") == NOT_SERVING
        assert await asyncio.wait_for(overall.read(), 5) is grpc.aio.EOF
        assert await overall.code() is grpc.StatusCode.OK
        await asyncio.wait_for(stopping, 5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.check("")
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_graceful_shutdown_is_permanent() -> None:
    """After enter_graceful_shutdown nothing is SERVING again, whatever the checks say."""
    db = Switch(HealthStatus.UNHEALTHY)
    manager = manager_with(db=db)
    async with serve(manager) as served:
        served.services.enter_graceful_shutdown()
        db.status = HealthStatus.HEALTHY
        await manager.run_check("db")
        assert await served.check("db") == NOT_SERVING
        reply = await served.health.List(health_pb2.HealthListRequest(), timeout=5)
        assert {r.status for r in reply.statuses.values()} == {NOT_SERVING}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await served.check("nope")  # still unknown: NOT_FOUND, as grpcio's servicer does
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_watch_opened_after_close_streams_ends_at_once() -> None:
    """Once streams are closed for the stop, a new Watch gets its status and ends with OK."""
    async with serve(manager_with()) as served:
        served.services.enter_graceful_shutdown()
        served.services.close_streams()
        call = _watch(served, "")
        assert await _next_status(call) == NOT_SERVING
        assert await asyncio.wait_for(call.read(), 5) is grpc.aio.EOF
        assert await call.code() is grpc.StatusCode.OK


async def test_shutdown_refuses_negative_times() -> None:
    """shutdown(grace=-1) is a ValueError before anything changes."""
    async with serve(manager_with()) as served:
        with pytest.raises(ValueError, match="grace"):
            await served.services.shutdown(grace=-1.0)
        assert not served.services.health.shutting_down


# ------------------------------------------------------------------------ grclib, independently


def _grpclib_check(channel: Channel) -> UnaryUnaryMethod:
    return UnaryUnaryMethod(
        channel,
        "/grpc.health.v1.Health/Check",
        health_pb2.HealthCheckRequest,
        health_pb2.HealthCheckResponse,
    )


async def test_grpclib_check_reads_the_same_statuses() -> None:
    """grpclib, a separate HTTP/2 implementation, gets SERVING, NOT_SERVING and NOT_FOUND."""
    manager = manager_with(db=Switch(), cache=Switch(HealthStatus.UNHEALTHY))
    await manager.run_all()
    async with serve(manager) as served:
        channel = Channel("127.0.0.1", served.port)
        try:
            check = _grpclib_check(channel)
            db = await check(health_pb2.HealthCheckRequest(service="db"), timeout=5)
            cache = await check(health_pb2.HealthCheckRequest(service="cache"), timeout=5)
            with pytest.raises(GRPCError) as caught:
                await check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        finally:
            channel.close()
    assert (db.status, cache.status) == (SERVING, NOT_SERVING)
    assert caught.value.status is Status.NOT_FOUND


async def test_grpclib_watch_sees_a_change_and_shutdown() -> None:
    """A grpclib Watch stream gets SERVING, a change to NOT_SERVING, and the stream's end."""
    db = Switch()
    manager = manager_with(db=db)
    await manager.run_all()
    async with serve(manager) as served:
        channel = Channel("127.0.0.1", served.port)
        try:
            watch = UnaryStreamMethod(
                channel,
                "/grpc.health.v1.Health/Watch",
                health_pb2.HealthCheckRequest,
                health_pb2.HealthCheckResponse,
            )
            async with watch.open(timeout=20) as stream:
                await stream.send_message(health_pb2.HealthCheckRequest(service="db"), end=True)
                first = await asyncio.wait_for(stream.recv_message(), 5)
                db.status = HealthStatus.UNHEALTHY
                await manager.run_check("db")
                second = await asyncio.wait_for(stream.recv_message(), 5)
                served.services.close_streams()
                end = await asyncio.wait_for(stream.recv_message(), 5)
                await stream.recv_trailing_metadata()
        finally:
            channel.close()
        await eventually(lambda: served.services.open_streams == 0)
    assert first is not None
    assert second is not None
    assert (first.status, second.status, end) == (SERVING, NOT_SERVING, None)
