"""Benchmark calls through the full engined stack against the bare call, on loopback.

Usage:
    python benchmarks/bench_scenarios.py [--quick] [--repeats N] [--calls N] [--check] [--json FILE]

Two transports, each with and without engined, in the same run: a line-protocol TCP
"database" on one held connection, guarded by fallback > retry > circuit breaker > timeout >
bulkhead (the documented stack), and a grpc.aio unary call through engined.rpc's
interceptors (breaker, retry policy, default timeout). Latency p50/p95/p99 and calls/s.
See benchmarks/README.md ("Scenario benchmark") for what is timed and how.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_breakers import Verdict, markdown, parse_args

REPO_ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("engined") is None:
    sys.path.insert(0, str(REPO_ROOT))  # not installed: measure this checkout

import grpc  # noqa: E402 - after the checkout is importable
import grpc.aio  # noqa: E402

import engined  # noqa: E402
from engined.rpc import RpcPolicy, aio_interceptors  # noqa: E402

TRANSPORTS = ("inproc", "tcp", "grpc")  # inproc: an async function that returns at once
STACKS = {  # floor: the bare call inside asyncio.timeout(5.0), what any deadline costs
    "inproc": ("bare", "floor", "engined"),
    "tcp": ("bare", "floor", "engined"),
    "grpc": ("bare", "engined"),  # the bare grpc call already carries timeout=5.0
}
CONCURRENCY = 16  # calls in flight in the throughput block
METHOD = "/bench.Echo/Say"
P50_OVER_BARE = {"tcp": 1.50, "grpc": 1.25}  # targets: engined's p50 at most this times bare's
GRPC_OPTIONS = [("grpc.enable_retries", 0)]
POLICY = RpcPolicy(retry={"max_attempts": 3}, default_timeout=5.0)  # breaker: the defaults

Call = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Settings:
    calls: int  # calls per timed block
    repeats: int  # interleaved rounds: every transport and stack once per round
    warmup: int


# ---------------------------------------------------------------------------- the servers


class Servers:
    """The TCP line server and the grpc.aio echo server, on a background thread's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-servers")
        self.tcp: asyncio.Server | None = None
        self.grpc: grpc.aio.Server | None = None
        self.tcp_port = self.grpc_port = 0

    async def _start(self) -> None:
        async def line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while request := await reader.readline():
                    writer.write(b"OK " + request[4:])
                    await writer.drain()
            except ConnectionError:
                pass
            writer.close()

        self.tcp = await asyncio.start_server(line, "127.0.0.1", 0)
        self.tcp_port = self.tcp.sockets[0].getsockname()[1]

        async def say(request: bytes, context: Any) -> bytes:
            return request

        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
        )
        self.grpc = grpc.aio.server()
        self.grpc.add_generic_rpc_handlers((handler,))
        self.grpc_port = self.grpc.add_insecure_port("127.0.0.1:0")
        await self.grpc.start()

    async def _stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(None)
        if self.tcp is not None:
            self.tcp.close()
            await self.tcp.wait_closed()

    def __enter__(self) -> Servers:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


# ---------------------------------------------------------------------------- the clients


