"""CircuitBreakerRegistry, default_registry() and the circuit_breaker() factory."""

from __future__ import annotations

import threading

import pytest

from engined import (
    CircuitBreaker,
    CircuitBreakerRegistry,
    CircuitState,
    circuit_breaker,
    default_registry,
)
from engined.testing import FakeClock


class Boom(Exception):
    """The recorded failure."""


def _raise() -> None:
    raise Boom


def test_get_or_create_returns_one_object_per_name(clock: FakeClock) -> None:
    """The same name gives the same breaker; another name gives another breaker."""
    registry = CircuitBreakerRegistry()
    first = registry.get_or_create("db", failure_threshold=2, clock=clock)
    assert isinstance(first, CircuitBreaker)
    assert first.name == "db"
    assert registry.get_or_create("db") is first
    assert registry.get_or_create("db", failure_threshold=2, clock=clock) is first
    other = registry.get_or_create("cache", clock=clock)
    assert other is not first
    assert len(registry) == 2


def test_get_or_create_applies_the_config(clock: FakeClock) -> None:
    """A breaker created by the registry uses the given configuration and clock."""
    registry = CircuitBreakerRegistry()
    breaker = registry.get_or_create("db", failure_threshold=1, recovery_timeout=4.0, clock=clock)
    with pytest.raises(Boom):
        breaker.call(_raise)
    assert breaker.state is CircuitState.OPEN
    clock.advance(4.0)
    assert breaker.state is CircuitState.HALF_OPEN


@pytest.mark.parametrize(
    "conflict",
    [{"failure_threshold": 3}, {"recovery_timeout": 1.0}, {"half_open_max_calls": 2}],
)
def test_conflicting_config_for_an_existing_name_raises(
    clock: FakeClock, conflict: dict[str, object]
) -> None:
    """Asking for an existing name with a different configuration raises ValueError naming it."""
    registry = CircuitBreakerRegistry()
    original = registry.get_or_create("db", failure_threshold=2, clock=clock)
    with pytest.raises(ValueError, match="db"):
        registry.get_or_create("db", **conflict)
    assert registry.get("db") is original


def test_get_returns_none_when_absent() -> None:
    """get(name) is None for an unknown name and the breaker once created."""
    registry = CircuitBreakerRegistry()
    assert registry.get("nope") is None
    breaker = registry.get_or_create("yes")
    assert registry.get("yes") is breaker


def test_remove_returns_the_breaker_then_none() -> None:
    """remove(name) returns the breaker it removed and None the second time."""
    registry = CircuitBreakerRegistry()
    breaker = registry.get_or_create("db")
    assert registry.remove("db") is breaker
    assert registry.remove("db") is None
    assert registry.get("db") is None
    assert "db" not in registry
    assert len(registry) == 0
    assert registry.get_or_create("db", failure_threshold=9) is not breaker


def test_len_iter_contains_and_clear() -> None:
    """Length counts breakers, iteration yields breakers, `in` tests names, clear() empties."""
    registry = CircuitBreakerRegistry()
    names = ["a", "b", "c"]
    created = {registry.get_or_create(n) for n in names}
    assert len(registry) == 3
    assert set(registry) == created
    assert all(isinstance(b, CircuitBreaker) for b in registry)
    assert "b" in registry
    assert "z" not in registry
    registry.clear()
    assert len(registry) == 0
    assert list(registry) == []


def test_concurrent_get_or_create_yields_one_breaker() -> None:
    """Threads racing on get_or_create for one name all receive the same breaker."""
    registry = CircuitBreakerRegistry()
    barrier = threading.Barrier(8, timeout=5)
    got: list[CircuitBreaker] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        breaker = registry.get_or_create("shared", failure_threshold=3)
        with lock:
            got.append(breaker)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(got) == 8
    assert len({id(b) for b in got}) == 1
    assert len(registry) == 1


def test_default_registry_is_a_singleton() -> None:
    """default_registry() returns the same registry every time."""
    assert default_registry() is default_registry()
    assert isinstance(default_registry(), CircuitBreakerRegistry)


def test_default_registry_starts_empty_in_each_test() -> None:
    """The autouse fixture hands every test an empty default registry."""
    assert len(default_registry()) == 0
    circuit_breaker("leftover", failure_threshold=7)


def test_default_registry_is_still_empty_in_the_next_test() -> None:
    """A breaker registered by an earlier test is gone, so its config cannot conflict."""
    assert len(default_registry()) == 0
    assert circuit_breaker("leftover", failure_threshold=8) is default_registry().get("leftover")


