"""Scenario: a multi-tenant router, on a FakeClock (issue 11, scenario 5).

The router is the one in ``examples/tenant_router.py``, loaded from that file so the tests
check exactly what users copy. Time-dependent behaviour (a tenant's breaker recovering)
runs on virtual time; the real-time, concurrent side is in
``tests/integration/test_scenario_tenant_router.py`` (test modules need distinct basenames:
pytest imports them by basename, so this one is ``..._fakeclock``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from engined import (
    BulkheadFullError,
    CircuitBreakerOpenError,
    CircuitBreakerRegistry,
    CircuitState,
    RejectedError,
    default_registry,
)
from engined.testing import FakeClock, FakeDependency

EXAMPLE = Path(__file__).parents[2] / "examples" / "tenant_router.py"


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


@pytest.fixture
def example() -> ModuleType:
    """The example module (its router, its error and its status mapping)."""
    return load_example()


@pytest.fixture
def registry() -> CircuitBreakerRegistry:
    """A registry of the test's own."""
    return CircuitBreakerRegistry()


def two_tenants(
    example: ModuleType, registry: CircuitBreakerRegistry, clock: FakeClock, **config: Any
) -> tuple[Any, FakeDependency[str], FakeDependency[str]]:
    """A router with a healthy tenant ``acme`` and a tenant ``globex`` whose backend is down."""
    config = {"failure_threshold": 3, "recovery_timeout": 30.0} | config
    router = example.TenantRouter(registry=registry, clock=clock, **config)
    acme = FakeDependency("acme", result="ok")
    globex = FakeDependency("globex", result="ok")
    globex.down()
    router.add_tenant("acme", acme, max_concurrent=2)
    router.add_tenant("globex", globex, max_concurrent=2)
    return router, acme, globex


def test_a_failing_tenant_recovers_after_its_recovery_timeout_alone(
    example: ModuleType, registry: CircuitBreakerRegistry, clock: FakeClock
) -> None:
    """A failing tenant's breaker refuses for exactly recovery_timeout, then a probe closes it."""
    router, acme, globex = two_tenants(example, registry, clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            router.route("globex", "order")
    assert router.lane("globex").breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError) as refused:
        router.route("globex", "order")
    assert refused.value.retry_after == 30.0
    assert router.route("acme", "order") == "ok"  # the other tenant is served meanwhile

    clock.advance(29.5)
    with pytest.raises(CircuitBreakerOpenError) as refused:
        router.route("globex", "order")
    assert refused.value.retry_after == pytest.approx(0.5)
    assert globex.calls == 3  # refusals never reached its backend

    globex.up()
    clock.advance(0.5)
    assert router.lane("globex").breaker.state is CircuitState.HALF_OPEN
    assert router.route("globex", "probe") == "ok"
    assert router.lane("globex").breaker.state is CircuitState.CLOSED
    acme_books = router.lane("acme").breaker.metrics
    assert (acme_books.state, acme_books.successful_calls, dict(acme_books.transitions)) == (
        CircuitState.CLOSED,
        1,
        {},
    )
    assert acme.calls == 1


