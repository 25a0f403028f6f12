"""A multi-tenant router: one breaker and one bulkhead per tenant, so trouble stays local.

An API gateway sends each request to its tenant's backend. Every tenant gets its own
circuit breaker (``tenant:<name>`` in the registry, so the daemon and the metrics show
it) and its own bulkhead, created on the tenant's first request. One tenant whose
backend fails every call opens only its own breaker; one whose backend hangs fills only
its own bulkhead; the other tenants' calls never wait on either. The backends are
``engined.testing.FakeDependency`` stand-ins. Run: python examples/tenant_router.py
(about 0.6 s, no network)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import engined
from engined.testing import FakeDependency


class Backend(Protocol):
    """A tenant's handler, callable from threads and from tasks."""

    def call(self, request: str, /) -> str:
        """Serve ``request`` in the calling thread."""
        ...

    async def call_async(self, request: str, /) -> str:
        """Serve ``request`` in the calling task."""
        ...


class UnknownTenantError(LookupError):
    """The request names no tenant the router serves; nothing was created for it."""


@dataclass(frozen=True, slots=True)
class Lane:
    """One tenant's isolation: its backend, its breaker and its bulkhead."""

    backend: Backend
    breaker: engined.CircuitBreaker
    bulkhead: engined.Bulkhead


class TenantRouter:
    """Route each request through its tenant's own breaker and bulkhead.

    Only tenants added with :meth:`add_tenant` get a breaker, and only on their first
    request, so the registry holds at most one breaker per known tenant: a tenant name
    taken from a request never creates anything by itself.

    Args:
        registry: Where the ``tenant:<name>`` breakers live; the default registry (the
            one the daemon and the metrics read) when ``None``.
        failure_threshold: Consecutive failures that open a tenant's breaker.
        recovery_timeout: Seconds a tenant's breaker stays open before a probe.
        max_concurrent: Calls a tenant may have running at once, unless
            :meth:`add_tenant` says otherwise; the next one is refused at once.
        clock: The breakers' clock (a FakeClock in tests).
    """

    def __init__(
        self,
        *,
        registry: engined.CircuitBreakerRegistry | None = None,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        max_concurrent: int = 10,
        clock: engined.Clock = engined.SYSTEM_CLOCK,
    ) -> None:
        self.registry = engined.default_registry() if registry is None else registry
        self._breaker_config = {
            "failure_threshold": failure_threshold,
            "recovery_timeout": recovery_timeout,
            # A full bulkhead is the tenant's own load being shed, not its backend
            # failing: ignored, it never opens the breaker (it shows as ignored_calls).
            "ignore_exceptions": (engined.BulkheadFullError,),
            "clock": clock,
        }
        self._max_concurrent = max_concurrent
        self._tenants: dict[str, tuple[Backend, int]] = {}
        self._lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()

    def add_tenant(
        self, tenant: str, backend: Backend, *, max_concurrent: int | None = None
    ) -> None:
        """Serve ``tenant`` with ``backend``; its breaker and bulkhead come on its first request.

        Raises:
            ValueError: ``max_concurrent`` is below 1 (refused now, not at the first request).
        """
        limit = self._max_concurrent if max_concurrent is None else max_concurrent
        if limit < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {limit!r}")
        with self._lock:
            self._tenants[tenant] = (backend, limit)

    def remove_tenant(self, tenant: str) -> None:
        """Stop serving ``tenant`` and forget its breaker; calls in flight still finish."""
        with self._lock:
            self._tenants.pop(tenant, None)
            lane = self._lanes.pop(tenant, None)
            if lane is not None and self.registry.get(lane.breaker.name) is lane.breaker:
                self.registry.remove(lane.breaker.name)

    def lane(self, tenant: str) -> Lane:
        """Return ``tenant``'s lane, creating it on first use.

        Raises:
            UnknownTenantError: ``tenant`` was never added (or was removed).
        """
        # The hot path: one dict read, no lock. (Calling registry.get_or_create with the
        # config on every request would build a throwaway breaker to compare configs.)
        lane = self._lanes.get(tenant)
        if lane is not None:
            return lane
        with self._lock:
            lane = self._lanes.get(tenant)
            if lane is None:
                if tenant not in self._tenants:
                    raise UnknownTenantError(tenant)
                backend, limit = self._tenants[tenant]
                name = f"tenant:{tenant}"
                breaker = self.registry.get_or_create(name, **self._breaker_config)
                bulkhead = engined.Bulkhead(name, max_concurrent=limit)
                lane = self._lanes[tenant] = Lane(backend, breaker, bulkhead)
            return lane

    def route(self, tenant: str, request: str) -> str:
        """Serve ``request`` for ``tenant`` in this thread.

        Raises:
            UnknownTenantError: Not a tenant.
            engined.CircuitBreakerOpenError: The tenant's breaker is open (``retry_after``).
            engined.BulkheadFullError: The tenant already has its limit of calls running.
                Both are ``engined.RejectedError``: the backend was not called.
            Exception: Whatever the tenant's backend raised.
        """
        lane = self.lane(tenant)
        return lane.breaker.call(lane.bulkhead.call, lane.backend.call, request)

    async def route_async(self, tenant: str, request: str) -> str:
        """Serve ``request`` for ``tenant`` in this task; raises as :meth:`route` does."""
        lane = self.lane(tenant)
        return await lane.breaker.call_async(
            lane.bulkhead.call_async, lane.backend.call_async, request
        )


