"""Fixtures shared by the unit tests: a fake clock, a breaker factory, the metrics invariant."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engined import CircuitBreaker, CircuitBreakerMetrics, default_registry
from engined.testing import FakeClock


@pytest.fixture(autouse=True)
def _clear_default_registry() -> Iterator[None]:
    """Give every test an empty default registry, and leave one behind."""
    default_registry().clear()
    yield
    default_registry().clear()


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Switch threads often so races show up within a short test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time starting at zero."""
    return FakeClock()


@pytest.fixture
def make_breaker(clock: FakeClock) -> Callable[..., CircuitBreaker]:
    """Build a bare (unregistered) breaker on the test's fake clock."""

    def make(name: str = "dep", **config: Any) -> CircuitBreaker:
        config.setdefault("clock", clock)
        return CircuitBreaker(name, **config)

    return make


def _assert_invariant(m: CircuitBreakerMetrics) -> None:
    assert m.total_calls == m.successful_calls + m.failed_calls + m.ignored_calls, m
    for field in (
        "total_calls",
        "successful_calls",
        "failed_calls",
        "ignored_calls",
        "rejected_calls",
        "slow_calls",
        "consecutive_failures",
        "times_opened",
    ):
        assert getattr(m, field) >= 0, (field, m)


@pytest.fixture
def assert_invariant() -> Callable[[CircuitBreakerMetrics], None]:
    """Return the check total == successful + failed + ignored (and no counter negative)."""
    return _assert_invariant
