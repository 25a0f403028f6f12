"""An engine daemon's resilience suite on loopback: timeouts, heals, a lost database, load.

A tiny line-protocol "database" and an HTTP service run in this process on 127.0.0.1; the
rest is engined as a daemon would use it:

a. calls to a server that accepts and never answers time out and open a breaker, one by
   one and ten at once; after the recovery timeout exactly two probes go through;
b. an HTTP service stops, its health check goes UNHEALTHY, the heal restarts it;
c. the database goes away: calls fail, the breaker opens, a health check on the breaker
   goes UNHEALTHY, a heal reconnects once the database is back, the breaker probes and closes;
d. 100 concurrent requests leave the breaker CLOSED without a single transition;
e. every second query fails: a failure-rate rule opens the breaker, never a count of
   failures in a row.

Stage f, the same loop through a real ``engined serve`` daemon, a gRPC backend and three
interfaces, takes about 15 s (a breaker's recovery timeout long enough to watch), more than
an example may: it is tests/integration/test_scenario_cross_component.py.

Run it: python examples/engine_resilience.py
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import engined
from engined.checks import HttpCheck

HUNG = 0.1  # s before a call to the silent server is cut
RECOVERY = 0.3  # s a breaker stays open


class Db:
    """A loopback database: ``GET k`` -> ``OK k``; silent, or failing every second query."""

    def __init__(self, mode: str = "answer") -> None:
        self.mode, self.port, self.connections, self.requests = mode, 0, 0, 0
        self.server: asyncio.Server | None = None
        self.clients: dict[asyncio.StreamWriter, asyncio.Task[Any] | None] = {}

    async def start(self) -> None:
        """Listen on its old port (a restart), or on a free one the first time."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self.server is not None:
            self.server.close()
            for client in list(self.clients):
                client.transport.abort()  # the held connections drop too
            await self.server.wait_closed()
            self.server = None
        if handlers := [task for task in self.clients.values() if task is not None]:
            await asyncio.wait(handlers, timeout=1.0)  # they see the end of their connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.clients[writer] = asyncio.current_task()
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                self.requests += 1
                if self.mode == "silent":
                    await reader.read()  # never answers
                    break
                failed = self.mode == "alternate" and self.requests % 2 == 0
                writer.write(b"ERR\n" if failed else b"OK " + line[4:])
                await writer.drain()
        del self.clients[writer]
        writer.close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str) -> str:
    writer.write(f"GET {key}\n".encode())
    await writer.drain()
    line = (await reader.readline()).decode().strip()
    if not line:
        raise ConnectionError("the database closed the connection")
    if line == "ERR":
        raise LookupError("query failed")
    return line[3:]


