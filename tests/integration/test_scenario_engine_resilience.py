"""Scenario: an engine daemon's resilience suite, end to end on loopback (issue 11, scenario 1).

Real engined breakers, timeouts, bulkheads, checks and heals against real sockets: a
"database" that accepts and never answers, goes away and comes back, or fails every second
query, and an HTTP service that stops. The servers (``scenario_support``) are the only fakes.
Breakers and managers take a FakeClock where time decides a state (recovery, heal backoff),
so every count below is exact; the timeouts that cut a hung call run on the loop's real timer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from scenario_support import (
    DbConnection,
    DbError,
    LoopbackDb,
    LoopbackHttp,
    query_once,
)

import engined
from engined import (
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
    ComponentType,
    HealState,
    HealthCheckManager,
    HealthCheckResult,
    HealthEvent,
    HealthStatus,
    StateChange,
    breaker_health_check,
)
from engined.checks import HttpCheck
from engined.testing import FakeClock

pytestmark = pytest.mark.integration

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
HUNG_CALL = 0.2  # s a call to the silent database waits before the timeout cuts it


async def _outcome(call: Awaitable[object]) -> str:
    try:
        await call
    except CallTimeoutError:
        return "timeout"
    except CircuitBreakerOpenError:
        return "rejected"
    except DbError:
        return "error"
    except asyncio.CancelledError:
        return "cancelled"
    return "ok"


async def _batch(n: int, call: Callable[[str], Awaitable[str]]) -> Counter[str]:
    """``n`` calls started at once (each acquires its permit before any of them awaits)."""
    return Counter(await asyncio.gather(*(_outcome(call(f"k{i}")) for i in range(n))))


def _timed_breaker(db: LoopbackDb, breaker: CircuitBreaker) -> Callable[[str], Awaitable[str]]:
    @breaker
    @engined.timeout(HUNG_CALL)
    async def get(key: str) -> str:
        return await query_once(db.port, key)

    return get


async def test_network_timeouts_open_the_breaker_after_exactly_its_threshold() -> None:
    """Three calls to a server that never answers time out; the fourth is refused unsent."""
    clock = FakeClock()
    breaker = CircuitBreaker("db", failure_threshold=3, recovery_timeout=30.0, clock=clock)
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    async with LoopbackDb("silent") as db:
        get = _timed_breaker(db, breaker)
        outcomes = [await _outcome(get(f"k{i}")) for i in range(5)]
        assert outcomes == ["timeout", "timeout", "timeout", "rejected", "rejected"]
        assert (db.connections, db.requests) == (3, 3)  # the rejected calls never connected
    metrics = breaker.metrics
    assert (metrics.state, metrics.failed_calls, metrics.rejected_calls) == (OPEN, 3, 2)
    assert (metrics.times_opened, metrics.retry_after) == (1, 30.0)
    assert changes == [StateChange("db", CLOSED, OPEN, 0.0)]


async def test_concurrent_timeouts_count_exactly_and_half_open_admits_exactly_its_probes() -> None:
    """10 tasks at once: all fail in CLOSED, all refused in OPEN, 2 probes exactly in HALF_OPEN."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "db",
        failure_threshold=3,
        recovery_timeout=30.0,
        half_open_max_calls=2,
        success_threshold=2,
        clock=clock,
    )
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    async with LoopbackDb("silent") as db:
        get = _timed_breaker(db, breaker)
        # CLOSED admits all ten; the breaker opens at the third failure, the other seven
        # finish after it and are counted without moving the state again.
        assert await _batch(10, get) == {"timeout": 10}
        assert (breaker.state, breaker.metrics.times_opened, db.requests) == (OPEN, 1, 10)
        assert await _batch(10, get) == {"rejected": 10}
        assert db.connections == 10  # nothing reached the server while OPEN

        clock.advance(30.0)  # HALF_OPEN: two probe slots; the probes time out, it re-opens
        assert await _batch(10, get) == {"timeout": 2, "rejected": 8}
        assert (breaker.state, breaker.metrics.times_opened, db.requests) == (OPEN, 2, 12)

        clock.advance(30.0)  # two probes are cancelled mid-call: their slots come back
        tasks = [asyncio.create_task(_outcome(get(f"c{i}"))) for i in range(10)]
        await db.wait_requests(14)  # both probes are at the server, waiting for an answer
        for task in tasks:
            task.cancel()
        assert Counter(await asyncio.gather(*tasks)) == {"rejected": 8, "cancelled": 2}
        assert breaker.state is HALF_OPEN  # cancelled probes are not failures

        db.mode = "answer"  # so no permit leaked: the next batch gets both slots again
        assert await _batch(10, get) == {"ok": 2, "rejected": 8}
        assert breaker.state is CLOSED
        assert await _batch(10, get) == {"ok": 10}
    metrics = breaker.metrics
    assert (metrics.successful_calls, metrics.failed_calls, metrics.ignored_calls) == (12, 12, 0)
    assert metrics.total_calls == 24
    assert metrics.rejected_calls == 10 + 8 + 8 + 8
    assert [(c.from_state, c.to_state) for c in changes] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


