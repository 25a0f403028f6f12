"""Benchmark the CPU engined's gRPC client stack adds to a unary call, sync and grpc.aio.

Usage:
    python benchmarks/bench_rpc.py [--quick] [--repeats N] [--calls N] [--check] [--json FILE]

See benchmarks/README.md ("gRPC client benchmark") for what is timed and how.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _timing import gc_paused
from bench_breakers import Verdict, markdown, parse_args

REPO_ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("engined") is None:
    sys.path.insert(0, str(REPO_ROOT))  # not installed: measure this checkout

import grpc  # noqa: E402 - after the checkout is importable
import grpc.aio  # noqa: E402

from engined import SYSTEM_CLOCK, default_registry  # noqa: E402
from engined.rpc import RpcPolicy, aio_interceptors, intercept_channel  # noqa: E402

METHOD = "/bench.Echo/Say"
TIMEOUT = 5.0  # every case's calls carry the same deadline, so grpc's own work is the same
OVER_BARE = 1.10  # engined's CPU per call at most this times bare grpc's...
OVER_NOOP = 1.05  # ... and at most this times a pass-through interceptor's
OPEN_SPEEDUP = 100.0  # an open breaker fails a call at least this much faster than a dead port
STACKS = ("aio", "sync")
KINDS = ("bare", "noop", "engined")
FAILING = ("dead_fresh", "dead_same", "refuse", "open")
POLICY = RpcPolicy(retry={"max_attempts": 3}, default_timeout=TIMEOUT)  # breaker: the defaults


@dataclass(frozen=True, slots=True)
class Settings:
    calls: int  # calls per timed block
    repeats: int  # interleaved blocks per case
    warmup: int
    refusals: int  # calls per block of the open-breaker and dead-port cases


class Server:
    """A grpc.aio echo server on 127.0.0.1 in a background thread's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-server")
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def _start(self) -> None:
        async def say(request: bytes, context: Any) -> bytes:
            return request

        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
        )
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()

    def __enter__(self) -> Server:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.server is not None
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Noop(
    grpc.aio.UnaryUnaryClientInterceptor,
):
    """A pass-through grpc.aio interceptor: the floor any interceptor pays."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(details, request)


class SyncNoop(grpc.UnaryUnaryClientInterceptor):
    """A pass-through sync interceptor."""

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(details, request)


class Refuse(grpc.aio.UnaryUnaryClientInterceptor):
    """The floor of a refusal: an interceptor that fails the call at once, sending nothing.

    No breaker, no policy, no permit: only what grpc.aio itself costs to run an
    interceptor and hand its error back to the caller.
    """

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "refused"
        )


class SyncRefuse(grpc.UnaryUnaryClientInterceptor):
    """The sync floor of a refusal: raise a ready-made gRPC error, send nothing."""

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        raise _SYNC_REFUSAL


class _SyncRefusal(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "refused"


_SYNC_REFUSAL = _SyncRefusal()

_OPTIONS = [("grpc.enable_retries", 0)]


def _aio_channel(target: str, kind: str) -> grpc.aio.Channel:
    interceptors: list[Any] = {
        "bare": [],
        "noop": [Noop()],
        "engined": aio_interceptors(POLICY, target=f"bench-aio-{target}"),
    }[kind]
    return grpc.aio.insecure_channel(target, options=_OPTIONS, interceptors=interceptors or None)


def _sync_channel(target: str, kind: str) -> grpc.Channel:
    channel = grpc.insecure_channel(target, options=_OPTIONS)
    if kind == "noop":
        return grpc.intercept_channel(channel, SyncNoop())
    if kind == "engined":
        return intercept_channel(channel, POLICY, target=f"bench-sync-{target}")
    return channel


def _stub(channel: Any) -> Any:
    return channel.unary_unary(METHOD, request_serializer=bytes, response_deserializer=bytes)


async def _aio_block(
    call: Callable[[], Awaitable[Any]], n: int, clock: Callable[[], float]
) -> float:
    with gc_paused():
        start = clock()
        for _ in range(n):
            await call()
        return (clock() - start) / n


def _sync_block(call: Callable[[], Any], n: int, clock: Callable[[], float]) -> float:
    with gc_paused():
        start = clock()
        for _ in range(n):
            call()
        return (clock() - start) / n


async def _aio_failing(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Seconds of wall time per call that fails, as each of these is meant to."""
    with gc_paused():
        start = time.perf_counter()
        for _ in range(n):
            try:  # noqa: SIM105 - contextlib.suppress would add its own cost to the timing
                await call()
            except grpc.aio.AioRpcError:
                pass
        return (time.perf_counter() - start) / n


