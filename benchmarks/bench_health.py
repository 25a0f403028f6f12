"""Benchmark the health manager: the scheduler's tick lag, and watchers' cost on a round.

Usage:
    python benchmarks/bench_health.py [--quick] [--checks N] [--seconds S] [--check] [--json FILE]

Scheduler: registers N trivial async checks at a 1 s interval, runs the manager for S
seconds of real time, and reports the tick lag (how late each check started after it was
due) and the share of one core the process used. Targets: p99 lag < 10 ms, CPU < 15 % of
one core. Checks due within 2 ms of each other start on the same wake, so a lag can be
slightly negative (up to 2 ms early).

Watchers: 1,000 components (quick: 200), ``run_all`` rounds timed with 0 and with 10
``watch()`` readers in the same run, in interleaved blocks of 2 rounds (25 blocks each,
each round after a ``gc.collect()``).
Every round flips every component between HEALTHY and DEGRADED, so every round
publishes: the worst case for watchers. Target: the median round with 10 watchers
within 1.2x of the one without.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from engined import HealthCheckConfig, HealthCheckManager, HealthStatus
from engined.core._health_component import Component as _Component

LAG_TARGET = 0.010  # seconds, p99
CPU_TARGET = 0.15  # share of one core
WATCH_TARGET = 1.2  # round time with 10 watchers / without


class _LagRecorder(HealthCheckManager):
    """The real manager, noting how late each scheduled check starts (private hook)."""

    def __init__(self) -> None:
        super().__init__()
        self.lags: list[float] = []

    def _launch(self, component: _Component) -> Any:
        if component.due_at:
            self.lags.append(time.monotonic() - component.due_at)
        return super()._launch(component)


async def _ok() -> bool:
    return True


async def measure(checks: int, seconds: float, interval: float) -> dict[str, float]:
    """Run ``checks`` checks for ``seconds``; return lag percentiles and CPU share."""
    manager = _LagRecorder()
    config = HealthCheckConfig(interval=interval)
    for i in range(checks):
        manager.register(f"check-{i}", _ok, config=config)
    await manager.start()
    await asyncio.sleep(interval)  # let the first-run jitter play out before measuring
    manager.lags.clear()
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    await manager.stop()
    lags = sorted(manager.lags)
    if not lags:
        raise RuntimeError("no check ran: the scheduler did not start")
    return {
        "checks": checks,
        "seconds": wall,
        "runs": len(lags),
        "expected_runs": checks * seconds / interval,
        "lag_p50_ms": 1000 * statistics.median(lags),
        "lag_p99_ms": 1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))],
        "lag_max_ms": 1000 * lags[-1],
        "cpu_share": cpu / wall,
    }


async def measure_watchers(
    components: int, rounds: int, repeats: int, watchers: int = 10
) -> dict[str, Any]:
    """Median ``run_all`` round time with 0 and with ``watchers`` readers, on one manager."""
    manager = HealthCheckManager()
    degraded = False

    async def flip() -> HealthStatus:
        return HealthStatus.DEGRADED if degraded else HealthStatus.HEALTHY

    for i in range(components):
        manager.register(f"component-{i}", flip)
    await manager.run_all()  # UNKNOWN -> HEALTHY once, before timing
    seen = [0] * watchers

    async def read(slot: int) -> None:
        async for _ in manager.watch():
            seen[slot] += 1

    times: dict[str, list[float]] = {"0": [], str(watchers): []}
    for _ in range(repeats):  # interleaved blocks, so drift hits both counts alike
        for count in (0, watchers):
            readers = [asyncio.create_task(read(slot)) for slot in range(count)]
            await asyncio.sleep(0)
            for _ in range(rounds):
                degraded = not degraded
                gc.collect()  # a collection falling in one round only is noise, not cost
                began = time.perf_counter()
                await manager.run_all()
                times[str(count)].append(time.perf_counter() - began)
                await asyncio.sleep(0)  # let the readers take the value
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    medians = {count: 1000 * statistics.median(samples) for count, samples in times.items()}
    return {
        "components": components,
        "rounds": rounds * repeats,
        "round_ms": medians,
        "ratio": medians[str(watchers)] / medians["0"],
        "values_per_watcher": min(seen),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 checks for 1 s (smoke test)")
    parser.add_argument("--checks", type=int, help="registered checks (default 1000)")
    parser.add_argument("--seconds", type=float, help="measured seconds (default 10)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)
    checks = args.checks or (100 if args.quick else 1000)
    seconds = args.seconds or (1.0 if args.quick else 10.0)
    if checks < 1 or seconds <= 0:
        parser.error("--checks and --seconds must be positive")
    result: dict[str, Any] = dict(asyncio.run(measure(checks, seconds, interval=1.0)))
    quick = args.quick
    watch = asyncio.run(
        measure_watchers(
            200 if quick else 1000, rounds=3 if quick else 2, repeats=1 if quick else 25
        )
    )
    result["watch"] = watch
    lag_ok = result["lag_p99_ms"] < LAG_TARGET * 1000
    cpu_ok = result["cpu_share"] < CPU_TARGET
    watch_ok = watch["ratio"] <= WATCH_TARGET
    print("# Health scheduler benchmark\n")
    print(f"Python {platform.python_version()} on {platform.platform()}, {checks} async checks")
    print(f"at a 1 s interval for {result['seconds']:.1f} s of real time\n")
    print("| check runs | expected | lag p50 | lag p99 | lag max | CPU (one core) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {result['runs']:,} | {result['expected_runs']:,.0f} | {result['lag_p50_ms']:.2f} ms "
        f"| {result['lag_p99_ms']:.2f} ms | {result['lag_max_ms']:.2f} ms "
        f"| {result['cpu_share']:.1%} |\n"
    )
    print(f"- {'PASS' if lag_ok else 'FAIL'}  p99 tick lag < {LAG_TARGET * 1000:.0f} ms")
    print(f"- {'PASS' if cpu_ok else 'FAIL'}  CPU < {CPU_TARGET:.0%} of one core\n")
    rounds = watch["round_ms"]
    print(f"{watch['components']:,} components, median of {watch['rounds']} run_all rounds,")
    print("every component changing each round:\n")
    print("| watchers | round | ratio |")
    print("|---|---|---|")
    print(f"| 0 | {rounds['0']:.1f} ms | 1.00 |")
    print(f"| 10 | {rounds['10']:.1f} ms | {watch['ratio']:.2f} |\n")
    print(f"- {'PASS' if watch_ok else 'FAIL'}  10 watchers within {WATCH_TARGET}x of none")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if args.check and not (lag_ok and cpu_ok and watch_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
