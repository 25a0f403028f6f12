"""Benchmark a Prometheus scrape of engined's metrics: 1,000 breakers and 1,000 components.

Usage:
    python benchmarks/bench_metrics.py [--quick] [--repeats N] [--breakers N]
        [--components N] [--check] [--json FILE]

A scrape is what a daemon does for ``GET /metrics``: ``engined.metrics.exposition`` of a
``metrics_registry`` (every breaker read through ``breaker.metrics``, one manager snapshot,
the named retries, the gRPC families) rendered to bytes. Timed per scrape, wall and CPU,
with the cyclic GC paused; prometheus_client's own ``generate_latest`` of the same registry
is timed alongside for comparison, and a fixed Python loop, since a shared VM's speed
drifts by 2x from minute to minute. Target: the median scrape under 50 ms. See
benchmarks/README.md ("Metrics scrape benchmark").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import generate_latest

from engined import (
    CircuitBreakerOpenError,
    CircuitBreakerRegistry,
    HealthCheckManager,
    HealthStatus,
    retry,
)
from engined.metrics import GrpcServerMetrics, exposition, metrics_registry
from engined.metrics._grpc_families import Outcome
from engined.testing import FakeClock

TARGET_MS = 50.0  # median scrape of 1,000 breakers and 1,000 components
TYPES = ("database", "cache", "service", "external_api", "message_queue")


def _refuse() -> None:
    raise ConnectionError


def build_breakers(count: int) -> CircuitBreakerRegistry:
    """Breakers in every state, with calls, refusals and transitions behind them.

    Nine in ten are CLOSED after 50 calls (a failure rate to report); the rest went
    through open -> half_open -> closed, are OPEN, FORCED_OPEN or DISABLED.
    """
    clock = FakeClock()
    registry = CircuitBreakerRegistry()
    for index in range(count):
        breaker = registry.get_or_create(
            f"rpc:backend-{index}.internal:443",
            clock=clock,
            failure_threshold=3,
            failure_rate_threshold=0.5,
            minimum_calls=10,
        )
        for call in range(50):
            if call % 10 == 0:
                with contextlib.suppress(ConnectionError):
                    breaker.call(_refuse)
            else:
                breaker.call(int)
        kind = index % 20
        if kind in (1, 2):  # opened, and (kind 1) recovered
            for _ in range(3):
                with contextlib.suppress(ConnectionError):
                    breaker.call(_refuse)
            with contextlib.suppress(CircuitBreakerOpenError):
                breaker.call(int)  # refused: not_permitted
        elif kind == 3:
            breaker.force_open()
        elif kind == 4:
            breaker.disable()
    clock.advance(31.0)
    for index, breaker in enumerate(registry):
        if index % 20 == 1:
            breaker.call(int)  # half_open -> closed
    return registry


async def build_manager(count: int) -> HealthCheckManager:
    """Components of several types, all with a heal, checked once (some unhealthy, healed)."""
    manager = HealthCheckManager(clock=FakeClock(), max_concurrent_heals=64)

    def verdict(index: int) -> Callable[[], Any]:
        async def check() -> object:
            if index % 10 == 0:
                return False
            return HealthStatus.DEGRADED if index % 7 == 0 else True

        return check

    async def heal(trigger: object) -> None:
        return None

    for index in range(count):
        manager.register(
            f"component-{index}", verdict(index), component_type=TYPES[index % 5], heal=heal
        )
    await manager.run_all()
    return manager


def build_grpc() -> GrpcServerMetrics:
    """Server-side gRPC families for the daemon's own dozen methods, a few codes each."""
    server = GrpcServerMetrics(clock=FakeClock())
    for index in range(12):
        method = server.method(f"/engined.v1.Engined/Method{index}", "unary")
        for code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
            Outcome(method, server.clock).finish(code)
    return server


def timed(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, Any]]:
    """Wall and CPU ms of each case, ``repeats`` times, interleaved: the cases of one round
    share the machine's weather. GC paused; a gc.collect() before each call."""
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    enabled = gc.isenabled()
    try:
        for _ in range(repeats):
            for name, fn in cases.items():
                gc.collect()
                gc.disable()
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                cpus[name].append(1000 * (time.process_time() - cpu))
                walls[name].append(1000 * (time.perf_counter() - wall))
                if enabled:
                    gc.enable()
    finally:
        if enabled:
            gc.enable()
    return {name: _summary(walls[name], cpus[name]) for name in cases}


