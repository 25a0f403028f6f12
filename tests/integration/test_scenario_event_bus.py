"""Scenario: an event-bus publisher (examples/event_bus.py) through a real broker outage.

The broker is a real redis-server with an fsync-always append-only file, killed with
SIGKILL and started again on the same port; the publisher is the example's own
``BufferedPublisher`` (imported from its path, so the example and its tests cannot drift)
behind a real engined ``CircuitBreaker``; the stream is read back with XRANGE.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from redis_support import RedisServer, started

import engined

pytestmark = pytest.mark.integration

redis = pytest.importorskip("redis", reason="redis-py is in the dev extra")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "event_bus.py"
RECOVERY = 0.2


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("event_bus_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bus = _load_example()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A durable redis-server: what it acknowledged survives a SIGKILL."""
    with started(tmp_path, durable=True) as server:
        yield server


class Setup:
    """A publisher, its breaker and a client for reading the stream back."""

    def __init__(self, server: RedisServer, *, capacity: int = 100, timeout: float = 0.5):
        self.breaker = engined.CircuitBreaker(
            "event-bus",
            failure_threshold=5,
            recovery_timeout=RECOVERY,
            record_exceptions=(redis.ConnectionError, redis.TimeoutError),
        )
        self.client = bus.client_for(server.port, timeout=timeout)
        self.reader = bus.client_for(server.port, timeout=5.0)
        self.publisher: Any = bus.BufferedPublisher(self.client, self.breaker, capacity=capacity)

    def ids(self) -> list[str]:
        ids: list[str] = bus.stream_ids(self.reader)
        return ids

    def seqs(self) -> list[int]:
        return [int(fields[b"seq"]) for _, fields in self.reader.xrange("events")]

    def close(self) -> None:
        self.client.close()
        self.reader.close()


@pytest.fixture
def setup(broker: RedisServer) -> Iterator[Setup]:
    made = Setup(broker)
    yield made
    made.close()


def _timed(call: Any, *args: Any) -> tuple[Any, float]:
    started_at = time.perf_counter()  # noqa: TID251 - a real rejection's real duration
    outcome = call(*args)
    return outcome, time.perf_counter() - started_at  # noqa: TID251


def test_the_breaker_opens_after_exactly_five_failed_publishes(
    broker: RedisServer, setup: Setup
) -> None:
    """Broker killed: publishes 1-4 fail with the breaker closed, the 5th opens it."""
    assert setup.publisher.publish("e0", "up") == "published"
    broker.kill()
    for n in range(1, 6):
        assert setup.publisher.publish(f"e{n}", "x") == "buffered"
        expected = engined.CircuitState.OPEN if n == 5 else engined.CircuitState.CLOSED
        assert setup.breaker.state is expected, n
    assert setup.breaker.metrics.failed_calls == 5


def test_an_open_breaker_rejects_each_publish_in_well_under_10_ms(
    broker: RedisServer, setup: Setup
) -> None:
    """Once open, every publish is refused without a call and buffered, each under 10 ms."""
    broker.kill()
    for n in range(5):
        setup.publisher.publish(f"fail{n}", "x")
    assert setup.breaker.state is engined.CircuitState.OPEN
    for n in range(50):
        outcome, took = _timed(setup.publisher.publish, f"e{n}", "x")
        assert outcome == "buffered"
        assert took < 0.010, f"publish {n} took {took * 1000:.2f} ms"
    metrics = setup.breaker.metrics
    assert (metrics.failed_calls, metrics.rejected_calls) == (5, 50)
    assert len(setup.publisher.buffer) == 55


def test_a_full_buffer_refuses_loudly_naming_its_capacity(broker: RedisServer) -> None:
    """With 3 buffered, the 4th event raises BufferFullError naming capacity 3; nothing kept."""
    made = Setup(broker, capacity=3)
    try:
        broker.kill()
        for n in range(3):
            assert made.publisher.publish(f"e{n}", "x") == "buffered"
        with pytest.raises(bus.BufferFullError, match=r"capacity 3\): event e3 refused"):
            made.publisher.publish("e3", "x")
        assert [event.id for event in made.publisher.buffer] == ["e0", "e1", "e2"]
    finally:
        made.close()


