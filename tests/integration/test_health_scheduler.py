"""The HealthCheckManager scheduler on the real clock (intervals of 0.05 s).

These tests exercise what only real time can show: cadence, hung sync and async checks,
prompt shutdown, healing backoff, dependency order, first-run jitter, watch() and runtime
(un)registration. Every wait is bounded, so a broken scheduler fails instead of hanging, and
every hung check or heal is released in a ``finally`` so no worker thread outlives its test.
Counts are asserted as ranges derived from the time really elapsed, so a loaded machine
passes while a wrong cadence still fails. Scenario ids (T#) refer to
``research/health-autoheal.md``; rules to DESIGN.md §5.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from engined import (
    SYSTEM_CLOCK,
    HealState,
    HealthCheckConfig,
    HealthCheckManager,
    HealthEvent,
    HealthStatus,
    SystemHealth,
)

pytestmark = pytest.mark.integration

INTERVAL = 0.05
POLL = 0.005
HEALTHY = HealthStatus.HEALTHY
UNHEALTHY = HealthStatus.UNHEALTHY


def now() -> float:
    """Real monotonic time, read through the library's own system clock."""
    return SYSTEM_CLOCK.monotonic()


async def pause(seconds: float) -> None:
    """Let real time pass without blocking the loop."""
    await SYSTEM_CLOCK.sleep_async(seconds)


async def wait_until(predicate: Callable[[], bool], what: str, within: float = 1.0) -> None:
    """Poll ``predicate`` until it holds; fail the test (never hang) after ``within`` s."""

    async def poll() -> None:
        while not predicate():
            await pause(POLL)

    try:
        await asyncio.wait_for(poll(), within)
    except TimeoutError:
        pytest.fail(f"not within {within} s: {what}")


def config(**fields: Any) -> HealthCheckConfig:
    """A config on the 0.05 s test interval unless told otherwise."""
    fields.setdefault("interval", INTERVAL)
    return HealthCheckConfig(**fields)


def expected_ticks(elapsed: float, interval: float = INTERVAL) -> tuple[int, float]:
    """A tolerant (low, high) range of ticks for ``elapsed`` seconds of real time."""
    ideal = elapsed / interval
    return int(ideal * 0.6), ideal + 2