def _summary(walls: list[float], cpus: list[float]) -> dict[str, Any]:
    ordered = sorted(walls)
    return {
        "wall_ms_median": statistics.median(walls),
        "wall_ms_min": ordered[0],
        "wall_ms_p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "cpu_ms_median": statistics.median(cpus),
        "wall_ms": walls,
    }


def reference_loop() -> int:
    """A fixed pure-Python loop: how fast this machine runs Python right now."""
    total = 0
    for number in range(1_000_000):
        total += number
    return total


def measure(breakers: int, components: int, repeats: int, baseline_repeats: int) -> dict[str, Any]:
    """Build the registry, check exposition equals generate_latest, then time both."""
    registry = metrics_registry(
        manager=asyncio.run(build_manager(components)),
        breakers=build_breakers(breakers),
        grpc_server=build_grpc(),
    )
    for name in ("db", "payments", "search"):
        retry(on=ConnectionError, name=f"bench-{name}")(int)()
    body = exposition(registry)
    if body != generate_latest(registry):
        raise SystemExit("exposition() differs from generate_latest(): the benchmark is void")
    collector = next(iter(registry._collector_to_names))  # the EnginedCollector
    figures = timed(
        {
            "scrape": lambda: exposition(registry),
            "collect_only": lambda: list(collector.collect()),
            "reference_loop": reference_loop,
        },
        repeats,
    )
    ratios = [
        scrape / loop
        for scrape, loop in zip(
            figures["scrape"]["wall_ms"], figures["reference_loop"]["wall_ms"], strict=True
        )
    ]
    return {
        "breakers": breakers,
        "components": components,
        "repeats": repeats,
        "samples": sum(1 for line in body.splitlines() if not line.startswith(b"#")),
        "bytes": len(body),
        **figures,
        "generate_latest": timed({"g": lambda: generate_latest(registry)}, baseline_repeats)["g"],
        "scrape_in_reference_loops": statistics.median(ratios),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 scrapes, 1 baseline (smoke)")
    parser.add_argument("--repeats", type=int, help="timed scrapes (default 50)")
    parser.add_argument("--breakers", type=int, default=1000, help="breakers (default 1000)")
    parser.add_argument("--components", type=int, default=1000, help="components (default 1000)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target fails")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 50)
    if repeats < 1 or args.breakers < 0 or args.components < 0:
        parser.error("--repeats must be positive, --breakers and --components not negative")
    result = measure(args.breakers, args.components, repeats, 1 if args.quick else 5)
    scrape, collect, baseline = result["scrape"], result["collect_only"], result["generate_latest"]
    passed = scrape["wall_ms_median"] < TARGET_MS
    result["target_ms"] = TARGET_MS
    result["status"] = "PASS" if passed else "FAIL"
    print("# Metrics scrape benchmark\n")
    print(f"Python {platform.python_version()} on {platform.platform()}; ", end="")
    print(f"{result['breakers']:,} breakers, {result['components']:,} components: ", end="")
    print(f"{result['samples']:,} samples, {result['bytes'] / 1e6:.1f} MB; {repeats} scrapes\n")
    print("| what | wall median | wall p90 | wall min | CPU median |")
    print("|---|---|---|---|---|")
    for label, row in (
        ("scrape: `exposition(registry)`", scrape),
        ("of which reading the snapshots (collect)", collect),
        ("`prometheus_client.generate_latest` (same bytes)", baseline),
        ("reference: 1M-iteration Python loop (machine speed)", result["reference_loop"]),
    ):
        print(
            f"| {label} | {row['wall_ms_median']:.1f} ms | {row['wall_ms_p90']:.1f} ms "
            f"| {row['wall_ms_min']:.1f} ms | {row['cpu_ms_median']:.1f} ms |"
        )
    ratio = result["scrape_in_reference_loops"]
    print(f"\nA scrape costs {ratio:.2f}x the reference loop (median of per-round ratios).")
    print(f"\n- {result['status']}  median scrape < {TARGET_MS:.0f} ms ", end="")
    print(f"({scrape['wall_ms_median']:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
