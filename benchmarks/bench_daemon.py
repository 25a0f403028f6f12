"""Benchmark health Check RPCs against the engined daemon and a bare grpc.aio health server.

Usage:
    python benchmarks/bench_daemon.py [--quick] [--repeats N] [--calls N] [--check] [--json FILE]

See benchmarks/README.md ("Daemon benchmark") for what is timed and how.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_breakers import Verdict, markdown, parse_args

REPO_ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("engined") is None:
    sys.path.insert(0, str(REPO_ROOT))  # not installed: measure this checkout

import grpc  # noqa: E402 - after the checkout is importable
import grpc.aio  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

SERVERS = ("daemon", "bare", "floor")
KINDS = ("overall", "component")  # Check of "" (what probes ask) and of one component
THROUGHPUT_SHARE = 0.90  # the daemon's Check/s at least this share of bare's...
P99_OVER_BARE = 1.20  # ... and its p99 latency at most this times bare's
TIMEOUT = 5.0
DAEMON = (sys.executable, "-m", "engined", "serve")
PERIOD = 2.0  # every component changes status every PERIOD seconds, phases spread out
SETTLE = 1.0  # s between resuming a server and timing it


@dataclass(frozen=True, slots=True)
class Settings:
    calls: int  # Check RPCs per timed block
    repeats: int  # interleaved rounds: every server and kind once per round
    concurrency: int  # calls in flight from the measuring client
    components: int  # components (services) changing status on each server
    watches: int  # Watch streams held open on the daemon and on bare


# ---------------------------------------------------------------------------- the servers

FLIPS = """\
import time

PERIOD = {period}


