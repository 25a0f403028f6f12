"""An event-bus publisher that loses nothing when the broker dies: breaker, buffer, replay.

The bus is a Redis stream on a real ``redis-server`` this example starts (append-only
file, fsync on every write, so a crash loses nothing acknowledged) and kills. Publishing
goes through an engined ``CircuitBreaker`` (5 consecutive failures open it): while it is
open, publishes are refused at once and kept in a bounded FIFO buffer; a full buffer
raises ``BufferFullError`` (the caller decides, nothing is dropped silently); once the
broker is back the buffer is replayed in order.

Exactly once in the stream, though a publish can fail after Redis applied it (the reply
was lost): each event carries an id, and a small Lua script adds it only if its marker
key is new (``SET ... NX``), so replaying an event that did land is a no-op.

Run: python examples/event_bus.py   (about 1 s; needs redis-server and redis-py)
"""

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import engined

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # the example says it skipped, below
    redis = None  # type: ignore[assignment]

# Adds the event unless its marker exists; the marker expires after a day (ARGV[3]).
PUBLISH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'seq', ARGV[2], 'data', ARGV[4])
end
return false
"""


class BufferFullError(Exception):
    """The fallback buffer is full: the event was neither published nor kept."""

    def __init__(self, event_id: str, capacity: int) -> None:
        super().__init__(f"fallback buffer full (capacity {capacity}): event {event_id} refused")
        self.event_id = event_id
        self.capacity = capacity


@dataclass(frozen=True, slots=True)
class Event:
    """An accepted event; ``seq`` is its place in the publisher's order."""

    id: str
    data: str
    seq: int


class BufferedPublisher:
    """Publish events to a Redis stream through a breaker, buffering what cannot go now.

    One publish at a time (a lock), so the stream keeps the order in which events were
    accepted; while a backlog is buffered, new events queue behind it. Each publish first
    tries to replay the backlog (the first try after the breaker's recovery timeout is its
    probe), and :meth:`flush` does the same on demand.

    Args:
        client: A redis-py client making one attempt per command (no retries of its own).
        breaker: Guards the broker; it must record redis-py's ConnectionError and TimeoutError.
        capacity: How many events the buffer holds.
        stream: The stream's key.
    """

    def __init__(
        self,
        client: "redis.Redis",
        breaker: engined.CircuitBreaker,
        *,
        capacity: int,
        stream: str = "events",
    ) -> None:
        self._script = client.register_script(PUBLISH_ONCE)
        self._breaker = breaker
        self.capacity = capacity
        self.stream = stream
        self.buffer: deque[Event] = deque()
        self._lock = threading.Lock()
        self._seq = 0
        self.sent = 0  # events the broker confirmed (direct or replayed)
        self.replayed = 0  # of which from the buffer
        self.duplicates = 0  # replays of events that had landed already

    def publish(self, event_id: str, data: str) -> Literal["published", "buffered"]:
        """Publish now, or buffer the event; raise :class:`BufferFullError` if it cannot be kept."""
        with self._lock:
            self._drain()
            event = Event(event_id, data, self._seq + 1)
            if not self.buffer and self._send(event):
                self._seq += 1
                return "published"
            if len(self.buffer) >= self.capacity:
                raise BufferFullError(event_id, self.capacity)
            self._seq += 1
            self.buffer.append(event)
            return "buffered"

    def flush(self) -> int:
        """Replay what the buffer holds, in order, while the broker takes it; what is left."""
        with self._lock:
            self._drain()
            return len(self.buffer)

    def _drain(self) -> None:
        while self.buffer and self._send(self.buffer[0]):
            self.buffer.popleft()
            self.replayed += 1

    def _send(self, event: Event) -> bool:
        """One publish through the breaker: True once the broker has the event."""
        marker = f"{self.stream}:published:{event.id}"
        args: list[str | int] = [event.id, event.seq, 86400, event.data]
        try:
            added = self._breaker.call(self._script, keys=[self.stream, marker], args=args)
        except (engined.CircuitBreakerOpenError, redis.ConnectionError, redis.TimeoutError):
            return False
        self.sent += 1
        self.duplicates += added is None
        return True


def client_for(port: int, *, timeout: float = 0.5) -> "redis.Redis":
    """A redis-py client with one attempt per command: the breaker owns the retry policy."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def stream_ids(client: "redis.Redis", stream: str = "events") -> list[str]:
    """The event ids in the stream, in stream order (XRANGE - +)."""
    entries: Any = client.xrange(stream)
    return [fields[b"id"].decode() for _, fields in entries]


def start_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:port with an fsync-always AOF in ``directory``, answering."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--dir", directory, "--appendonly", "yes", "--appendfsync", "always"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.01)
    proc.kill()
    raise SystemExit("redis-server did not start within 5 s")


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def main(port: int, directory: str) -> None:
    """Publish through an outage: open breaker, full buffer, replay, exactly once."""
    broker = start_redis(port, directory)
    breaker = engined.CircuitBreaker(
        "event-bus",
        failure_threshold=5,
        recovery_timeout=0.3,
        record_exceptions=(redis.ConnectionError, redis.TimeoutError),
    )
    breaker.add_listener(lambda e: print(f"  breaker: {e.from_state} -> {e.to_state}"))
    client = client_for(port)
    publisher = BufferedPublisher(client, breaker, capacity=8)
    try:
        print("1. broker up")
        for n in range(1, 4):
            print(f"  e{n:02}: {publisher.publish(f'e{n:02}', f'order {n}')}")
        broker.send_signal(signal.SIGKILL)
        broker.wait(timeout=5)
        print("2. broker killed (SIGKILL); publishing goes on")
        for n in range(4, 13):
            was_open = breaker.state is engined.CircuitState.OPEN
            started = time.perf_counter()
            try:
                outcome = publisher.publish(f"e{n:02}", f"order {n}")
            except BufferFullError as exc:
                print(f"  e{n:02}: {exc}")
                continue
            took = (time.perf_counter() - started) * 1000
            how = f"rejected by the open breaker in {took:.2f} ms" if was_open else "publish failed"
            print(f"  e{n:02}: {outcome} ({how}), buffer {len(publisher.buffer)}/8")
        print(f"  the broker saw {breaker.metrics.failed_calls} failed publishes")
        broker = start_redis(port, directory)
        print("3. broker restarted; after the recovery timeout the next publish probes it")
        time.sleep(0.35)
        print(f"  e13: {publisher.publish('e13', 'order 13')}")
        print(f"  replayed {publisher.replayed} buffered events, buffer {len(publisher.buffer)}/8")
        ids = stream_ids(client)
        print(f"4. stream: {' '.join(ids)}")
        wanted = [f"e{n:02}" for n in range(1, 14) if n != 12]
        print(f"  every accepted event exactly once, in order: {ids == wanted}")
    finally:
        client.close()
        if broker.poll() is None:
            broker.terminate()
            broker.wait(timeout=5)


if __name__ == "__main__":
    if shutil.which("redis-server") is None or redis is None:
        print("skipped: needs redis-server (apt-get install redis-server) and redis-py")
        sys.exit(0)
    with tempfile.TemporaryDirectory(prefix="engined-event-bus-") as tmp:
        main(free_port(), tmp)
