"""A Redis cache watched by engined: killed, seen UNHEALTHY, restarted, healed by reconnecting.

Starts its own ``redis-server`` on a free loopback port (nothing saved to disk) and
stops it at the end. ``RedisCheck`` keeps one connection, as a service's client does; in
``reconnect="heal"`` mode it reconnects only through ``RedisReconnectHeal``, so the
manager's heal backoff paces the reconnect attempts while Redis is down.

Run: python examples/redis_cache.py   (about 2 s; needs redis-server, else it says it skipped)
"""

import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import engined
from engined.checks import RedisCheck, RedisReconnectHeal


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:port and wait (at most 5 s) until it answers PING."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no"]
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


def stop(proc: subprocess.Popen[bytes], signum: signal.Signals = signal.SIGTERM) -> None:
    """Stop redis-server by its pid and reap it."""
    if proc.poll() is None:
        proc.send_signal(signum)
        proc.wait(timeout=5)


async def until(
    manager: engined.HealthCheckManager,
    what: Callable[[engined.ComponentHealth], bool],
    within: float = 5.0,
) -> engined.ComponentHealth:
    """The cache's health once ``what`` holds for it, watching every change (at most 5 s)."""
    async with asyncio.timeout(within):
        async for health in manager.watch():
            cache = health.components.get("cache")
            if cache is not None and what(cache):
                return cache
    raise AssertionError("the watch ended")


def describe(event: engined.HealthEvent) -> str | None:
    """One line for a transition or a finished heal."""
    if event.kind == "transition":
        return f"{event.component} {event.from_status} -> {event.to_status}"
    if event.kind == "heal_finished":
        outcome = "reconnected" if event.error is None else f"failed ({event.error})"
        return f"{event.component} reconnect {event.attempt}: {outcome}"
    return None


async def main(port: int) -> None:
    """Watch the cache through an outage and a restart."""
    redis = start_redis(port)
    check = RedisCheck(f"127.0.0.1:{port}", key="engined:health", reconnect="heal")
    manager = engined.HealthCheckManager()
    manager.register(
        "cache",
        check,
        component_type="cache",
        heal=RedisReconnectHeal(check),
        interval=0.1,
        heal_backoff_initial=0.2,  # reconnect attempts 0.2 s apart while Redis is down
        heal_backoff_multiplier=1.0,
        heal_max_attempts=50,
    )
    manager.add_listener(lambda e: (line := describe(e)) and print(f"  event: {line}"))

    healthy = engined.HealthStatus.HEALTHY
    try:
        async with manager:
            cache = await until(manager, lambda c: c.status is healthy)
            said = cache.last_result.message.split(" in ")[0] if cache.last_result else ""
            print(f"1. redis up: cache {cache.status} ({said})")

            stop(redis, signal.SIGKILL)
            print("2. redis killed (SIGKILL)")
            cache = await until(manager, lambda c: c.status is not healthy and c.heal_attempts >= 2)
            print(f"   cache {cache.status}; reconnect attempts fail while it is down")

            redis = start_redis(port)
            print("3. redis restarted on the same port")
            cache = await until(manager, lambda c: c.status is healthy)
            print(
                f"   healed by reconnect: cache {cache.status} "
                f"after {cache.heal_attempts} reconnect attempts"
            )
    finally:
        await check.close()
        stop(redis)


if __name__ == "__main__":
    if shutil.which("redis-server") is None:
        print("skipped: redis-server is not installed (Debian: apt-get install redis-server)")
    else:
        # Failed reconnects are logged as warnings; this example prints its own lines.
        logging.getLogger("engined").addHandler(logging.NullHandler())
        asyncio.run(main(free_port()))