class LineClient:
    """One held connection to the line server; requests go one at a time (a lock)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls, port: int) -> LineClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, key: bytes) -> bytes:
        async with self.lock:
            self.writer.write(b"GET " + key + b"\n")
            await self.writer.drain()
            answer = await self.reader.readline()
        if not answer:
            raise ConnectionError("closed")
        return answer

    def close(self) -> None:
        self.writer.close()


def _stacked(
    get: Callable[[bytes], Awaitable[bytes]], name: str
) -> Callable[[bytes], Awaitable[bytes]]:
    """``get`` under fallback > retry > circuit breaker > timeout > bulkhead."""

    async def cached(exc: BaseException, key: bytes) -> bytes:
        return b"OK cached\n"

    budget = engined.RetryBudget()
    breaker = engined.CircuitBreaker(name, failure_threshold=5, recovery_timeout=30.0)

    @engined.fallback(cached, on=(ConnectionError, TimeoutError, engined.RejectedError))
    @engined.retry(on=(ConnectionError, TimeoutError), attempts=3, budget=budget)
    @breaker
    @engined.timeout(5.0)
    @engined.Bulkhead(name, max_concurrent=2 * CONCURRENCY)
    async def guarded(key: bytes) -> bytes:
        return await get(key)

    return guarded


async def _clients(servers: Servers, repeat: int) -> tuple[dict[str, Call], list[Any]]:
    """A call for each transport and stack, plus what to close afterwards."""
    tcp_bare, tcp_engined = (
        await LineClient.open(servers.tcp_port),
        await LineClient.open(servers.tcp_port),
    )
    guarded = _stacked(tcp_engined.get, f"bench-scenario-tcp-{repeat}")
    target = f"127.0.0.1:{servers.grpc_port}"
    bare_channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
    engined_channel = grpc.aio.insecure_channel(
        target,
        options=GRPC_OPTIONS,
        interceptors=aio_interceptors(POLICY, target=f"bench-scenario-{repeat}"),
    )
    bare_say = bare_channel.unary_unary(METHOD)
    engined_say = engined_channel.unary_unary(METHOD)
    payload = b"x" * 100

    async def at_once(key: bytes) -> bytes:
        return b"OK " + key

    inproc = _stacked(at_once, f"bench-scenario-inproc-{repeat}")

    async def floor(get: Callable[[bytes], Awaitable[bytes]]) -> bytes:
        async with asyncio.timeout(5.0):
            return await get(b"k")

    calls: dict[str, Call] = {
        "inproc_bare": lambda: at_once(b"k"),
        "inproc_floor": lambda: floor(at_once),
        "inproc_engined": lambda: inproc(b"k"),
        "tcp_bare": lambda: tcp_bare.get(b"k"),
        "tcp_floor": lambda: floor(tcp_bare.get),
        "tcp_engined": lambda: guarded(b"k"),
        "grpc_bare": lambda: bare_say(payload, timeout=5.0),
        "grpc_engined": lambda: engined_say(payload),
    }
    return calls, [tcp_bare, tcp_engined, bare_channel, engined_channel]


# ---------------------------------------------------------------------------- timing


@dataclass(slots=True)
class Samples:
    latencies_ns: dict[str, list[int]]  # every sequential call of every repeat
    sequential_rate: dict[str, list[float]]  # calls/s of each repeat's sequential block
    concurrent_rate: dict[str, list[float]]  # calls/s of each repeat's concurrent block


async def _sequential(call: Call, calls: int, out: list[int]) -> float:
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(calls):
        before = clock()
        await call()
        out.append(clock() - before)
    return calls / ((clock() - started) / 1e9)


async def _concurrent(call: Call, calls: int) -> float:
    share = max(1, calls // CONCURRENCY)

    async def worker() -> None:
        for _ in range(share):
            await call()

    started = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return share * CONCURRENCY / ((time.perf_counter_ns() - started) / 1e9)


async def _round(servers: Servers, settings: Settings, samples: Samples, repeat: int) -> None:
    calls, closing = await _clients(servers, repeat)
    try:
        keys = list(calls)
        order = keys[repeat % len(keys) :] + keys[: repeat % len(keys)]  # rotate who goes first
        for key in order:
            call = calls[key]
            for _ in range(settings.warmup):
                await call()
            samples.sequential_rate[key].append(
                await _sequential(call, settings.calls, samples.latencies_ns[key])
            )
            samples.concurrent_rate[key].append(await _concurrent(call, settings.calls))
    finally:
        for thing in closing:
            result = thing.close()
            if result is not None:
                await result


def run(settings: Settings) -> Samples:
    keys = [f"{transport}_{stack}" for transport in TRANSPORTS for stack in STACKS[transport]]
    samples = Samples({k: [] for k in keys}, {k: [] for k in keys}, {k: [] for k in keys})
    with Servers() as servers:
        for repeat in range(settings.repeats):
            print(f"repeat {repeat + 1}/{settings.repeats} ...", file=sys.stderr, flush=True)
            asyncio.run(_round(servers, settings, samples, repeat))
    return samples


# ---------------------------------------------------------------------------- reporting


def percentile(values: Sequence[int], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method, in µs."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank] / 1e3


def figures(samples: Samples) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, latencies in samples.latencies_ns.items():
        out[key] = {
            "p50_us": percentile(latencies, 0.50),
            "p95_us": percentile(latencies, 0.95),
            "p99_us": percentile(latencies, 0.99),
            "calls_per_s": statistics.median(samples.sequential_rate[key]),
            f"calls_per_s_{CONCURRENCY}_in_flight": statistics.median(samples.concurrent_rate[key]),
        }
    return out


def render(table: dict[str, dict[str, float]]) -> str:
    rows = []
    for transport in TRANSPORTS:
        bare = table[f"{transport}_bare"]
        for stack in STACKS[transport]:
            row = table[f"{transport}_{stack}"]
            versus = ""
            if stack != "bare":
                p50 = row["p50_us"] / bare["p50_us"]
                rate = row["calls_per_s"] / bare["calls_per_s"]
                added = row["p50_us"] - bare["p50_us"]
                versus = f"{p50:.2f}x / {rate:.2f}x / {added:+,.1f}"
            rows.append(
                [
                    transport,
                    stack,
                    f"{row['p50_us']:,.1f}",
                    f"{row['p95_us']:,.1f}",
                    f"{row['p99_us']:,.1f}",
                    f"{row['calls_per_s']:,.0f}",
                    f"{row[f'calls_per_s_{CONCURRENCY}_in_flight']:,.0f}",
                    versus,
                ]
            )
    return markdown(
        [
            "transport",
            "stack",
            "p50 µs",
            "p95 µs",
            "p99 µs",
            "calls/s (1 in flight)",
            f"calls/s ({CONCURRENCY} in flight)",
            "vs bare: p50 / calls/s / added µs at p50",
        ],
        rows,
    )


def verdicts(table: dict[str, dict[str, float]]) -> list[Verdict]:
    results = []
    for transport in P50_OVER_BARE:
        ratio = table[f"{transport}_engined"]["p50_us"] / table[f"{transport}_bare"]["p50_us"]
        limit = P50_OVER_BARE[transport]
        status = "PASS" if ratio <= limit else "FAIL"
        target = f"{transport}: engined's p50 latency ≤ {limit:.2f}x the bare call's"
        results.append(Verdict(target, status, f"{ratio:.2f}x"))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, doc=__doc__ or "", repeats=5, calls=5_000)
    calls = args.calls or (200 if args.quick else 5_000)
    settings = Settings(
        calls=calls, repeats=args.repeats or (1 if args.quick else 5), warmup=max(20, calls // 10)
    )
    print("# Scenario benchmark: the full engined stack vs the bare call, on loopback\n")
    print(
        f"Python {platform.python_version()} on {platform.platform()}, "
        f"{os.cpu_count()} CPUs; grpcio {grpc.__version__}"
    )
    print(
        f"Settings: {settings.calls:,} calls per block, {settings.repeats} interleaved repeats; "
        f"latency percentiles over every sequential call of every repeat; calls/s is the "
        f"median over repeats, one call in flight and {CONCURRENCY} in flight.\n",
        flush=True,
    )
    samples = run(settings)
    table = figures(samples)
    print(render(table))
    results = verdicts(table)
    print("\n## Targets\n")
    for verdict in results:
        print(f"- {verdict.status}  {verdict.target} ({verdict.detail})")
    if args.json is not None:
        report = {
            "python": sys.version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "grpcio": grpc.__version__,
            "settings": asdict(settings),
            "concurrency": CONCURRENCY,
            "figures": table,
            "sequential_calls_per_s": samples.sequential_rate,
            "concurrent_calls_per_s": samples.concurrent_rate,
            "targets": [asdict(verdict) for verdict in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = any(verdict.status == "FAIL" for verdict in results)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