def _make(i, n):
    offset = PERIOD * 2 * i / n

    async def check():
        return int((time.time() + offset) // PERIOD) % 2 == 0

    return check


for _i in range({n}):
    globals()[f"c{{_i}}"] = _make(_i, {n})
"""

BARE = """\
import asyncio, sys, time
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

N, PERIOD = {n}, {period}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def main():
    servicer = health.aio.HealthServicer()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    while True:  # the same churn as the daemon's: each service flips every PERIOD s
        now = time.time()
        for i in range(N):
            up = int((now + PERIOD * 2 * i / N) // PERIOD) % 2 == 0
            await servicer.set(f"c{{i}}", SERVING if up else NOT_SERVING)
        await asyncio.sleep(PERIOD / 4)

asyncio.run(main())
"""

FLOOR = """\
import asyncio
import grpc
from grpc_health.v1 import health_pb2

REPLY = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
WIRE = REPLY.SerializeToString()


async def check(request, context):
    return WIRE


async def main():
    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {{"Check": grpc.unary_unary_rpc_method_handler(check, response_serializer=None)}},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""

WATCHER = """\
import asyncio, signal, sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TARGET, N, W = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


async def drain(stub, service, first, counts):
    call = stub.Watch(health_pb2.HealthCheckRequest(service=service))
    await call.read()
    first.release()
    while await call.read() is not grpc.aio.EOF:
        counts[0] += 1


async def main():
    counts = [0]
    first = asyncio.Semaphore(0)
    async with grpc.aio.insecure_channel(TARGET) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        tasks = [asyncio.create_task(drain(stub, f"c{{i % N}}", first, counts)) for i in range(W)]
        for _ in range(W):
            await first.acquire()
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print(counts[0], flush=True)
        for task in tasks:
            task.cancel()

asyncio.run(main())
""".replace("{{", "{").replace("}}", "}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _metrics_port() -> list[str]:
    return ["--metrics-port", str(_free_port()), "--log-format", "json"]


def _counts(settings: Settings) -> list[str]:
    return [str(settings.components), str(settings.watches)]


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[str]
    target: str = ""

    def cpu_seconds(self) -> float:
        """CPU time of the process so far, every thread, to the nanosecond (Linux /proc).

        Each thread's ``schedstat`` counts nanoseconds on a CPU; ``stat``'s clock ticks
        (10 ms) are too coarse for a second of a mostly idle server. 0.0 elsewhere.
        """
        total = 0
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                with contextlib.suppress(OSError):  # a thread that just ended
                    total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            return 0.0
        return total / 1e9

    def pause(self, paused: bool) -> None:
        """SIGSTOP or SIGCONT by pid: a paused process takes no CPU from the one timed."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> str:
        """SIGTERM by pid (SIGKILL after 10 s); what it printed afterwards."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process would hold the TERM
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        stdout = self.proc.stdout
        if stdout is None or stdout.closed:
            return ""
        out = stdout.read()
        stdout.close()
        return out


def _script(name: str, code: str) -> Process:
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"the {name} server did not start")
    return Process(name, proc, f"127.0.0.1:{line}")


def _daemon(settings: Settings, workdir: Path) -> Process:
    n = settings.components
    (workdir / "bench_flips.py").write_text(FLIPS.format(n=n, period=PERIOD))
    checks = "".join(
        f'[[checks]]\nname = "c{i}"\ntype = "python"\ntarget = "bench_flips:c{i}"\n'
        "interval = 1.0\n\n"
        for i in range(n)
    )
    config = workdir / "engined.toml"
    config.write_text(checks)
    port, log = _free_port(), workdir / "daemon.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*DAEMON, "--config", str(config), "--port", str(port), *_metrics_port()],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            env=_env(),
            cwd=REPO_ROOT,
        )
    deadline = time.monotonic() + 60
    while '"event": "serving"' not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            raise RuntimeError(f"the daemon did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return Process("daemon", proc, f"127.0.0.1:{port}")


def _watcher(server: Process, settings: Settings) -> Process:
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHER, server.target, *_counts(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"the watches on {server.name} did not open")
    return Process(f"watches on {server.name}", proc)


@contextmanager
def paused(processes: Sequence[Process]) -> Iterator[None]:
    """Pause ``processes`` for the block (the two CPUs are the timed server's and client's)."""
    try:
        for process in processes:
            process.pause(True)
        yield
    finally:
        for process in processes:
            process.pause(False)


@contextmanager
def servers(settings: Settings) -> Iterator[tuple[dict[str, Process], list[Process]]]:
    """The three servers, and the Watch streams held open on the daemon and on bare."""
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp, ExitStack() as stack:
        running: dict[str, Process] = {}
        for name, start in (
            ("daemon", lambda: _daemon(settings, Path(tmp))),
            ("bare", lambda: _script("bare", BARE.format(n=settings.components, period=PERIOD))),
            ("floor", lambda: _script("floor", FLOOR.format())),
        ):
            running[name] = start()
            stack.callback(running[name].stop)  # each stopped by pid, whatever else fails
        watchers = []
        for name in ("daemon", "bare"):
            watchers.append(_watcher(running[name], settings))
            stack.callback(watchers[-1].stop)
        time.sleep(PERIOD)  # every component has been checked and is changing
        yield running, watchers


# ---------------------------------------------------------------------------- measuring


@dataclass
class Block:
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_1000: float


async def _block(target: str, service: str, settings: Settings, server: Process) -> Block:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        per_worker = max(1, settings.calls // settings.concurrency)
        latencies: list[int] = []

        async def worker(n: int) -> None:
            for _ in range(n):
                start = time.perf_counter_ns()
                await stub.Check(request, timeout=TIMEOUT)
                latencies.append(time.perf_counter_ns() - start)

        await asyncio.gather(*(worker(10) for _ in range(settings.concurrency)))  # warm-up
        latencies.clear()
        cpu = server.cpu_seconds()
        start = time.perf_counter_ns()
        await asyncio.gather(*(worker(per_worker) for _ in range(settings.concurrency)))
        elapsed = (time.perf_counter_ns() - start) / 1e9
        cpu = server.cpu_seconds() - cpu
    latencies.sort()
    n = len(latencies)
    return Block(
        calls_per_s=n / elapsed,
        p50_ms=latencies[n // 2] / 1e6,
        p99_ms=latencies[min(n - 1, int(n * 0.99))] / 1e6,
        server_cpu_ms_per_1000=cpu * 1e6 / n,
    )


Samples = dict[str, list[Block]]  # "<server>_<kind>" -> one Block per round


def _others(running: dict[str, Process], watchers: list[Process], name: str) -> list[Process]:
    """Every process but the server ``name`` and the watches held on it."""
    others = [process for server, process in running.items() if server != name]
    return others + [w for w in watchers if w.name != f"watches on {name}"]


def idle_cpu(
    running: dict[str, Process], watchers: list[Process], seconds: float
) -> dict[str, float]:
    """Each server's CPU (% of one core) over ``seconds`` with no Check sent, alone.

    What its churn and its Watch streams cost: the daemon runs a check per component and
    second and logs each transition; bare only sets statuses.
    """
    idle = {}
    for name, server in running.items():
        with paused(_others(running, watchers, name)):
            time.sleep(SETTLE)
            before = server.cpu_seconds()
            time.sleep(seconds)
            idle[name] = (server.cpu_seconds() - before) / seconds * 100
    return idle


def run(settings: Settings) -> tuple[Samples, dict[str, int], dict[str, float]]:
    """Every server and kind once per round, the order rotated each round."""
    samples: Samples = {f"{s}_{k}": [] for s in SERVERS for k in KINDS}
    with servers(settings) as (running, watchers):
        idle = idle_cpu(running, watchers, 1.0 if settings.repeats == 1 else 5.0)
        for repeat in range(settings.repeats):
            print(f"round {repeat + 1}/{settings.repeats} ...", file=sys.stderr, flush=True)
            order = SERVERS[repeat % 3 :] + SERVERS[: repeat % 3]
            for kind in KINDS:
                for name in order:
                    service = "" if kind == "overall" or name == "floor" else "c0"
                    with paused(_others(running, watchers, name)):
                        time.sleep(SETTLE)  # a resumed server catches up on its churn first
                        block = asyncio.run(
                            _block(running[name].target, service, settings, running[name])
                        )
                    samples[f"{name}_{kind}"].append(block)
        messages = {w.name: int(w.stop().strip() or 0) for w in watchers}
    return samples, messages, idle


def paired(samples: Samples, mine: str, other: str, field: str) -> float:
    """Median of per-round ratios: blocks of one round share the machine's weather."""
    pairs = zip(samples[mine], samples[other], strict=True)
    return statistics.median(getattr(a, field) / getattr(b, field) for a, b in pairs)


def median(samples: Samples, key: str, field: str) -> float:
    return statistics.median(getattr(block, field) for block in samples[key])


def verdicts(samples: Samples) -> list[Verdict]:
    results = []
    for kind in KINDS:
        share = paired(samples, f"daemon_{kind}", f"bare_{kind}", "calls_per_s")
        p99 = paired(samples, f"daemon_{kind}", f"bare_{kind}", "p99_ms")
        floor_share = paired(samples, f"daemon_{kind}", f"floor_{kind}", "calls_per_s")
        bare_floor = paired(samples, f"bare_{kind}", f"floor_{kind}", "calls_per_s")
        cpu = paired(samples, f"daemon_{kind}", f"bare_{kind}", "server_cpu_ms_per_1000")
        floor = (
            f"; vs the floor: daemon {floor_share:.2f}x, bare {bare_floor:.2f}x"
            f"; server CPU per call {cpu:.2f}x bare's"
        )
        results.append(
            Verdict(
                f"{kind}: daemon Check/s ≥ {THROUGHPUT_SHARE:.0%} of bare's",
                "PASS" if share >= THROUGHPUT_SHARE else "FAIL",
                f"{share:.1%}{floor}",
            )
        )
        floor_p99 = paired(samples, f"daemon_{kind}", f"floor_{kind}", "p99_ms")
        results.append(
            Verdict(
                f"{kind}: daemon p99 ≤ {P99_OVER_BARE:.1f}x bare's",
                "PASS" if p99 <= P99_OVER_BARE else "FAIL",
                f"{p99:.2f}x; daemon / floor {floor_p99:.2f}x",
            )
        )
    return results


def render(samples: Samples) -> str:
    rows = []
    for kind in KINDS:
        for name in SERVERS:
            key = f"{name}_{kind}"
            versus = (
                f"{paired(samples, key, f'bare_{kind}', 'calls_per_s'):.2f}x"
                if name != "bare"
                else ""
            )
            rows.append(
                [
                    f"{kind}: {name}",
                    f"{median(samples, key, 'calls_per_s'):,.0f}",
                    versus,
                    f"{median(samples, key, 'p50_ms'):.2f}",
                    f"{median(samples, key, 'p99_ms'):.2f}",
                    f"{median(samples, key, 'server_cpu_ms_per_1000'):.0f}",
                ]
            )
    return markdown(
        [
            "case",
            "Check/s",
            "vs bare",
            "p50 ms",
            "p99 ms",
            "server CPU ms / 1000 calls",
        ],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, doc=__doc__ or "", repeats=5, calls=5_000)
    quick = args.quick
    settings = Settings(
        calls=args.calls or (200 if quick else 5_000),
        repeats=args.repeats or (1 if quick else 5),
        concurrency=8,
        components=10 if quick else 100,
        watches=20 if quick else 200,
    )
    print("# Daemon benchmark: health Check RPCs against engined serve and a bare server\n")
    print(
        f"Python {platform.python_version()} on {platform.platform()}, "
        f"{os.cpu_count()} CPUs; grpcio {grpc.__version__}"
    )
    print(
        f"Settings: {settings.calls:,} Check RPCs per block from {settings.concurrency} "
        f"concurrent callers (grpc.aio, one channel), {settings.repeats} interleaved rounds; "
        f"{settings.components} components changing status every {PERIOD:g} s and "
        f"{settings.watches} open Watch streams (another process) on the daemon and on bare; "
        "the servers not timed and their watchers are paused (SIGSTOP) during a block; "
        "figures are medians over rounds, ratios medians of per-round ratios.\n",
        flush=True,
    )
    samples, messages, idle = run(settings)
    print(render(samples))
    print(
        "\nServer CPU with no Check sent (churn and watches only, the others paused): "
        + ", ".join(f"{name} {pct:.1f}%" for name, pct in idle.items())
    )
    print(
        "\nWatch messages received while measuring: "
        + ", ".join(f"{name}: {count:,}" for name, count in messages.items())
    )
    results = verdicts(samples)
    print("\n## Targets\n")
    for verdict in results:
        print(f"- {verdict.status}  {verdict.target} ({verdict.detail})")
    if args.json is not None:
        report: dict[str, Any] = {
            "python": sys.version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "grpcio": grpc.__version__,
            "settings": asdict(settings),
            "calls_per_s": {k: median(samples, k, "calls_per_s") for k in samples},
            "p50_ms": {k: median(samples, k, "p50_ms") for k in samples},
            "p99_ms": {k: median(samples, k, "p99_ms") for k in samples},
            "idle_cpu_pct": idle,
            "server_cpu_ms_per_1000": {
                k: median(samples, k, "server_cpu_ms_per_1000") for k in samples
            },
            "watch_messages": messages,
            "samples": {k: [asdict(b) for b in blocks] for k, blocks in samples.items()},
            "targets": [asdict(verdict) for verdict in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = any(verdict.status == "FAIL" for verdict in results)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