def _sync_failing(call: Callable[[], Any], n: int) -> float:
    """Seconds of wall time per sync call that fails."""
    with gc_paused():
        start = time.perf_counter()
        for _ in range(n):
            try:  # noqa: SIM105 - contextlib.suppress would add its own cost to the timing
                call()
            except grpc.RpcError:
                pass
        return (time.perf_counter() - start) / n


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


Samples = dict[str, list[float]]  # case -> seconds per call, one per block


class _Finished:
    """A call that has already finished OK: the interceptors' work without the network's."""

    def code(self) -> Any:
        return grpc.StatusCode.OK

    def done(self) -> bool:
        return True


class _AioFinished:
    async def code(self) -> Any:
        return grpc.StatusCode.OK


def interceptor_overhead(calls: int) -> dict[str, float]:
    """Seconds per call of each interceptor alone, around a continuation that answers at once.

    This is what an interceptor adds to a call, without the millisecond of gRPC and
    loopback that buries it (and its noise) in the end-to-end figures.
    """
    from engined.rpc._attempts import ClientCore
    from engined.rpc._client_sync import EnginedClientInterceptor, _ClientCallDetails

    finished, aio_finished = _Finished(), _AioFinished()
    sync_details = _ClientCallDetails(METHOD, TIMEOUT, None, None, None, None)
    aio_details = grpc.aio.ClientCallDetails(METHOD.encode(), TIMEOUT, None, None, None)
    engined_sync = EnginedClientInterceptor(ClientCore(POLICY, "bench-overhead-sync", SYSTEM_CLOCK))
    engined_aio = aio_interceptors(POLICY, target="bench-overhead-aio")[0]
    noop_sync, noop_aio = SyncNoop(), Noop()

    def continuation(details: Any, request: Any) -> Any:
        return finished

    async def aio_continuation(details: Any, request: Any) -> Any:
        return aio_finished

    result: dict[str, float] = {}
    for name, icpt in (("sync_noop", noop_sync), ("sync_engined", engined_sync)):
        call = functools.partial(icpt.intercept_unary_unary, continuation, sync_details, b"x")
        _sync_block(call, calls // 10, time.perf_counter)
        result[name] = min(_sync_block(call, calls, time.perf_counter) for _ in range(5))

    async def aio_blocks() -> None:
        for name, icpt in (("aio_noop", noop_aio), ("aio_engined", engined_aio)):
            call = functools.partial(
                icpt.intercept_unary_unary, aio_continuation, aio_details, b"x"
            )
            await _aio_block(call, calls // 10, time.perf_counter)
            result[name] = min([await _aio_block(call, calls, time.perf_counter) for _ in range(5)])

    asyncio.run(aio_blocks())
    return result


async def _run_aio(target: str, settings: Settings, samples: Samples, repeat: int) -> None:
    channels = {kind: _aio_channel(target, kind) for kind in KINDS}
    stubs = {kind: _stub(channel) for kind, channel in channels.items()}
    try:
        order = KINDS[repeat % 3 :] + KINDS[: repeat % 3]
        for kind in order:
            stub = stubs[kind]

            async def call(stub: Any = stub) -> Any:
                return await stub(b"x" * 100, timeout=TIMEOUT)

            await _aio_block(call, settings.warmup, time.process_time)
            value = await _aio_block(call, settings.calls, time.process_time)
            samples[f"aio_{kind}"].append(value)
    finally:
        for channel in channels.values():
            await channel.close()


async def _aio_dead_fresh(dead: str) -> None:
    async with grpc.aio.insecure_channel(dead, options=_OPTIONS) as channel:
        await _stub(channel)(b"x", timeout=TIMEOUT)


def _sync_dead_fresh(dead: str) -> None:
    with grpc.insecure_channel(dead, options=_OPTIONS) as channel:
        _stub(channel)(b"x", timeout=TIMEOUT)


async def _run_refusals(settings: Settings, samples: Samples, repeat: int) -> None:
    """Calls that fail: to a dead port (a fresh channel each, or one already failing) and
    through a forced-open breaker, whose calls never reach the network."""
    dead = f"127.0.0.1:{_closed_port()}"
    n = settings.refusals
    samples["aio_dead_fresh"].append(await _aio_failing(lambda: _aio_dead_fresh(dead), n))
    async with grpc.aio.insecure_channel(dead, options=_OPTIONS) as bare:
        stub = _stub(bare)
        samples["aio_dead_same"].append(await _aio_failing(lambda: stub(b"x", timeout=TIMEOUT), n))
    name = f"bench-open-{repeat}-{dead}"
    interceptors = aio_interceptors(POLICY, target=name)
    async with grpc.aio.insecure_channel(dead, options=_OPTIONS, interceptors=interceptors) as ch:
        _open(f"rpc:{name}")
        stub = _stub(ch)
        samples["aio_open"].append(await _aio_failing(lambda: stub(b"x", timeout=TIMEOUT), n * 20))
    async with grpc.aio.insecure_channel(dead, options=_OPTIONS, interceptors=[Refuse()]) as ch:
        stub = _stub(ch)
        refused = await _aio_failing(lambda: stub(b"x", timeout=TIMEOUT), n * 20)
        samples["aio_refuse"].append(refused)
    samples["sync_dead_fresh"].append(_sync_failing(lambda: _sync_dead_fresh(dead), n))
    with grpc.insecure_channel(dead, options=_OPTIONS) as channel:
        stub = _stub(channel)
        samples["sync_dead_same"].append(_sync_failing(lambda: stub(b"x", timeout=TIMEOUT), n))
        sync_name = f"bench-open-sync-{repeat}-{dead}"
        guarded = _stub(intercept_channel(channel, POLICY, target=sync_name))
        _open(f"rpc:{sync_name}")
        samples["sync_open"].append(_sync_failing(lambda: guarded(b"x", timeout=TIMEOUT), n * 20))
        floor = _stub(grpc.intercept_channel(channel, SyncRefuse()))
        samples["sync_refuse"].append(_sync_failing(lambda: floor(b"x", timeout=TIMEOUT), n * 20))


def _open(name: str) -> None:
    breaker = default_registry().get(name)
    assert breaker is not None
    breaker.force_open()


def _run_sync(target: str, settings: Settings, samples: Samples, repeat: int) -> None:
    channels = {kind: _sync_channel(target, kind) for kind in KINDS}
    try:
        order = KINDS[repeat % 3 :] + KINDS[: repeat % 3]
        for kind in order:
            stub = _stub(channels[kind])

            def call(stub: Any = stub) -> Any:
                return stub(b"x" * 100, timeout=TIMEOUT)

            _sync_block(call, settings.warmup, time.process_time)
            samples[f"sync_{kind}"].append(_sync_block(call, settings.calls, time.process_time))
    finally:
        for channel in channels.values():
            channel.close()


def run(settings: Settings) -> Samples:
    """Every case, interleaved: each repeat runs aio and sync blocks of every kind in turn."""
    keys = [f"{stack}_{kind}" for stack in STACKS for kind in KINDS]
    failing = [f"{stack}_{case}" for stack in STACKS for case in FAILING]
    samples: Samples = {key: [] for key in [*keys, *failing]}
    loop = asyncio.new_event_loop()
    try:
        with Server() as server:
            target = f"127.0.0.1:{server.port}"
            for repeat in range(settings.repeats):
                print(f"repeat {repeat + 1}/{settings.repeats} ...", file=sys.stderr, flush=True)
                if repeat % 2 == 0:
                    loop.run_until_complete(_run_aio(target, settings, samples, repeat))
                    _run_sync(target, settings, samples, repeat)
                else:
                    _run_sync(target, settings, samples, repeat)
                    loop.run_until_complete(_run_aio(target, settings, samples, repeat))
                loop.run_until_complete(_run_refusals(settings, samples, repeat))
    finally:
        loop.close()
    return samples


def summarize(samples: Samples) -> dict[str, float]:
    """The median of each case's blocks: one slow block (a busy neighbour) cannot move it."""
    return {key: statistics.median(values) for key, values in samples.items() if values}


def paired(samples: Samples, mine: str, other: str) -> float:
    """Median of per-repeat ratios: blocks run side by side share the same machine weather."""
    return statistics.median(a / b for a, b in zip(samples[mine], samples[other], strict=True))


def verdicts(samples: Samples) -> list[Verdict]:
    results = []
    for stack in STACKS:
        for other, limit in (("bare", OVER_BARE), ("noop", OVER_NOOP)):
            ratio = paired(samples, f"{stack}_engined", f"{stack}_{other}")
            target = f"{stack}: engined's CPU per call ≤ {limit:.2f}x {other}"
            status = "PASS" if ratio <= limit else "FAIL"
            results.append(Verdict(target, status, f"{ratio:.3f}x"))
    for stack in STACKS:
        speedup = paired(samples, f"{stack}_dead_fresh", f"{stack}_open")
        target = (
            f"{stack}: an open breaker fails a call ≥ {OPEN_SPEEDUP:g}x faster than a dead port"
        )
        status = "PASS" if speedup >= OPEN_SPEEDUP else "FAIL"
        same = paired(samples, f"{stack}_dead_same", f"{stack}_open")
        floor = paired(samples, f"{stack}_dead_fresh", f"{stack}_refuse")
        versus_floor = paired(samples, f"{stack}_open", f"{stack}_refuse")
        detail = (
            f"{speedup:.0f}x a fresh connection; {same:.0f}x a channel already failing; "
            f"the floor (an interceptor that only raises) is {floor:.0f}x, "
            f"engined / floor {versus_floor:.2f}x"
        )
        results.append(Verdict(target, status, detail))
    return results


def render(samples: Samples) -> str:
    medians = summarize(samples)
    rows = []
    for stack in STACKS:
        for kind in KINDS:
            key, spread = f"{stack}_{kind}", samples[f"{stack}_{kind}"]
            versus_bare = f"{paired(samples, key, f'{stack}_bare'):.3f}x" if kind != "bare" else ""
            versus_noop = (
                f"{paired(samples, key, f'{stack}_noop'):.3f}x" if kind == "engined" else ""
            )
            noise = (max(spread) - min(spread)) / min(spread)
            rows.append(
                [
                    f"{stack} {kind}",
                    f"{medians[key] * 1e6:,.0f}",
                    f"{noise:.0%}",
                    versus_bare,
                    versus_noop,
                ]
            )
    table = markdown(["case", "CPU µs/call", "spread", "vs bare", "vs no-op"], rows)
    labels = {
        "dead_fresh": "dead port, a fresh channel per call",
        "dead_same": "dead port, one channel (already failing)",
        "refuse": "floor: an interceptor that only raises (nothing sent)",
        "open": "open breaker (nothing sent)",
    }
    refusal_rows = [
        [f"{stack} {labels[case]}", f"{medians[f'{stack}_{case}'] * 1e6:,.1f}"]
        for stack in STACKS
        for case in FAILING
    ]
    refusals = markdown(["failing call", "wall µs/call"], refusal_rows)
    return (
        "## CPU per unary call, both ends in this process\n\n"
        f"{table}\n\n## Calls that fail\n\n{refusals}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, doc=__doc__ or "", repeats=15, calls=2_000)
    calls = args.calls or (50 if args.quick else 2_000)
    settings = Settings(
        calls=calls,
        repeats=args.repeats or (1 if args.quick else 15),
        warmup=max(10, calls // 10),
        refusals=20 if args.quick else 200,
    )
    print("# gRPC client benchmark: CPU per unary call on loopback\n")
    print(
        f"Python {platform.python_version()} on {platform.platform()}, "
        f"{os.cpu_count()} CPUs; grpcio {grpc.__version__}"
    )
    print(
        f"Settings: {settings.calls:,} calls per block, {settings.repeats} interleaved repeats, "
        f"100-byte requests, timeout={TIMEOUT:g} s on every call; CPU is time.process_time() "
        "of this process (client and server); figures are medians over blocks; ratios are "
        "medians of per-repeat ratios.\n",
        flush=True,
    )
    samples = run(settings)
    print(render(samples))
    overhead = interceptor_overhead(2_000 if args.quick else 100_000)
    print("\n## The interceptor alone (a continuation that answers at once)\n")
    print(
        markdown(
            ["interceptor", "µs/call"],
            [[key.replace("_", " "), f"{value * 1e6:.2f}"] for key, value in overhead.items()],
        )
    )
    results = verdicts(samples)
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
            "cpu_us_per_call": {
                k: v * 1e6 for k, v in summarize(samples).items() if k.endswith(KINDS)
            },
            "failing_call_wall_us": {
                k: v * 1e6 for k, v in summarize(samples).items() if k.endswith(FAILING)
            },
            "samples_us": {k: [v * 1e6 for v in values] for k, values in samples.items()},
            "interceptor_alone_us": {k: v * 1e6 for k, v in overhead.items()},
            "targets": [asdict(verdict) for verdict in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = any(verdict.status == "FAIL" for verdict in results)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