async def _query(port: int, key: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _exchange(reader, writer, key)
    finally:
        writer.close()


async def _outcome(call: Awaitable[object]) -> str:
    try:
        await call
    except engined.CallTimeoutError:
        return "timed out"
    except engined.CircuitBreakerOpenError:
        return "rejected"
    except LookupError:
        return "failed"
    return "ok"


async def _at_once(n: int, call: Callable[[str], Awaitable[str]]) -> str:
    counts = Counter(await asyncio.gather(*(_outcome(call(f"k{i}")) for i in range(n))))
    return ", ".join(f"{count} {what}" for what, count in sorted(counts.items()))


async def timeouts() -> None:
    """Stage a: network timeouts open a breaker, one by one and ten at once."""
    breaker = engined.CircuitBreaker(
        "silent-db", failure_threshold=3, recovery_timeout=RECOVERY, half_open_max_calls=2
    )
    db = Db("silent")
    await db.start()

    @breaker
    @engined.timeout(HUNG)
    async def get(key: str) -> str:
        return await _query(db.port, key)

    for number in range(1, 5):
        print(f"a. call {number}: {await _outcome(get('k'))}, state={breaker.state.value}")
    print(f"a. the server saw {db.connections} connections: the rejected call never connected")
    breaker.reset()
    print(f"a. 10 calls at once while closed: {await _at_once(10, get)}")
    print(f"a. 10 calls at once while open: {await _at_once(10, get)}")
    await asyncio.sleep(RECOVERY)
    print(f"a. 10 calls at once after the recovery timeout: {await _at_once(10, get)}")
    print(f"a. the server saw {db.connections} connections (3 + 10 + 2 probes)")
    await db.stop()


async def service_heal() -> None:
    """Stage b: a service that stops is detected UNHEALTHY and healed by a restart."""
    http = HttpService()
    await http.start()
    manager = engined.HealthCheckManager()
    manager.add_listener(_show_health_event("b"))

    async def restart(trigger: engined.HealthCheckResult) -> None:
        print(f"b. heal: restarting the api ({trigger.message})")
        await http.start()

    manager.register("api", HttpCheck(http.url), heal=restart, failure_threshold=2)
    await manager.run_check("api")
    await http.stop()
    for _ in range(3):
        await manager.run_check("api")
    await http.stop()


class HttpService:
    """An HTTP service answering 200 ok, which can stop and start on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Its health URL."""
        return f"http://127.0.0.1:{self.port}/healthz"

    async def start(self) -> None:
        """Listen on its old port (a restart), or on a free one the first time."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while (await reader.readline()).strip():
                pass
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()


def _show_health_event(stage: str) -> Callable[[engined.HealthEvent], None]:
    def show(event: engined.HealthEvent) -> None:
        if event.kind == "transition" and event.from_status is not None:
            assert event.to_status is not None
            moved = f"{event.from_status.value} -> {event.to_status.value}"
            print(f"{stage}. {event.component}: {moved}")
        elif event.kind == "heal_finished":
            result = "ok" if event.error is None else f"failed ({event.error})"
            print(f"{stage}. {event.component} heal {event.attempt} {result}")

    return show


async def lost_database() -> None:
    """Stage c: a lost database connection, guarded by a breaker, healed by reconnecting."""
    db = Db()
    await db.start()
    breaker = engined.CircuitBreaker("db", failure_threshold=2, recovery_timeout=RECOVERY)
    connection: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect() -> None:
        for _, old in connection:
            old.close()
        connection[:] = [await asyncio.open_connection("127.0.0.1", db.port)]

    @breaker
    @engined.timeout(2.0)
    async def get(key: str) -> str:
        if not connection:
            raise ConnectionError("not connected")
        try:
            return await _exchange(*connection[0], key)
        except ConnectionError:
            connection.pop()[1].close()
            raise

    async def reconnect(trigger: engined.HealthCheckResult) -> None:
        await connect()

    manager = engined.HealthCheckManager()
    manager.add_listener(_show_health_event("c"))
    manager.register(
        "db",
        engined.breaker_health_check(breaker),
        component_type="database",
        heal=reconnect,
        heal_backoff_initial=0.05,
    )
    await connect()
    print(f"c. get('a') -> {await get('a')}")
    await manager.run_check("db")
    await db.stop()
    failures = []
    for _ in range(3):
        failures.append(await _outcome_of(get("b")))
    print(f"c. the database went away: {', '.join(failures)}; breaker {breaker.state.value}")
    await manager.run_check("db")  # UNHEALTHY; the first reconnect fails, the db is still down
    await db.start()
    await asyncio.sleep(0.1)  # the next heal attempt is due (0.05 s after the first)
    await manager.run_check("db")  # reconnects, but the breaker waits for its recovery timeout
    await asyncio.sleep(RECOVERY)
    await manager.run_check("db")  # HALF_OPEN reads DEGRADED
    print(f"c. the probe: get('c') -> {await get('c')}, breaker {breaker.state.value}")
    await manager.run_check("db")
    for _, writer in connection:
        writer.close()
    await db.stop()


async def _outcome_of(call: Awaitable[object]) -> str:
    try:
        await call
    except engined.CircuitBreakerOpenError:
        return "rejected"
    except ConnectionError:  # reset, closed or never reconnected: the connection is lost
        return "failed"
    return "ok"


async def steady_load() -> None:
    """Stage d: 100 concurrent requests keep the breaker CLOSED."""
    db = Db()
    await db.start()
    breaker = engined.CircuitBreaker("db-load", failure_threshold=1)  # one failure would open it
    transitions: list[engined.StateChange] = []
    breaker.add_listener(transitions.append)

    @breaker
    @engined.timeout(5.0)
    @engined.Bulkhead("db-load", max_concurrent=10, max_wait=5.0)
    async def get(key: str) -> str:
        return await _query(db.port, key)

    print(f"d. 100 requests at once: {await _at_once(100, get)}")
    m = breaker.metrics
    print(
        f"d. successful={m.successful_calls} failed={m.failed_calls} rejected={m.rejected_calls}"
        f" state={m.state.value} transitions={len(transitions)}"
    )
    await db.stop()


async def partial_failure() -> None:
    """Stage e: a 50 % failure rate opens the breaker by its rate rule."""
    db = Db("alternate")
    await db.start()
    breaker = engined.CircuitBreaker(
        "db-rate",
        failure_threshold=3,  # never reached: failures never come twice in a row
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=10,
        recovery_timeout=60.0,
    )
    outcomes = []
    for number in range(1, 13):
        outcomes.append(await _outcome(breaker.call_async(_query, db.port, "k")))
        if breaker.state is engined.CircuitState.OPEN and "rejected" not in outcomes:
            m = breaker.metrics
            print(
                f"e. opened at call {number} by the failure rate: rate={m.failure_rate}, "
                f"failures in a row={m.consecutive_failures} (threshold 3)"
            )
    print(f"e. outcomes: {' '.join(outcomes)}")
    await db.stop()


async def main() -> None:
    """Every stage in turn."""
    # This example prints the managers' events itself; keep their warning log lines
    # (a failed heal attempt in c.) off stderr.
    logging.getLogger("engined").addHandler(logging.NullHandler())
    await timeouts()
    await service_heal()
    await lost_database()
    await steady_load()
    await partial_failure()


if __name__ == "__main__":
    asyncio.run(main())
