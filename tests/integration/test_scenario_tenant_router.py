"""Scenario: a multi-tenant router under load, on the real clock (issue 11, scenario 5).

The router is the one in ``examples/tenant_router.py``, loaded from that file so the tests
check exactly what users copy. Five tenants are hammered at once, by threads in one test
and by asyncio tasks in the other: three healthy, one whose backend fails every call and
one whose backend hangs with every slot of its bulkhead taken. Every count is exact;
the only timing bound is generous, and the hung tenant is held for the whole storm, so a
healthy call that waited on it would not finish at all.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from engined import CircuitBreakerRegistry, CircuitState
from engined.testing import FakeDependency

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

EXAMPLE = Path(__file__).parents[2] / "examples" / "tenant_router.py"
HEALTHY = ("ok-1", "ok-2", "ok-3")
TENANTS = (*HEALTHY, "broken", "stuck")
THRESHOLD = 5  # consecutive failures that open a tenant's breaker
STUCK_SLOTS = 3  # the hung tenant's bulkhead, all taken before the storm
FAST = 0.5  # seconds; a healthy call takes ~1 ms, the hung tenant is held for the whole storm
WAIT = 10.0  # bound on every wait, so a broken router fails the test instead of hanging it


def load_example() -> ModuleType:
    """Import ``examples/tenant_router.py`` (not a package) under a module name of its own."""
    name = "engined_example_tenant_router"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


class Gate:
    """A backend that hangs until released, for threads and for tasks.

    ``full`` (threads) and ``full_async`` (tasks) are set once ``slots`` calls hang in it.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.entered = 0
        self.full = threading.Event()
        self.full_async = asyncio.Event()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released_async = asyncio.Event()

    def release(self) -> None:
        """Let every hung call return (call from the event loop's thread in async tests)."""
        self._released.set()
        self._released_async.set()

    def _enter(self) -> bool:
        with self._lock:
            self.entered += 1
            return self.entered == self.slots

    def call(self, request: str) -> str:
        if self._enter():
            self.full.set()
        if not self._released.wait(WAIT):
            raise TimeoutError("the gate was never released")
        return "late"

    async def call_async(self, request: str) -> str:
        if self._enter():
            self.full_async.set()
        async with asyncio.timeout(WAIT):
            await self._released_async.wait()
        return "late"


def make_router(
    registry: CircuitBreakerRegistry, callers: int
) -> tuple[Any, dict[str, FakeDependency[str]], Gate]:
    """A router over three healthy tenants, a broken one and a hung one.

    Healthy and broken tenants may run ``callers`` calls at once, so their own bulkheads
    never fill: every refusal the test sees comes from the rule it is about.
    """
    example = load_example()
    router = example.TenantRouter(
        registry=registry, failure_threshold=THRESHOLD, recovery_timeout=60.0
    )
    backends = {name: FakeDependency(name, result="ok", latency=0.001) for name in HEALTHY}
    backends["broken"] = FakeDependency("broken", result="ok")
    backends["broken"].down()
    for name, backend in backends.items():
        router.add_tenant(name, backend, max_concurrent=callers)
    gate = Gate(STUCK_SLOTS)
    router.add_tenant("stuck", gate, max_concurrent=STUCK_SLOTS)
    return router, backends, gate


def outcome(exc: BaseException | None) -> str:
    return "ok" if exc is None else type(exc).__name__


def check_books(
    router: Any,
    backends: dict[str, FakeDependency[str]],
    gate: Gate,
    outcomes: dict[str, Counter[str]],
    slowest: dict[str, float],
    per_tenant: int,
) -> None:
    """Assert every tenant's exact counts after the storm (shared by threads and tasks)."""
    example = load_example()
    lanes = {tenant: router.lane(tenant) for tenant in TENANTS}
    assert sorted(b.name for b in router.registry) == sorted(f"tenant:{t}" for t in TENANTS)

    for tenant in HEALTHY:
        m = lanes[tenant].breaker.metrics
        assert outcomes[tenant] == Counter(ok=per_tenant), tenant
        assert backends[tenant].calls == per_tenant
        assert m.state is CircuitState.CLOSED
        assert (m.successful_calls, m.failed_calls, m.ignored_calls, m.rejected_calls) == (
            per_tenant,
            0,
            0,
            0,
        )
        assert lanes[tenant].bulkhead.rejected == 0
        assert slowest[tenant] < FAST, f"{tenant}'s slowest call took {slowest[tenant]:.3f}s"

    broken = lanes["broken"].breaker.metrics
    failed, rejected = (
        outcomes["broken"]["ConnectionError"],
        outcomes["broken"]["CircuitBreakerOpenError"],
    )
    assert failed + rejected == per_tenant, outcomes["broken"]
    assert failed == backends["broken"].calls == broken.failed_calls  # rejections never reached it
    # A plain breaker trips at the threshold, or a few calls late when failures race.
    assert THRESHOLD <= failed <= THRESHOLD + 16
    assert broken.rejected_calls == rejected
    assert (broken.state, broken.times_opened, broken.successful_calls) == (CircuitState.OPEN, 1, 0)
    assert lanes["broken"].bulkhead.rejected == 0
    assert slowest["broken"] < FAST

    stuck = lanes["stuck"].breaker.metrics
    assert outcomes["stuck"] == Counter(BulkheadFullError=per_tenant)
    assert gate.entered == STUCK_SLOTS  # no call of the storm reached the hung backend
    assert lanes["stuck"].bulkhead.rejected == per_tenant
    # The refusals are ignored by the breaker: load shedding, not a failing backend.
    assert (stuck.state, stuck.failed_calls, stuck.rejected_calls) == (CircuitState.CLOSED, 0, 0)
    assert stuck.ignored_calls == per_tenant
    assert stuck.successful_calls == STUCK_SLOTS  # the held calls, released after the storm
    assert slowest["stuck"] < FAST

    for tenant in TENANTS:  # each tenant's breaker accounts for every request sent to it
        m = lanes[tenant].breaker.metrics
        attempts = per_tenant + (STUCK_SLOTS if tenant == "stuck" else 0)
        assert m.successful_calls + m.failed_calls + m.ignored_calls + m.rejected_calls == attempts
        assert m.total_calls == m.successful_calls + m.failed_calls + m.ignored_calls
        assert lanes[tenant].bulkhead.active == 0
    assert example.http_status(example.UnknownTenantError("x")) == 404