def test_bare_breaker_is_not_registered(clock: FakeClock) -> None:
    """Constructing CircuitBreaker directly leaves the default registry untouched."""
    CircuitBreaker("bare", clock=clock)
    assert "bare" not in default_registry()
    assert len(default_registry()) == 0


def test_circuit_breaker_factory_uses_the_default_registry(clock: FakeClock) -> None:
    """circuit_breaker(name) gets-or-creates the breaker in default_registry()."""
    breaker = circuit_breaker("svc", failure_threshold=1, clock=clock)
    assert isinstance(breaker, CircuitBreaker)
    assert default_registry().get("svc") is breaker
    assert circuit_breaker("svc") is breaker
    with pytest.raises(ValueError, match="svc"):
        circuit_breaker("svc", failure_threshold=2)


def test_circuit_breaker_factory_with_an_explicit_registry() -> None:
    """circuit_breaker(name, registry=r) registers in r, not in the default registry."""
    registry = CircuitBreakerRegistry()
    breaker = circuit_breaker("svc", registry=registry)
    assert registry.get("svc") is breaker
    assert "svc" not in default_registry()


async def test_circuit_breaker_factory_result_is_a_decorator(clock: FakeClock) -> None:
    """The breaker returned by circuit_breaker() decorates sync and async functions."""

    @circuit_breaker("deco", failure_threshold=2, clock=clock)
    def sync_op() -> None:
        raise Boom

    @circuit_breaker("deco")
    async def async_op() -> None:
        raise Boom

    with pytest.raises(Boom):
        sync_op()
    with pytest.raises(Boom):
        await async_op()
    breaker = default_registry().get("deco")
    assert breaker is not None
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.failed_calls == 2


def test_explicit_defaults_equal_left_out_ones() -> None:
    """circuit_breaker("db") then circuit_breaker("db", failure_threshold=5): one breaker.

    Once the second call raised ValueError although 5 is the default.
    """
    first = circuit_breaker("db")
    assert circuit_breaker("db", failure_threshold=5) is first
    assert circuit_breaker("db", recovery_timeout=30, record_exceptions=Exception) is first
    assert circuit_breaker("db", record_exceptions=(Exception,), ignore_exceptions=[]) is first


def test_exception_classes_compare_as_a_set() -> None:
    """The order of record_exceptions does not make a different configuration."""
    first = circuit_breaker("db", record_exceptions=(KeyError, OSError))
    assert circuit_breaker("db", record_exceptions=(OSError, KeyError)) is first


def _status_breaker(limit: int) -> CircuitBreaker:
    """A factory that builds the same decorator with a fresh lambda each time."""
    return circuit_breaker("http", result_is_failure=lambda status: status >= limit)


def test_a_factory_building_the_same_lambda_twice_gets_one_breaker() -> None:
    """Two lambdas from the same source with equal captured values are the same predicate."""
    first = _status_breaker(500)
    assert _status_breaker(500) is first


def test_a_lambda_capturing_another_value_is_a_conflict() -> None:
    """The same lambda capturing a different value is a different predicate: ValueError."""
    _status_breaker(500)
    with pytest.raises(ValueError, match="result_is_failure"):
        _status_breaker(400)


def test_a_different_predicate_is_a_conflict_naming_it() -> None:
    """Another function for result_is_failure is refused, naming the setting."""
    circuit_breaker("db", result_is_failure=lambda value: value is None)
    with pytest.raises(ValueError, match=r"'db'.*result_is_failure"):
        circuit_breaker("db", result_is_failure=lambda value: value == 0)


def test_conflict_message_names_every_differing_setting(clock: FakeClock) -> None:
    """The ValueError lists each setting that differs, and only those."""
    circuit_breaker("db", failure_threshold=2, clock=clock)
    with pytest.raises(ValueError, match="failure_threshold, recovery_timeout;") as caught:
        circuit_breaker("db", failure_threshold=3, recovery_timeout=1.0, clock=clock)
    assert "clock" not in str(caught.value)


def test_a_predicate_whose_captured_value_cannot_compare_is_a_conflict() -> None:
    """A captured value whose == raises makes the predicates differ rather than crash."""

    class Weird:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no")

        __hash__ = object.__hash__

    def build(marker: Weird) -> CircuitBreaker:
        return circuit_breaker("db", result_is_failure=lambda value: value is marker)

    build(Weird())
    with pytest.raises(ValueError, match="result_is_failure"):
        build(Weird())


def test_bad_config_for_an_existing_name_names_the_field() -> None:
    """An invalid value is refused naming it, even when the name already exists."""
    circuit_breaker("db")
    with pytest.raises(ValueError, match="failure_threshold"):
        circuit_breaker("db", failure_threshold=0)
