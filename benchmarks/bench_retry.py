"""Benchmark the overhead of engined's retry against tenacity and stamina on first-time successes.

Usage:
    python benchmarks/bench_retry.py [--quick] [--repeats N] [--calls N] [--check] [--json FILE]

See benchmarks/README.md ("Retry benchmark") for what is timed and how each library is set up.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _cases import Subject, aok, ok, time_case
from _libraries import _version
from bench_breakers import Verdict, fmt_ns, markdown, noise, parse_args

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.1  # engined's ns/call at most this times the fastest peer's, per case
PEERS = ("tenacity", "stamina")
ATTEMPTS = 3

Guard = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True, slots=True)
class Library:
    name: str
    guard: Guard  # fn -> fn retried on ConnectionError, up to ATTEMPTS attempts
    guard_budget: Guard | None = None  # the same with a shared RetryBudget; None: no equivalent


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    label: str
    is_async: bool
    budget: bool  # engined with a shared RetryBudget; its ratios compare with the plain case


CASES = (
    Case("sync_success", "sync success", False, False),
    Case("sync_success_budget", "sync success, shared RetryBudget", False, True),
    Case("async_success", "async success", True, False),
    Case("async_success_budget", "async success, shared RetryBudget", True, True),
)


@dataclass(frozen=True, slots=True)
class Settings:
    calls: int
    repeats: int
    warmup: int


Samples = dict[str, dict[str, list[float]]]  # case key -> library -> ns/call, one per repeat
Table = dict[str, dict[str, float | None]]  # case key -> library -> best (min) ns/call


def _engined() -> Library:
    from engined import RetryBudget, retry

    return Library(
        "engined",
        lambda fn: retry(on=ConnectionError, attempts=ATTEMPTS)(fn),
        lambda fn: retry(on=ConnectionError, attempts=ATTEMPTS, budget=RetryBudget())(fn),
    )


def _tenacity() -> Library:
    import tenacity

    def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
        return tenacity.retry(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=10.0),
            reraise=True,  # raise the last exception, not tenacity.RetryError, as the others do
        )(fn)

    return Library("tenacity", guard)


def _stamina() -> Library:
    import stamina  # with its defaults: retrying active, default instrumentation

    return Library("stamina", lambda fn: stamina.retry(on=ConnectionError, attempts=ATTEMPTS)(fn))


def load() -> tuple[list[Library], dict[str, str]]:
    """The bare baseline and every importable library; by name, why others were skipped."""
    found = [Library("bare", lambda fn: fn)]
    skipped: dict[str, str] = {}
    for name, loader in (("engined", _engined), ("tenacity", _tenacity), ("stamina", _stamina)):
        try:
            found.append(loader())
        except ImportError as exc:
            skipped[name] = f"not importable ({exc})"
    return found, skipped


def subject(lib: Library, case: Case) -> Subject | None:
    """``ok``/``aok`` guarded by a fresh decorator of ``lib``; None if ``lib`` lacks the case."""
    guard = lib.guard_budget if case.budget else lib.guard
    if guard is None:
        return None
    return Subject(lib.name, guard(aok if case.is_async else ok), None, trip=False)


def check_results(libs: Sequence[Library]) -> None:
    """Fail early unless every guarded function returns what the undecorated one does."""
    for case in CASES:
        for lib in libs:
            if (sub := subject(lib, case)) is not None:
                result = asyncio.run(sub.fn()) if case.is_async else sub.fn()
                if result != 1:
                    raise RuntimeError(f"{lib.name}, {case.label}: returned {result!r}, not 1")


def run_timings(libs: Sequence[Library], settings: Settings) -> Samples:
    """Time every case of every library, round-robin over libraries within each repeat."""
    samples: Samples = {case.key: {lib.name: [] for lib in libs} for case in CASES}
    for repeat in range(settings.repeats):
        print(f"repeat {repeat + 1}/{settings.repeats} ...", file=sys.stderr, flush=True)
        shift = repeat % len(libs)  # rotate who goes first, so no library always runs first
        for case in CASES:
            for lib in [*libs[shift:], *libs[:shift]]:
                if (sub := subject(lib, case)) is not None:
                    ns = time_case(sub, case.is_async, settings.calls, settings.warmup)
                    samples[case.key][lib.name].append(ns)
    return samples


def best_peer(times: Table, case: Case) -> tuple[str, float] | None:
    plain = times[case.key.removesuffix("_budget")]
    peers = [(n, v) for n, v in plain.items() if n in PEERS and v is not None]
    return min(peers, key=lambda item: item[1]) if peers else None


def ratio(value: float) -> str:
    return f"{value:.3f}x" if value < TARGET else f"{value:.2f}x"


def render(names: Sequence[str], times: Table) -> str:
    rows = []
    for case in CASES:
        best, cells = best_peer(times, case), [case.label]
        for name in names:
            value = times[case.key][name]
            if value is None:
                cells.append("—")
            elif name == "bare" or best is None:
                cells.append(fmt_ns(value))
            else:
                cells.append(f"{fmt_ns(value)} ({ratio(value / best[1])})")
        rows.append(cells)
    columns = ["case", *("bare (no retry)" if n == "bare" else n for n in names)]
    return "## Time per call: ns/call (ratio to the fastest peer)\n\n" + markdown(columns, rows)


def judge(times: Table, case: Case) -> Verdict:
    target = f"{case.label}: engined ≤ {TARGET}x the fastest peer"
    mine, best = times[case.key].get("engined"), best_peer(times, case)
    if mine is None:
        return Verdict(target, "FAIL", "engined was not measured")
    if best is None:
        return Verdict(target, "SKIP", "no peer was measured")
    detail = f"engined {fmt_ns(mine)} ns vs {best[0]} {fmt_ns(best[1])} ns: {ratio(mine / best[1])}"
    return Verdict(target, "PASS" if mine <= TARGET * best[1] else "FAIL", detail)


def stamina_instrumentation() -> dict[str, Any] | None:
    """stamina's global settings; its on-retry hooks run only before a backoff sleep."""
    try:
        import stamina
        from stamina.instrumentation import get_on_retry_hooks
    except ImportError:
        return None
    hooks = [hook.__module__.rsplit(".", 1)[-1].lstrip("_") for hook in get_on_retry_hooks()]
    return {"is_active": stamina.is_active(), "is_testing": stamina.is_testing(), "hooks": hooks}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, doc=__doc__ or "", repeats=7, calls=20_000)
    calls = args.calls or (300 if args.quick else 20_000)
    settings = Settings(calls, args.repeats or (1 if args.quick else 7), max(50, calls // 20))
    if importlib.util.find_spec("engined") is None:
        sys.path.insert(0, str(REPO_ROOT))  # not installed: measure this checkout
    libs, skipped = load()

    print("# Retry overhead benchmark: a call that succeeds first time\n")
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print("Libraries: " + ", ".join(f"{lib.name} {_version(lib.name)}" for lib in libs[1:]))
    for name, reason in skipped.items():
        print(f"Skipped {name}: {reason}")
    print(
        f"Settings: {settings.calls:,} calls per timed loop, repeats: {settings.repeats}, "
        "interleaved round-robin over libraries; figures are the best (min) repeat; "
        f"GC disabled in timed loops; every decorator: retry on ConnectionError, "
        f"{ATTEMPTS} attempts.\n",
        flush=True,
    )

    check_results(libs)
    samples = run_timings(libs, settings)
    times: Table = {
        key: {name: min(values) if values else None for name, values in by_lib.items()}
        for key, by_lib in samples.items()
    }
    print(render([lib.name for lib in libs], times))
    if (stamina_state := stamina_instrumentation()) is not None:
        print(f"\nstamina's defaults, read after the run: {stamina_state}")
    print(f"\n{noise(samples)}\n\n## Targets\n")
    results = [judge(times, case) for case in CASES]
    for verdict in results:
        print(f"- {verdict.status}  {verdict.target} ({verdict.detail})")

    if args.json is not None:
        report = {
            "python": sys.version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "settings": asdict(settings),
            "libraries": {lib.name: _version(lib.name) for lib in libs[1:]},
            "skipped": skipped,
            "stamina": stamina_state,
            "ns_per_call": times,
            "samples": samples,
            "targets": [asdict(verdict) for verdict in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = any(verdict.status == "FAIL" for verdict in results)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