def test_threads_hammering_five_tenants_touch_only_the_bad_tenants_breakers_and_bulkheads() -> None:
    """Eight threads on five tenants: healthy ones all succeed fast, the bad two fail alone."""
    threads, rounds = 8, 60
    router, backends, gate = make_router(CircuitBreakerRegistry(), callers=threads)
    holders = [
        threading.Thread(target=router.route, args=("stuck", f"hold {n}"))
        for n in range(STUCK_SLOTS)
    ]
    for holder in holders:
        holder.start()
    assert gate.full.wait(WAIT), "the hung tenant's slots never filled"

    start = threading.Barrier(threads, timeout=WAIT)
    outcomes = {tenant: Counter[str]() for tenant in TENANTS}
    slowest = dict.fromkeys(TENANTS, 0.0)
    books = threading.Lock()

    def worker(offset: int) -> None:
        mine = {tenant: Counter[str]() for tenant in TENANTS}
        worst = dict.fromkeys(TENANTS, 0.0)
        start.wait()
        for n in range(rounds):
            for i in range(len(TENANTS)):
                tenant = TENANTS[(i + offset) % len(TENANTS)]
                began = time.perf_counter()  # noqa: TID251
                try:
                    router.route(tenant, f"request {n}")
                except Exception as exc:
                    mine[tenant][outcome(exc)] += 1
                else:
                    mine[tenant][outcome(None)] += 1
                worst[tenant] = max(worst[tenant], time.perf_counter() - began)  # noqa: TID251
        with books:
            for tenant in TENANTS:
                outcomes[tenant] += mine[tenant]
                slowest[tenant] = max(slowest[tenant], worst[tenant])

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT)
    finished = sum(not w.is_alive() for w in workers)
    assert gate.entered == STUCK_SLOTS  # still hung: the storm ended without it
    gate.release()
    for holder in holders:
        holder.join(WAIT)
    assert finished == threads, "a healthy tenant's call waited on the hung tenant"
    assert not any(holder.is_alive() for holder in holders)
    check_books(router, backends, gate, outcomes, slowest, per_tenant=threads * rounds)


async def test_tasks_hammering_five_tenants_touch_only_the_bad_tenants_breakers_and_bulkheads() -> (
    None
):
    """Forty tasks on five tenants: healthy ones all succeed fast, the bad two fail alone."""
    tasks, rounds = 40, 10
    router, backends, gate = make_router(CircuitBreakerRegistry(), callers=tasks)
    holders = [
        asyncio.create_task(router.route_async("stuck", f"hold {n}")) for n in range(STUCK_SLOTS)
    ]
    async with asyncio.timeout(WAIT):
        await gate.full_async.wait()

    outcomes = {tenant: Counter[str]() for tenant in TENANTS}
    slowest = dict.fromkeys(TENANTS, 0.0)

    async def caller(offset: int) -> None:
        for n in range(rounds):
            for i in range(len(TENANTS)):
                tenant = TENANTS[(i + offset) % len(TENANTS)]
                began = time.perf_counter()  # noqa: TID251
                try:
                    await router.route_async(tenant, f"request {n}")
                except Exception as exc:
                    outcomes[tenant][outcome(exc)] += 1
                else:
                    outcomes[tenant][outcome(None)] += 1
                took = time.perf_counter() - began  # noqa: TID251
                slowest[tenant] = max(slowest[tenant], took)

    async with asyncio.timeout(WAIT):
        await asyncio.gather(*(caller(n) for n in range(tasks)))
    assert gate.entered == STUCK_SLOTS
    assert not any(holder.done() for holder in holders)  # still hung: the storm ended without it
    gate.release()
    assert await asyncio.gather(*holders) == ["late"] * STUCK_SLOTS
    check_books(router, backends, gate, outcomes, slowest, per_tenant=tasks * rounds)


def test_threads_racing_to_a_new_tenant_create_one_breaker_and_one_bulkhead() -> None:
    """Sixteen threads making a tenant's first request at once share one lane and one breaker."""
    registry = CircuitBreakerRegistry()
    router = load_example().TenantRouter(registry=registry)
    backend = FakeDependency("new", result="ok")
    router.add_tenant("new", backend, max_concurrent=16)
    start = threading.Barrier(16, timeout=WAIT)
    lanes: list[Any] = []

    def first_request() -> None:
        start.wait()
        router.route("new", "hello")
        lanes.append(router.lane("new"))

    threads = [threading.Thread(target=first_request) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(lanes) == 16
    assert len({id(lane) for lane in lanes}) == 1
    assert [b.name for b in registry] == ["tenant:new"]
    assert registry.get("tenant:new") is lanes[0].breaker
    assert lanes[0].breaker.metrics.successful_calls == backend.calls == 16