async def test_an_unavailable_service_is_detected_unhealthy_healed_and_recovers() -> None:
    """An HTTP check of a stopped service fails twice, goes UNHEALTHY, the heal restarts it."""
    service = LoopbackHttp()
    await service.start()
    manager = HealthCheckManager(clock=FakeClock())
    events: list[HealthEvent] = []
    manager.add_listener(events.append)
    triggers: list[str] = []

    async def restart(trigger: HealthCheckResult) -> None:
        triggers.append(trigger.message)
        await service.start()

    manager.register(
        "api",
        HttpCheck(service.url, body_contains="ok"),
        component_type="service",
        heal=restart,
        failure_threshold=2,
        timeout=5.0,
    )
    try:
        assert (await manager.run_check("api")).status is HealthStatus.HEALTHY
        await service.stop()
        first = await manager.run_check("api")
        assert (first.status, first.consecutive_failures) == (HealthStatus.HEALTHY, 1)
        second = await manager.run_check("api")
        assert (second.status, second.heal_attempts, second.last_heal_error) == (
            HealthStatus.UNHEALTHY,
            1,
            None,
        )
        assert triggers == ["connection refused"]
        assert (await manager.run_check("api")).status is HealthStatus.HEALTHY
        assert service.starts == 2
    finally:
        await service.stop()
    assert [(e.kind, e.from_status, e.to_status, e.attempt, e.error) for e in events] == [
        ("transition", HealthStatus.UNKNOWN, HealthStatus.HEALTHY, None, None),
        ("transition", HealthStatus.HEALTHY, HealthStatus.UNHEALTHY, None, None),
        ("heal_started", None, None, 1, None),
        ("heal_finished", None, None, 1, None),
        ("transition", HealthStatus.UNHEALTHY, HealthStatus.HEALTHY, None, None),
    ]


async def test_a_manager_in_the_background_heals_a_stopped_service_on_its_own() -> None:
    """With start() and real intervals, a stopped service goes UNHEALTHY and is healed HEALTHY."""
    service = LoopbackHttp()
    await service.start()
    manager = HealthCheckManager()
    transitions: list[tuple[HealthStatus | None, HealthStatus | None]] = []
    healthy, healthy_again = asyncio.Event(), asyncio.Event()

    def hear(event: HealthEvent) -> None:
        if event.kind == "transition":
            transitions.append((event.from_status, event.to_status))
            if event.from_status is HealthStatus.UNKNOWN:
                healthy.set()
            if event.from_status is HealthStatus.UNHEALTHY:
                healthy_again.set()

    async def restart(trigger: HealthCheckResult) -> None:
        await service.start()

    manager.add_listener(hear)
    manager.register("api", HttpCheck(service.url), heal=restart, interval=0.1, timeout=0.1)
    try:
        async with manager, asyncio.timeout(20):
            await healthy.wait()
            await service.stop()
            await healthy_again.wait()
    finally:
        await service.stop()
    assert transitions == [
        (HealthStatus.UNKNOWN, HealthStatus.HEALTHY),
        (HealthStatus.HEALTHY, HealthStatus.UNHEALTHY),
        (HealthStatus.UNHEALTHY, HealthStatus.HEALTHY),
    ]
    assert service.starts == 2
    assert manager.component("api").heal_attempts == 1