def test_recovery_replays_the_buffer_in_order_exactly_once(
    broker: RedisServer, setup: Setup
) -> None:
    """Broker back and the probe through: the buffer is replayed in order, once, then empty."""
    for n in range(3):
        setup.publisher.publish(f"e{n:02}", "before")
    broker.kill()
    for n in range(3, 20):
        assert setup.publisher.publish(f"e{n:02}", "during") == "buffered"
    broker.start()
    assert setup.publisher.flush() == 17  # still open: nothing was tried
    time.sleep(RECOVERY + 0.05)  # noqa: TID251 - the breaker's real recovery timeout
    assert setup.publisher.flush() == 0
    assert setup.breaker.state is engined.CircuitState.CLOSED
    assert setup.publisher.flush() == 0  # a second flush replays nothing again
    expected = [f"e{n:02}" for n in range(20)]
    assert setup.ids() == expected
    assert setup.seqs() == list(range(1, 21))
    assert (setup.publisher.replayed, setup.publisher.duplicates) == (17, 0)


def test_a_publish_that_landed_but_lost_its_reply_is_not_duplicated(broker: RedisServer) -> None:
    """A publish timed out during a real stall lands anyway; its replay adds nothing."""
    made = Setup(broker, timeout=0.1)
    try:
        made.publisher.publish("e1", "x")
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as stall:
            stall.sendall(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n0.4\r\n")
            time.sleep(0.02)  # noqa: TID251 - the server is asleep before the publish
            assert made.publisher.publish("e2", "x") == "buffered"  # timed out after 0.1 s
            stall.recv(16)  # the stall is over: Redis ran the publish it had read
        assert made.ids() == ["e1", "e2"]  # it landed, though the publisher saw a failure
        assert made.publisher.publish("e3", "x") == "published"  # after replaying e2
        assert made.ids() == ["e1", "e2", "e3"]
        assert (made.publisher.replayed, made.publisher.duplicates) == (1, 1)
        assert made.seqs() == [1, 2, 3]
    finally:
        made.close()


def test_concurrent_publishers_through_an_outage_account_for_every_event(
    broker: RedisServer,
) -> None:
    """Eight threads publish while the broker dies and returns: every event is accounted for.

    published + buffered + refused == attempted, and once replayed the stream holds each
    published or buffered event exactly once, each thread's events in its own order.
    """
    made = Setup(broker, capacity=40)
    threads, per_thread = 8, 30
    outcomes: dict[str, str] = {}
    lock = threading.Lock()
    go = threading.Barrier(threads + 1)

    def publish_all(t: int) -> None:
        go.wait()
        for i in range(per_thread):
            event_id = f"t{t}-{i:02}"
            try:
                outcome = made.publisher.publish(event_id, "x")
            except bus.BufferFullError:
                outcome = "refused"
            with lock:
                outcomes[event_id] = outcome
            time.sleep(0.002)  # noqa: TID251 - spread the publishes over the outage

    workers = [threading.Thread(target=publish_all, args=(t,)) for t in range(threads)]
    try:
        for worker in workers:
            worker.start()
        go.wait()
        deadline = time.monotonic() + 10  # noqa: TID251
        while len(outcomes) < 40 and time.monotonic() < deadline:  # noqa: TID251
            time.sleep(0.001)  # noqa: TID251
        broker.kill()
        for worker in workers:
            worker.join(timeout=30)
        counts = {
            kind: list(outcomes.values()).count(kind)
            for kind in ("published", "buffered", "refused")
        }
        assert sum(counts.values()) == len(outcomes) == threads * per_thread
        assert counts["published"] >= 40
        assert counts["buffered"] == 40  # the outage outlasted the publishing: buffer full
        assert counts["refused"] == threads * per_thread - counts["published"] - 40
        assert made.breaker.metrics.failed_calls == 5

        broker.start()
        time.sleep(RECOVERY + 0.05)  # noqa: TID251
        assert made.publisher.flush() == 0
        ids = made.ids()
        accepted = {e for e, outcome in outcomes.items() if outcome != "refused"}
        assert len(ids) == len(set(ids)) == len(accepted)
        assert set(ids) == accepted
        assert made.seqs() == list(range(1, len(accepted) + 1))  # the accepted order
        for t in range(threads):
            mine = [e for e in ids if e.startswith(f"t{t}-")]
            assert mine == sorted(mine)
    finally:
        made.close()