def strictly_increasing(values: Sequence[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


async def sample_counts(
    manager: HealthCheckManager, names: Sequence[str], duration: float, every: float = 0.1
) -> tuple[dict[str, list[int]], float]:
    """Sample each component's check_count every ``every`` s; return samples and time elapsed."""
    samples: dict[str, list[int]] = {name: [] for name in names}
    began = now()
    while True:
        await pause(every)
        health = manager.snapshot()
        for name in names:
            samples[name].append(health.components[name].check_count)
        if now() - began >= duration:
            return samples, now() - began


class Hang:
    """A sync check or heal that blocks its worker thread until released; counts its calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.starts: list[float] = []
        self.active = 0
        self._lock = threading.Lock()

    def __call__(self, *args: object) -> bool:
        with self._lock:
            self.starts.append(now())
            self.active += 1
        try:
            self.release.wait(5.0)
        finally:
            with self._lock:
                self.active -= 1
        return True

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.starts)

    async def drain(self) -> None:
        """Release every blocked call and give the threads a bounded moment to leave."""
        self.release.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone(), 2.0)

    async def _gone(self) -> None:
        while self.active:
            await pause(POLL)


class Flag:
    """An async check (``flag.check``) whose verdict the test sets; counts its calls."""

    def __init__(self, value: bool = True) -> None:
        self.value = value
        self.calls = 0

    async def check(self) -> bool:
        self.calls += 1
        return self.value


async def healthy() -> bool:
    return True


def healthy_sync() -> bool:
    return True


class _Jitter(random.Random):
    """Hands out scripted first-run jitter fractions, in registration order."""

    def __init__(self, fractions: Sequence[float]) -> None:
        super().__init__(0)
        self._fractions = list(fractions)

    def random(self) -> float:
        return self._fractions.pop(0) if self._fractions else 0.5


# ---------------------------------------------------------------------- cadence


@pytest.mark.parametrize("check", [healthy, healthy_sync], ids=["async", "sync"])
async def test_check_runs_once_per_interval(check: Callable[[], Any]) -> None:
    """A healthy check's check_count grows every interval, about one tick per 0.05 s."""
    manager = HealthCheckManager()
    manager.register("svc", check, config=config())
    async with manager:
        samples, elapsed = await sample_counts(manager, ["svc"], 0.5)
        health = manager.component("svc")
    counts = samples["svc"]
    low, high = expected_ticks(elapsed)
    assert strictly_increasing(counts), f"check_count stalled between samples: {counts}"
    assert low <= counts[-1] <= high, f"{counts[-1]} checks in {elapsed:.3f} s: {counts}"
    assert health.status is HEALTHY
    assert health.consecutive_failures == 0


# ---------------------------------------------------------------------- hung checks


async def test_hanging_sync_check_times_out_then_is_stuck_with_one_invocation() -> None:
    """T1: a hung sync check is UNHEALTHY("timeout") at once, then "stuck", never started twice."""
    hang = Hang()
    manager = HealthCheckManager(max_check_threads=4)
    manager.register("hung", hang, config=config(timeout=0.03))
    manager.register("neighbour", healthy, config=config())
    errors: dict[int, str | None] = {}  # check_count -> that result's error
    latencies: list[float] = []
    try:
        async with manager:
            await wait_until(lambda: hang.calls >= 1, "the hung check was started")
            await wait_until(
                lambda: manager.component("hung").status is UNHEALTHY, "hung check UNHEALTHY"
            )
            first = manager.component("hung").last_result
            assert first is not None
            assert first.error == "timeout"
            assert first.timestamp is not None
            assert first.timestamp - hang.starts[0] <= 0.03 + 0.1, "timeout recorded late"

            began = now()
            while now() - began < 0.4:
                t0 = now()
                health = manager.snapshot()
                latencies.append(now() - t0)
                hung = health.components["hung"]
                if hung.last_result is not None:
                    errors[hung.check_count] = hung.last_result.error
                await pause(POLL)
            samples, _ = await sample_counts(manager, ["neighbour"], 0.3, every=0.06)
    finally:
        await hang.drain()

    latencies.sort()
    assert latencies[int(len(latencies) * 0.99)] < 0.05, "snapshot() slow while a check hangs"
    assert strictly_increasing(samples["neighbour"]), f"neighbour stalled: {samples}"
    assert len(errors) >= 3, f"too few ticks seen while hanging: {errors}"
    later = {count: error for count, error in errors.items() if count > 1}
    assert set(later.values()) == {"stuck"}, f"ticks after the timeout: {later}"
    assert hang.calls == 1, f"a hung sync check was started {hang.calls} times"


async def test_sync_neighbour_keeps_cadence_while_a_sync_check_hangs() -> None:
    """T1: one hung sync check occupies one worker; a sync neighbour keeps passing on time."""
    hang = Hang()
    manager = HealthCheckManager(max_check_threads=2)
    manager.register("hung", hang, config=config(timeout=0.03))
    manager.register("neighbour", healthy_sync, config=config())
    statuses: list[HealthStatus] = []
    try:
        async with manager:
            await wait_until(lambda: hang.calls >= 1, "the hung check was started")
            await wait_until(
                lambda: manager.component("neighbour").check_count >= 1, "neighbour checked"
            )
            begin_count = manager.component("neighbour").check_count
            began = now()
            while now() - began < 0.5:
                statuses.append(manager.component("neighbour").status)
                await pause(0.02)
            neighbour = manager.component("neighbour")
            elapsed = now() - began
    finally:
        await hang.drain()
    low, high = expected_ticks(elapsed)
    assert low <= neighbour.check_count - begin_count <= high
    assert neighbour.last_result is not None
    assert neighbour.last_result.error is None, (
        f"neighbour failed with {neighbour.last_result.error!r}; hung check started "
        f"{hang.calls} times in a pool of 2"
    )
    assert set(statuses) == {HEALTHY}, f"neighbour statuses while one check hangs: {statuses}"


async def test_reads_run_no_check_while_a_check_hangs() -> None:
    """T16: 1000 concurrent reads during a hang return fast and start no extra check."""
    hang = Hang()
    manager = HealthCheckManager(rng=_Jitter([0.0]))  # first run at once, the next in 1 s
    manager.register("hung", hang, config=config(interval=1.0, timeout=0.05))
    try:
        async with manager:
            await wait_until(
                lambda: manager.component("hung").status is UNHEALTHY, "hung check UNHEALTHY"
            )
            calls_before = hang.calls
            began = now()
            reads = await asyncio.wait_for(
                asyncio.gather(*(manager.get_system_health() for _ in range(1000))), 1.0
            )
            burst = now() - began
            snapshots = [manager.snapshot() for _ in range(1000)]
            calls_after = hang.calls
    finally:
        await hang.drain()
    # Reads start no check: the one hung run is all there is.
    assert calls_after == calls_before == 1
    assert burst < 0.5, f"1000 get_system_health() took {burst:.3f} s"
    assert all(r.overall_status is UNHEALTHY for r in (*reads, *snapshots))


async def test_async_check_swallowing_cancellation_is_stuck_and_stop_returns() -> None:
    """T2: an async check that ignores cancellation is stuck, never rerun, and stop() returns."""
    release = threading.Event()
    starts: list[float] = []
    cancels = 0
    tasks: list[asyncio.Task[Any]] = []

    async def stubborn() -> bool:
        nonlocal cancels
        starts.append(now())
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        while not release.is_set():
            try:
                await pause(0.01)
            except asyncio.CancelledError:
                cancels += 1  # swallowed on purpose: keeps running
        return True

    manager = HealthCheckManager()
    manager.register("stubborn", stubborn, config=config(timeout=0.03))
    errors: dict[int, str | None] = {}
    await manager.start()
    try:
        began = now()
        while now() - began < 0.4:
            hung = manager.component("stubborn")
            if hung.last_result is not None:
                errors[hung.check_count] = hung.last_result.error
            await pause(POLL)
        status = manager.component("stubborn").status
        stop_began = now()
        await asyncio.wait_for(manager.stop(), 3.0)
        stop_took = now() - stop_began
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(manager.stop(), 3.0)
        release.set()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
    assert len(starts) == 1, f"the stubborn check was started {len(starts)} times"
    assert stop_took < 2.0, f"stop() took {stop_took:.3f} s"
    assert cancels >= 1, "the overrunning async check was never cancelled"
    assert status is UNHEALTHY
    assert len(errors) >= 4, errors
    assert set(errors.values()) <= {"timeout", "stuck"}, errors
    assert list(errors.values()).count("stuck") >= 3, errors
    assert errors[1] == "timeout", f"the overrun was not recorded as a timeout: {errors}"


async def test_stop_returns_promptly_while_a_check_and_a_heal_hang() -> None:
    """T21: stop() returns at once with a hung sync check and heal; then no more ticks.

    The bound is 0.5 s (not the 1.5 s ceiling) so a stop() that merely sits out its own
    1 s grace wait instead of cancelling fails here.
    """
    hung_check, hung_heal = Hang(), Hang()
    broken = Flag(False)
    manager = HealthCheckManager()
    manager.register("hung", hung_check, config=config(timeout=0.03))
    manager.register("broken", broken.check, config=config(), heal=hung_heal)
    manager.register("fine", healthy, config=config())
    try:
        await manager.start()
        try:
            await wait_until(lambda: hung_heal.calls >= 1, "the heal was started")
            await wait_until(lambda: hung_check.calls >= 1, "the hung check was started")
            assert manager.component("broken").heal_state is HealState.HEALING
        finally:
            began = now()
            await asyncio.wait_for(manager.stop(), 3.0)
            took = now() - began
        assert took < 0.5, f"stop() took {took:.3f} s"
        frozen = {n: c.check_count for n, c in manager.snapshot().components.items()}
        calls = (hung_check.calls, hung_heal.calls, broken.calls)
        await pause(0.25)
        after = {n: c.check_count for n, c in manager.snapshot().components.items()}
        assert after == frozen, "checks recorded after stop()"
        assert (hung_check.calls, hung_heal.calls, broken.calls) == calls, "ran after stop()"
    finally:
        await hung_check.drain()
        await hung_heal.drain()


async def test_async_callable_object_is_awaited() -> None:
    """An object whose ``__call__`` is ``async def`` is an async check: it is awaited."""
    flag = Flag(True)

    class Probe:
        async def __call__(self) -> bool:
            return await flag.check()

    manager = HealthCheckManager()
    manager.register("probe", Probe(), config=config())
    async with manager:
        await wait_until(lambda: manager.component("probe").check_count >= 2, "probe checked")
        probe = manager.component("probe")
    assert probe.last_result is not None
    assert probe.last_result.error is None, f"not awaited: {probe.last_result.error!r}"
    assert probe.status is HEALTHY
    assert flag.calls >= 2


# ---------------------------------------------------------------------- healing


async def test_heal_starts_at_once_backs_off_and_exhausts() -> None:
    """T7: heal 1 runs on the first UNHEALTHY tick, the next after the backoff, then EXHAUSTED."""
    check = Flag(False)
    heal_starts: list[float] = []
    events: list[HealthEvent] = []

    async def heal(_result: object) -> None:
        heal_starts.append(now())
        raise RuntimeError("still broken")

    manager = HealthCheckManager()
    manager.add_listener(events.append)
    manager.register(
        "db",
        check.check,
        config=config(
            heal_max_attempts=3,
            heal_backoff_initial=0.1,
            heal_backoff_multiplier=2.0,
            heal_backoff_max=1.0,
        ),
        heal=heal,
    )
    heal_states: set[HealState] = set()
    async with manager:
        await wait_until(lambda: check.calls >= 1, "the first check ran")
        first_check = now()
        began = now()
        while manager.component("db").heal_state is not HealState.EXHAUSTED:
            heal_states.add(manager.component("db").heal_state)
            if now() - began > 1.5:
                pytest.fail(f"not EXHAUSTED after 1.5 s; heals at {heal_starts}")
            await pause(POLL)
        exhausted = manager.component("db")
        await pause(0.3)
        later = manager.component("db")

    assert heal_starts, "no heal ran"
    assert heal_starts[0] - first_check < INTERVAL + 0.1, "first heal not seeded at once"
    gaps = [b - a for a, b in itertools.pairwise(heal_starts)]
    assert len(heal_starts) == 3, heal_starts
    for gap, delay in zip(gaps, (0.1, 0.2), strict=True):
        assert delay <= gap <= delay + INTERVAL + 0.15, f"heal gaps {gaps}, backoff 0.1, 0.2"
    assert HealState.BACKOFF in heal_states
    assert exhausted.heal_attempts == 3
    assert exhausted.last_heal_error == "RuntimeError"
    assert later.heal_state is HealState.EXHAUSTED
    assert later.check_count - exhausted.check_count >= 3, "checks stopped once EXHAUSTED"
    assert len(heal_starts) == 3, "a heal ran after EXHAUSTED"
    kinds = [e.kind for e in events if e.component == "db"]
    assert kinds.count("heal_started") == 3
    assert kinds.count("heal_exhausted") == 1


async def test_crash_loop_keeps_heal_backoff() -> None:
    """T9: a heal that "works" but the component dies again keeps attempts and growing backoff."""
    healed = False
    heal_starts: list[float] = []
    events: list[HealthEvent] = []

    async def check() -> bool:
        nonlocal healed
        up, healed = healed, False  # up for exactly one check after each heal
        return up

    async def heal(_result: object) -> bool:
        nonlocal healed
        heal_starts.append(now())
        healed = True
        return True

    manager = HealthCheckManager()
    manager.add_listener(events.append)
    manager.register(
        "worker",
        check,
        config=config(
            heal_max_attempts=3,
            heal_backoff_initial=0.1,
            heal_backoff_multiplier=2.0,
            heal_reset_after=60.0,
        ),
        heal=heal,
    )
    async with manager:
        await wait_until(
            lambda: manager.component("worker").heal_state is HealState.EXHAUSTED,
            f"crash loop EXHAUSTED (heals at {heal_starts})",
            within=1.5,
        )
        await pause(0.15)
        final = manager.component("worker")

    gaps = [b - a for a, b in itertools.pairwise(heal_starts)]
    recoveries = [e for e in events if e.kind == "transition" and e.from_status is UNHEALTHY]
    assert len(recoveries) >= 2, "the component never came back between heals"
    assert len(heal_starts) == 3, heal_starts
    for gap, delay in zip(gaps, (0.1, 0.2), strict=True):
        assert delay <= gap <= delay + 2 * INTERVAL + 0.15, f"heal gaps {gaps}"
    started = [e.attempt for e in events if e.kind == "heal_started"]
    assert started == [1, 2, 3], f"attempt numbers {started}: reset by a brief recovery"
    assert final.heal_attempts == 3


# ---------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("threshold", [1, 2])
async def test_flapping_check_follows_consecutive_failure_threshold(threshold: int) -> None:
    """T4: pass/fail alternating stays HEALTHY with failure_threshold=2 and flaps with 1."""
    calls = 0
    events: list[HealthEvent] = []

    async def flapping() -> bool:
        nonlocal calls
        calls += 1
        return calls % 2 == 1  # pass, fail, pass, fail, ...

    manager = HealthCheckManager()
    manager.add_listener(events.append)
    manager.register("flappy", flapping, config=config(failure_threshold=threshold))
    statuses: list[HealthStatus] = []
    async with manager:
        await wait_until(lambda: calls >= 1, "the first check ran")
        began = now()
        while now() - began < 0.5:
            statuses.append(manager.component("flappy").status)
            await pause(POLL)
        count = manager.component("flappy").check_count
    transitions = [(e.from_status, e.to_status) for e in events if e.kind == "transition"]
    assert count >= 6, f"only {count} checks in 0.5 s"
    if threshold == 2:
        assert transitions == [(HealthStatus.UNKNOWN, HEALTHY)], transitions
        assert set(statuses) == {HEALTHY}
    else:
        assert len(transitions) >= count - 2, f"{len(transitions)} for {count} checks"
        assert transitions[0] == (HealthStatus.UNKNOWN, HEALTHY)
        for (_, left), (entered, _) in itertools.pairwise(transitions):
            assert left is entered
        assert {UNHEALTHY, HEALTHY} <= set(statuses)


# ---------------------------------------------------------------------- dependencies


@pytest.mark.parametrize(
    ("jitter", "setup"),
    [
        ([0.0, 0.0], "parent-first"),
        ([0.9, 0.0], "parent-first"),
        ([0.1, 0.2], "parent-first"),
        ([0.0, 0.9], "child-first"),
        ([0.0, 0.0], "child-at-runtime"),
    ],
    ids=[
        "same-jitter",
        "child-due-first",
        "child-due-during-parent",
        "child-registered-first",
        "child-registered-at-runtime",
    ],
)
async def test_parent_check_finishes_before_child_check_starts(
    jitter: list[float], setup: str
) -> None:
    """Each round, a child's check starts only after a fresh check of its parent has ended.

    The first-run jitter is scripted (in registration order) so each case is deterministic:
    both due together, the child due before or while its parent runs, the child registered
    before its parent, or the child registered while the manager runs.
    """
    order: list[str] = []

    async def parent() -> bool:
        order.append("parent-start")
        await pause(0.01)
        order.append("parent-end")
        return True

    async def child() -> bool:
        order.append("child-start")
        return True

    def children() -> int:
        return order.count("child-start")

    manager = HealthCheckManager(rng=_Jitter(jitter))
    child_config = config(depends_on=("parent",))
    if setup == "child-first":
        manager.register("child", child, config=child_config)
    manager.register("parent", parent, config=config())
    if setup == "parent-first":
        manager.register("child", child, config=child_config)
    async with manager:
        if setup == "child-at-runtime":
            await wait_until(lambda: "parent-end" in order, "the parent checked")
            manager.register("child", child, config=child_config)
        await wait_until(lambda: children() >= 5, "five child checks", within=1.0)
    previous = -1
    for k, at in enumerate(i for i, event in enumerate(order) if event == "child-start"):
        parent_events = [e for e in order[previous + 1 : at] if e != "child-start"]
        fresh = parent_events[-2:] == ["parent-start", "parent-end"]
        assert fresh, f"child check {k + 1} did not follow a finished parent check: {order}"
        previous = at
        if k == 4:
            break


# ---------------------------------------------------------------------- jitter


async def test_first_runs_of_many_checks_are_spread_by_jitter() -> None:
    """200 checks registered at once do not all run in the same millisecond."""
    first_run: dict[str, float] = {}

    def make(name: str) -> Callable[[], Any]:
        async def check() -> bool:
            first_run.setdefault(name, now())
            return True

        return check

    manager = HealthCheckManager()
    for i in range(200):
        manager.register(f"c{i:03}", make(f"c{i:03}"), config=config(interval=1.0))
    async with manager:
        began = now()
        await wait_until(
            lambda: len(first_run) == 200 or (len(first_run) >= 20 and now() - began >= 0.3),
            "the first checks ran",
            within=1.2,
        )
    runs = sorted(first_run.values())
    spread = runs[-1] - runs[0]
    assert spread > 0.01, f"{len(runs)} first runs within {spread * 1000:.2f} ms: no jitter"


# ---------------------------------------------------------------------- watch


async def test_watch_yields_current_state_then_each_change() -> None:
    """watch() yields the current health at once, nothing while unchanged, then the change."""
    check = Flag(True)
    manager = HealthCheckManager()
    manager.register("svc", check.check, config=config())
    seen: list[SystemHealth] = []
    first_seen = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(manager.watch()) as updates:
            async for health in updates:
                seen.append(health)
                first_seen.set()
                if health.components["svc"].status is UNHEALTHY:
                    break

    async with manager:
        await wait_until(lambda: manager.component("svc").status is HEALTHY, "svc HEALTHY")
        consumer = asyncio.create_task(consume())
        try:
            began = now()
            await asyncio.wait_for(first_seen.wait(), 0.5)
            assert now() - began < 0.05, "the current value was not yielded at once"
            assert seen[0].components["svc"].status is HEALTHY
            await pause(0.2)  # four ticks, no change
            unchanged = list(seen)
            check.value = False
            await asyncio.wait_for(consumer, 1.0)  # breaks out once UNHEALTHY
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        check.value = True
        await wait_until(lambda: manager.component("svc").status is HEALTHY, "svc recovered")
    assert len(unchanged) == 1, (
        f"watch() yielded {len(unchanged)} values without a change: "
        f"{[h.components['svc'].status for h in unchanged]}"
    )
    assert seen[-1].components["svc"].status is UNHEALTHY
    assert seen[-1].overall_status is UNHEALTHY
    assert len(seen) == 2, [h.components["svc"].status for h in seen]


# ---------------------------------------------------------------------- runtime changes


async def test_register_and_unregister_while_running() -> None:
    """T21: a component registered after start() gets checked; an unregistered one stops."""
    early, late = Flag(True), Flag(True)
    manager = HealthCheckManager()
    manager.register("early", early.check, config=config())
    async with manager:
        await wait_until(lambda: early.calls >= 2, "early checked")
        manager.register("late", late.check, config=config())
        await wait_until(lambda: late.calls >= 3, "late checked after start()")
        assert manager.component("late").status is HEALTHY
        manager.unregister("early")
        calls = early.calls
        await pause(0.25)
        assert early.calls == calls, "an unregistered component is still checked"
        assert "early" not in manager.snapshot().components
        with pytest.raises(KeyError):
            manager.component("early")
        late_before = late.calls
        await pause(0.15)
        assert late.calls > late_before


async def test_failing_checks_never_stop_the_scheduler() -> None:
    """T3: checks that raise or return garbage every tick leave the manager and others running."""

    async def raises_async() -> bool:
        raise RuntimeError("password=hunter2")

    def raises_sync() -> bool:
        raise ValueError("token=abc")

    def garbage() -> object:
        return None

    def bad_listener(_event: HealthEvent) -> None:
        raise RuntimeError("listener broke")

    manager = HealthCheckManager()
    manager.add_listener(bad_listener)
    manager.register("async-raiser", raises_async, config=config())
    manager.register("sync-raiser", raises_sync, config=config())
    manager.register("garbage", garbage, config=config())
    manager.register("fine", healthy, config=config())
    names = ["async-raiser", "sync-raiser", "garbage", "fine"]
    async with manager:
        samples, elapsed = await sample_counts(manager, names, 0.5)
        health = manager.snapshot()
    low, high = expected_ticks(elapsed)
    for name in names:
        assert strictly_increasing(samples[name]), f"{name} stalled: {samples[name]}"
        assert low <= samples[name][-1] <= high, f"{name}: {samples[name]}"
    errors = {n: c.last_result.error for n, c in health.components.items() if c.last_result}
    assert errors == {
        "async-raiser": "RuntimeError",
        "sync-raiser": "ValueError",
        "garbage": "invalid result (NoneType)",
        "fine": None,
    }
    assert "hunter2" not in repr(health)
    assert "token=abc" not in repr(health.components["sync-raiser"])
    assert health.components["fine"].status is HEALTHY
    assert health.overall_status is UNHEALTHY