async def test_a_lost_database_connection_opens_the_breaker_and_a_reconnect_heals_it() -> None:
    """The db goes away: calls fail, the breaker opens, its check is UNHEALTHY; reconnect heals."""
    clock = FakeClock()
    breaker = CircuitBreaker("db", failure_threshold=2, recovery_timeout=10.0, clock=clock)
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    async with LoopbackDb() as db:
        conn = DbConnection(db.port)
        await conn.connect()

        @breaker
        @engined.timeout(5.0)
        async def get(key: str) -> str:
            return await conn.get(key)

        async def reconnect(trigger: HealthCheckResult) -> None:
            await conn.connect()

        manager = HealthCheckManager(clock=clock)
        manager.register(
            "db",
            breaker_health_check(breaker),
            component_type="database",
            heal=reconnect,
            heal_backoff_initial=1.0,
        )
        try:
            assert await get("a") == "a"
            assert (await manager.run_check("db")).status is HealthStatus.HEALTHY

            await db.stop()  # the database goes away, dropping the held connection
            for _ in range(2):
                with pytest.raises(ConnectionError):
                    await get("b")
            with pytest.raises(CircuitBreakerOpenError):
                await get("b")
            down = await manager.run_check("db")
            assert (down.status, down.heal_attempts, down.heal_state) == (
                HealthStatus.UNHEALTHY,
                1,
                HealState.BACKOFF,
            )
            assert down.last_heal_error == "ConnectionRefusedError"  # still down: it failed

            await db.start()  # back on the same port
            clock.advance(1.0)  # the second heal attempt is due
            healed = await manager.run_check("db")
            assert (healed.status, healed.heal_attempts, healed.last_heal_error) == (
                HealthStatus.UNHEALTHY,  # reconnected, but the breaker has not probed yet
                2,
                None,
            )
            assert conn.connects == 2
            with pytest.raises(CircuitBreakerOpenError):
                await get("c")

            clock.advance(9.0)  # recovery timeout over: HALF_OPEN, which the check calls DEGRADED
            assert (await manager.run_check("db")).status is HealthStatus.DEGRADED
            assert await get("c") == "c"  # the probe, on the new connection, closes it
            assert (await manager.run_check("db")).status is HealthStatus.HEALTHY
            assert [await get(k) for k in "xyz"] == ["x", "y", "z"]
        finally:
            conn.close()
    assert [(c.from_state, c.to_state) for c in changes] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    metrics = breaker.metrics
    assert (metrics.successful_calls, metrics.failed_calls, metrics.rejected_calls) == (5, 2, 2)
    assert manager.component("db").component_type is ComponentType.DATABASE


async def test_one_hundred_concurrent_requests_keep_the_breaker_closed() -> None:
    """100 requests at once through breaker > timeout > bulkhead: 100 successes, no transition."""
    breaker = CircuitBreaker("db", failure_threshold=1, clock=FakeClock())  # one failure opens
    bulkhead = engined.Bulkhead("db", max_concurrent=10, max_wait=10.0)
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    async with LoopbackDb() as db:

        @breaker
        @engined.timeout(10.0)
        @bulkhead
        async def get(key: str) -> str:
            return await query_once(db.port, key)

        keys = [f"k{i}" for i in range(100)]
        assert await asyncio.gather(*(get(key) for key in keys)) == keys
        assert (db.connections, db.requests) == (100, 100)
    metrics = breaker.metrics
    assert metrics.state is CLOSED
    assert (metrics.total_calls, metrics.successful_calls) == (100, 100)
    assert (metrics.failed_calls, metrics.rejected_calls, metrics.times_opened) == (0, 0, 0)
    assert changes == []


async def _alternating_run(breaker: CircuitBreaker, calls: int) -> tuple[list[str], int | None]:
    """``calls`` sequential queries to a db failing every second one; the call that opened it."""
    opened_at: int | None = None
    outcomes = []
    async with LoopbackDb("alternate") as db:
        for number in range(1, calls + 1):
            outcomes.append(await _outcome(breaker.call_async(query_once, db.port, "k")))
            if opened_at is None and breaker.state is OPEN:
                opened_at = number
                at_open = breaker.metrics
                assert (at_open.consecutive_failures, at_open.failure_rate) == (1, 0.5)
                assert (at_open.failed_calls, at_open.successful_calls) == (5, 5)
    return outcomes, opened_at


async def test_a_fifty_percent_failure_rate_opens_the_breaker_by_the_rate_rule() -> None:
    """Failures alternate, never 3 in a row: the rate rule opens it at call 10, the count never."""
    by_rate = CircuitBreaker(
        "db",
        failure_threshold=3,
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=10,
        recovery_timeout=60.0,
        clock=FakeClock(),
    )
    outcomes, opened_at = await _alternating_run(by_rate, 20)
    assert opened_at == 10
    assert outcomes == ["ok", "error"] * 5 + ["rejected"] * 10
    assert by_rate.metrics.times_opened == 1

    by_count_only = CircuitBreaker("db", failure_threshold=3, clock=FakeClock())
    outcomes, opened_at = await _alternating_run(by_count_only, 100)
    assert opened_at is None
    assert outcomes == ["ok", "error"] * 50
    metrics = by_count_only.metrics
    assert (metrics.state, metrics.failed_calls, metrics.times_opened) == (CLOSED, 50, 0)