def http_status(exc: Exception) -> int:
    """What a gateway answers when it could not serve a tenant's request."""
    if isinstance(exc, UnknownTenantError):
        return 404
    if isinstance(exc, engined.BulkheadFullError):
        return 429  # the tenant's own concurrency limit: Too Many Requests
    if isinstance(exc, engined.CircuitBreakerOpenError):
        return 503  # with Retry-After: exc.retry_after
    return 502  # the tenant's backend failed


attempts: Counter[str] = Counter()


def send(router: TenantRouter, tenant: str, request: str) -> str:
    """Route one request and describe the answer as a gateway would."""
    attempts[tenant] += 1
    try:
        return f"200 {router.route(tenant, request)}"
    except Exception as exc:
        return f"{http_status(exc)} {type(exc).__name__}"


async def send_async(router: TenantRouter, tenant: str, request: str) -> tuple[str, float]:
    """Route one request from a task; return the answer and how long it took."""
    attempts[tenant] += 1
    started = time.perf_counter()
    try:
        answer = f"200 {await router.route_async(tenant, request)}"
    except Exception as exc:
        answer = f"{http_status(exc)} {type(exc).__name__}"
    return answer, time.perf_counter() - started


async def crowd(router: TenantRouter) -> None:
    """Everyone at once: initech hangs with both its slots taken, acme does not notice."""
    initech = [send_async(router, "initech", f"report {n}") for n in range(1, 4)]
    acme = [send_async(router, "acme", f"order {n}") for n in range(1, 21)]
    results = await asyncio.gather(*initech, *acme)
    for n, (answer, took) in enumerate(results[:3], start=1):
        print(f"  initech request {n}: {answer} after {took:.1f}s")
    acme_ok = sum(answer.startswith("200") for answer, _ in results[3:])
    slowest = max(took for _, took in results[3:])
    print(f"  acme: {acme_ok} of 20 ok while initech's slots were taken")
    print(f"  acme's slowest call: {slowest * 1000:.1f} ms (initech's took 300 ms)")


def main() -> None:
    """Three tenants: acme is healthy, globex's backend is down, initech's hangs."""
    router = TenantRouter(failure_threshold=3, recovery_timeout=0.2, max_concurrent=2)
    globex = FakeDependency("globex", result="ok")
    globex.down()
    router.add_tenant("acme", FakeDependency("acme", result="ok"))
    router.add_tenant("globex", globex)
    router.add_tenant("initech", FakeDependency("initech", result="ok", latency=0.3))

    def breakers() -> list[str]:
        return sorted(b.name for b in router.registry)

    print("1. tenants get their breaker on first use; unknown names get nothing")
    print(f"  breakers before any request: {breakers()}")
    print(f"  acme: {send(router, 'acme', 'order 0')}")
    print(f"  umbrella (not a tenant): {send(router, 'umbrella', 'order 0')}")
    print(f"  breakers now: {breakers()}")

    print("2. globex's backend fails every call; after 3 failures its breaker opens")
    for n in range(1, 6):
        print(f"  globex request {n}: {send(router, 'globex', f'order {n}')}")
    print(f"  globex's backend saw {globex.calls} of 5 requests")
    print(f"  acme meanwhile: {send(router, 'acme', 'order 1')}")

    print("3. initech's backend hangs 0.3 s with its 2 slots taken; acme never waits")
    asyncio.run(crowd(router))

    print("4. globex comes back; after the recovery timeout one probe closes its breaker")
    globex.up()
    time.sleep(0.25)  # longer than recovery_timeout
    print(f"  globex breaker: {router.lane('globex').breaker.state}")
    print(f"  globex request 6: {send(router, 'globex', 'order 6')}")

    print("5. each tenant's breaker accounts for every request it was sent")
    for breaker in router.registry:
        m = breaker.metrics
        tenant = breaker.name.removeprefix("tenant:")
        books = m.successful_calls + m.failed_calls + m.ignored_calls + m.rejected_calls
        print(
            f"  {breaker.name}: {m.state}, ok={m.successful_calls} failed={m.failed_calls} "
            f"bulkhead_full={m.ignored_calls} open_rejected={m.rejected_calls}; "
            f"{books} of {attempts[tenant]} requests"
        )


if __name__ == "__main__":
    main()