async def test_a_tenant_whose_probe_fails_opens_again_for_another_recovery_timeout(
    example: ModuleType, registry: CircuitBreakerRegistry, clock: FakeClock
) -> None:
    """From tasks too: a failed probe re-opens only that tenant's breaker, for 30 s more."""
    router, _acme, globex = two_tenants(example, registry, clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await router.route_async("globex", "order")
    clock.advance(30.0)
    with pytest.raises(ConnectionError):
        await router.route_async("globex", "probe")
    books = router.lane("globex").breaker.metrics
    assert (books.state, books.times_opened, books.retry_after) == (CircuitState.OPEN, 2, 30.0)
    assert await router.route_async("acme", "order") == "ok"
    assert router.lane("acme").breaker.metrics.times_opened == 0
    assert globex.calls == 4


def test_a_full_bulkhead_refuses_a_tenant_without_opening_its_breaker(
    example: ModuleType, registry: CircuitBreakerRegistry, clock: FakeClock
) -> None:
    """A hundred refusals of a full bulkhead are ignored calls: the breaker stays CLOSED."""
    router, _acme, _globex = two_tenants(example, registry, clock)
    router.add_tenant("initech", FakeDependency("initech", result="ok"), max_concurrent=2)
    lane = router.lane("initech")
    with lane.bulkhead, lane.bulkhead:  # both slots taken, as by two hung calls
        for _ in range(100):
            with pytest.raises(BulkheadFullError) as refused:
                router.route("initech", "report")
        assert router.route("acme", "order") == "ok"  # acme's bulkhead is its own
    assert (refused.value.name, refused.value.max_concurrent) == ("tenant:initech", 2)
    books = lane.breaker.metrics
    assert (books.state, books.ignored_calls, books.failed_calls) == (CircuitState.CLOSED, 100, 0)
    assert lane.bulkhead.rejected == 100
    assert router.route("initech", "report") == "ok"  # slots back: served again


def test_tenants_get_their_breaker_in_the_default_registry_on_first_use(
    example: ModuleType, clock: FakeClock
) -> None:
    """No breaker before a tenant's first request; an unknown tenant never creates one."""
    router = example.TenantRouter(clock=clock)
    router.add_tenant("acme", FakeDependency("acme", result="ok"))
    assert list(default_registry()) == []
    with pytest.raises(example.UnknownTenantError) as unknown:
        router.route("umbrella", "order")
    assert isinstance(unknown.value, LookupError)
    assert list(default_registry()) == []
    assert router.route("acme", "order") == "ok"
    assert [b.name for b in default_registry()] == ["tenant:acme"]
    assert default_registry().get("tenant:acme") is router.lane("acme").breaker


def test_a_removed_tenant_is_refused_and_its_breaker_forgotten(
    example: ModuleType, registry: CircuitBreakerRegistry, clock: FakeClock
) -> None:
    """remove_tenant drops the breaker from the registry; adding the tenant back starts afresh."""
    router, _acme, globex = two_tenants(example, registry, clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            router.route("globex", "order")
    old = router.lane("globex").breaker
    router.remove_tenant("globex")
    assert [b.name for b in registry] == []  # acme never sent a request: no breaker
    with pytest.raises(example.UnknownTenantError):
        router.route("globex", "order")
    globex.up()
    router.add_tenant("globex", globex)
    assert router.route("globex", "order") == "ok"
    fresh = router.lane("globex").breaker
    assert fresh is not old
    assert (fresh.state, old.state) == (CircuitState.CLOSED, CircuitState.OPEN)
    assert registry.get("tenant:globex") is fresh


def test_a_rejected_tenant_sees_a_typed_error_and_a_gateway_status(
    example: ModuleType, registry: CircuitBreakerRegistry, clock: FakeClock
) -> None:
    """Unknown 404, backend failure 502, open breaker 503 (retry_after), full bulkhead 429."""
    router, _acme, _globex = two_tenants(example, registry, clock, failure_threshold=1)
    seen: list[tuple[int, str]] = []
    for tenant in ("umbrella", "globex", "globex"):
        try:
            router.route(tenant, "order")
        except Exception as exc:
            seen.append((example.http_status(exc), type(exc).__name__))
    lane = router.lane("acme")
    with lane.bulkhead, lane.bulkhead, pytest.raises(BulkheadFullError) as full:
        router.route("acme", "order")
    seen.append((example.http_status(full.value), type(full.value).__name__))
    assert seen == [
        (404, "UnknownTenantError"),
        (502, "ConnectionError"),
        (503, "CircuitBreakerOpenError"),
        (429, "BulkheadFullError"),
    ]
    with pytest.raises(CircuitBreakerOpenError) as refused:
        router.route("globex", "order")
    assert (refused.value.name, refused.value.state) == ("tenant:globex", CircuitState.OPEN)
    # One except clause covers both refusals: neither reached the tenant's backend.
    assert isinstance(refused.value, RejectedError)
    assert isinstance(full.value, RejectedError)


def test_add_tenant_refuses_a_concurrency_limit_below_one(
    example: ModuleType, registry: CircuitBreakerRegistry
) -> None:
    """A bad limit is refused when the tenant is added, not at its first request."""
    router = example.TenantRouter(registry=registry)
    with pytest.raises(ValueError, match="max_concurrent"):
        router.add_tenant("acme", FakeDependency("acme", result="ok"), max_concurrent=0)
    with pytest.raises(example.UnknownTenantError):
        router.route("acme", "order")


def test_two_routers_with_different_settings_conflict_on_a_shared_tenant_name(
    example: ModuleType, registry: CircuitBreakerRegistry, clock: FakeClock
) -> None:
    """One registry, one ``tenant:acme``: a second router with another threshold is refused."""
    first, _acme, _globex = two_tenants(example, registry, clock)
    second, _, _ = two_tenants(example, registry, clock, failure_threshold=10)
    assert first.route("acme", "order") == "ok"
    with pytest.raises(ValueError, match="failure_threshold"):
        second.route("acme", "order")
