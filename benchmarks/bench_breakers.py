"""Benchmark engined's circuit breaker against pybreaker, circuitbreaker, aiobreaker and purgatory.

Usage:
    python benchmarks/bench_breakers.py [--quick] [--repeats N] [--calls N] [--check] [--json FILE]

See benchmarks/README.md for what each case measures and how each peer is configured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import _libraries
from _cases import CASES, Case, ok, retained_case, subject, time_case
from _libraries import NEVER, PEERS, Library
from _timing import run_sync, throughput

REPO_ROOT = Path(__file__).resolve().parent.parent
THREADS = 4
THREADS_KEY = f"threads_{THREADS}"
TIME_TARGET = 0.5  # engined's ns/call at most this times the fastest peer's, per case...
FAILURE_TARGET = 0.6  # ... except the failure path, whose target is this
THROUGHPUT_TARGET = 2.0  # engined's 4-thread calls/s at least this times the best peer's
MEMORY_TARGET = 1.0  # engined retains fewer bytes than this per call


@dataclass(frozen=True, slots=True)
class Settings:
    calls: int
    repeats: int
    warmup: int
    memory_calls: int
    memory_warmup: int


Samples = dict[str, dict[str, list[float]]]  # case key -> library -> one value per repeat
Table = dict[str, dict[str, float | None]]  # case key -> library -> aggregated value


def run_timings(libs: Sequence[Library], settings: Settings) -> Samples:
    """Time every case of every library, round-robin over libraries within each repeat."""
    keys = [case.key for case in CASES] + [THREADS_KEY]
    samples: Samples = {key: {lib.name: [] for lib in libs} for key in keys}
    for repeat in range(settings.repeats):
        print(f"repeat {repeat + 1}/{settings.repeats} ...", file=sys.stderr, flush=True)
        shift = repeat % len(libs)  # rotate who goes first, so no library always runs first
        order = [*libs[shift:], *libs[:shift]]
        for case in CASES:
            for lib in order:
                if (sub := subject(lib, case)) is not None:
                    ns = time_case(sub, case.is_async, settings.calls, settings.warmup)
                    samples[case.key][lib.name].append(ns)
        for lib in order:
            if lib.sync is not None:
                guarded = lib.sync(ok, NEVER)
                run_sync(guarded, settings.warmup, None)
                calls_per_s = throughput(guarded, settings.calls, THREADS)
                samples[THREADS_KEY][lib.name].append(calls_per_s)
    return samples


def aggregate(samples: Samples) -> Table:
    """Best (min) of the repeats for single-thread cases, median for the threaded one."""
    table: Table = {}
    for key, by_lib in samples.items():
        pick = statistics.median if key == THREADS_KEY else min
        table[key] = {name: (pick(values) if values else None) for name, values in by_lib.items()}
    return table


def _retained(lib: Library, case: Case, settings: Settings) -> float | None:
    sub = subject(lib, case)
    if sub is None:
        return None
    return retained_case(sub, case.is_async, settings.memory_calls, settings.memory_warmup)


def run_memory(libs: Sequence[Library], settings: Settings) -> Table:
    """Bytes retained per call, for every case of every library (measured once)."""
    return {case.key: {lib.name: _retained(lib, case, settings) for lib in libs} for case in CASES}


Best = tuple[str, float] | None


def best_peer(values: dict[str, float | None], *, highest: bool = False) -> Best:
    """The fastest peer (lowest ns, or highest calls/s); engined and the baseline are not peers."""
    peers = [(name, v) for name, v in values.items() if name in PEERS and v is not None]
    if not peers:
        return None
    return (max if highest else min)(peers, key=lambda item: item[1])


def fmt_ns(ns: float) -> str:
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(name: str, value: float | None, best: Best, fmt: Callable[[float], str]) -> str:
    if value is None:
        return "—"
    if name == "bare" or best is None:
        return fmt(value)
    return f"{fmt(value)} ({value / best[1]:.2f}x)"


def _calls_per_s(value: float) -> str:
    return f"{value:,.0f}"


def _versus_floor(values: dict[str, float | None]) -> str:
    mine, floor = values.get("engined"), values.get("floor")
    return "—" if mine is None or not floor else f"{mine / floor:.2f}x"


LABELS = {"bare": "bare (no breaker)", "floor": "floor (thinnest breaker)"}


def render(names: Sequence[str], times: Table, memory: Table) -> str:
    columns = ["case", *[LABELS.get(n, n) for n in names], "engined / floor"]
    time_rows = []
    for case in CASES:
        values, best = times[case.key], best_peer(times[case.key])
        cells = [_cell(n, values[n], best, fmt_ns) for n in names]
        time_rows.append([case.label, *cells, _versus_floor(values)])
    rates = times[THREADS_KEY]
    best = best_peer(rates, highest=True)
    rate_row = [f"{THREADS} threads, sync success"]
    rate_row += [_cell(n, rates[n], best, _calls_per_s) for n in names]
    floor_rate = rates.get("floor")
    mine_rate = rates.get("engined")
    rate_row.append(
        "—" if not floor_rate or mine_rate is None else f"{mine_rate / floor_rate:.2f}x"
    )
    lib_names = [n for n in names if n not in LABELS]
    memory_rows = [
        [
            case.label,
            *("—" if (v := memory[case.key][n]) is None else f"{v:.2f}" for n in lib_names),
        ]
        for case in CASES
    ]
    return "\n\n".join(
        [
            "## Time per call: ns/call (ratio to the fastest peer)\n\n"
            "The floor is the thinnest code doing a breaker's job (a closure counting "
            "failures in a row around try/except); engined / floor is what engined's "
            "bookkeeping costs on top of it.",
            markdown(columns, time_rows),
            f"## Throughput, {THREADS} threads on one breaker: calls/s (ratio to the best peer)",
            markdown(columns, [rate_row]),
            "## Memory retained per call: bytes (after gc.collect())",
            markdown(["case", *lib_names], memory_rows),
        ]
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    status: str  # PASS, FAIL, or SKIP when no peer was measured to compare with
    detail: str


def _versus(
    target: str,
    values: dict[str, float | None],
    *,
    limit: float,
    higher: bool,
    fmt: Callable[[float], str],
) -> Verdict:
    mine, best = values.get("engined"), best_peer(values, highest=higher)
    if mine is None:
        return Verdict(target, "FAIL", "engined was not measured")
    if best is None:
        return Verdict(target, "SKIP", "no peer was measured")
    ratio = mine / best[1]
    passed = ratio >= limit if higher else ratio <= limit
    detail = f"engined {fmt(mine)} vs {best[0]} {fmt(best[1])}: {ratio:.2f}x"
    return Verdict(target, "PASS" if passed else "FAIL", detail)


def verdicts(times: Table, memory: Table) -> list[Verdict]:
    results = [
        _versus(
            f"{case.label}: engined ≤ {limit}x the fastest peer",
            times[case.key],
            limit=limit,
            higher=False,
            fmt=lambda v: f"{fmt_ns(v)} ns",
        )
        for case in CASES
        for limit in [FAILURE_TARGET if case.outcome == "failure" else TIME_TARGET]
    ]
    results.append(
        _versus(
            f"{THREADS}-thread throughput: engined ≥ {THROUGHPUT_TARGET}x the best peer",
            times[THREADS_KEY],
            limit=THROUGHPUT_TARGET,
            higher=True,
            fmt=lambda v: f"{v:,.0f} calls/s",
        )
    )
    target = f"memory: engined retains < {MEMORY_TARGET} byte per call"
    retained = [(memory[case.key].get("engined"), case.label) for case in CASES]
    measured = [(value, label) for value, label in retained if value is not None]
    if len(measured) < len(retained):
        results.append(Verdict(target, "FAIL", "engined was not measured"))
    else:
        worst, label = max(measured)
        status = "PASS" if worst < MEMORY_TARGET else "FAIL"
        results.append(Verdict(target, status, f"worst: {label}, {worst:.2f} B/call"))
    return results


def noise(samples: Samples) -> str:
    """The largest spread between repeats, relative to the best repeat."""
    spreads = [
        ((max(v) - min(v)) / min(v), key, name)
        for key, by_lib in samples.items()
        for name, v in by_lib.items()
        if len(v) > 1
    ]
    if not spreads:
        return "Noise: one repeat, no spread to report."
    spread, key, name = max(spreads)
    typical = statistics.median(s for s, _, _ in spreads)
    return (
        f"Noise: spread between repeats (max-min)/min is {typical:.0%} typically, "
        f"{spread:.0%} at worst ({name}, {key})."
    )


def parse_args(
    argv: Sequence[str] | None, *, doc: str, repeats: int, calls: int
) -> argparse.Namespace:
    """The command line both benchmarks share; ``repeats`` and ``calls`` are the defaults."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny loops, one repeat (smoke test)")
    parser.add_argument(
        "--repeats", type=int, help=f"interleaved repeats (default {repeats}; quick: 1)"
    )
    parser.add_argument("--calls", type=int, help=f"calls per timed loop (default {calls})")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)
    for option in ("repeats", "calls"):
        if (value := getattr(args, option)) is not None and value < 1:
            parser.error(f"--{option} must be at least 1")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    calls = args.calls or (300 if args.quick else 200_000)
    memory_calls = 1_000 if args.quick else 20_000
    return Settings(
        calls=calls,
        repeats=args.repeats or (1 if args.quick else 5),
        warmup=max(50, calls // 20),
        memory_calls=memory_calls,
        memory_warmup=max(1_000, memory_calls // 10),  # past any fill-up of a breaker's window
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, doc=__doc__ or "", repeats=5, calls=200_000)
    settings = settings_from(args)
    if importlib.util.find_spec("engined") is None:
        sys.path.insert(0, str(REPO_ROOT))  # not installed: measure this checkout
    found, skipped = _libraries.load()
    libs = [_libraries.bare(), _libraries.floor(), *found]
    names = [lib.name for lib in libs]

    print("# Circuit breaker benchmark\n")
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print("Libraries: " + ", ".join(f"{lib.name} {lib.version}" for lib in found))
    for name, reason in skipped.items():
        print(f"Skipped {name}: {reason}")
    print(
        f"Settings: {settings.calls:,} calls per timed loop, repeats: {settings.repeats}, "
        "interleaved round-robin over libraries; single-thread figures are the best (min) "
        f"repeat, {THREADS}-thread throughput the median; GC disabled in timed loops; "
        f"memory over {settings.memory_calls:,} calls with tracemalloc.\n",
        flush=True,
    )

    samples = run_timings(libs, settings)
    times = aggregate(samples)
    memory = run_memory(found, settings)
    print(render(names, times, memory))
    print(f"\n{noise(samples)}\n\n## Targets\n")
    results = verdicts(times, memory)
    for verdict in results:
        print(f"- {verdict.status}  {verdict.target} ({verdict.detail})")

    if args.json is not None:
        report = {
            "python": sys.version,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "settings": asdict(settings),
            "libraries": {lib.name: lib.version for lib in found},
            "skipped": skipped,
            "ns_per_call": {case.key: times[case.key] for case in CASES},
            "threads_calls_per_s": times[THREADS_KEY],
            "retained_bytes_per_call": memory,
            "samples": samples,
            "targets": [asdict(verdict) for verdict in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = any(verdict.status == "FAIL" for verdict in results)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
