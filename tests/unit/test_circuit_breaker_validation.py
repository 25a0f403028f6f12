"""Constructor validation: every bad value is refused with an error naming the parameter."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engined import CircuitBreaker, CircuitBreakerRegistry, CircuitState, circuit_breaker
from engined.testing import FakeClock

BAD: list[Any] = [
    # (param named in the message, config)
    ("failure_threshold", {"failure_threshold": 0}),
    ("failure_threshold", {"failure_threshold": -3}),
    ("failure_threshold", {"failure_threshold": True}),
    ("failure_threshold", {"failure_threshold": 2.5}),
    ("failure_threshold", {"failure_threshold": "5"}),
    ("failure_rate_threshold", {"failure_rate_threshold": 0}),
    ("failure_rate_threshold", {"failure_rate_threshold": 0.0}),
    ("failure_rate_threshold", {"failure_rate_threshold": -0.5}),
    ("failure_rate_threshold", {"failure_rate_threshold": 1.01}),
    ("failure_rate_threshold", {"failure_rate_threshold": 50}),
    ("failure_rate_threshold", {"failure_rate_threshold": "0.5"}),
    ("slow_call_rate_threshold", {"slow_call_duration": 1.0, "slow_call_rate_threshold": 0}),
    ("slow_call_rate_threshold", {"slow_call_duration": 1.0, "slow_call_rate_threshold": 80}),
    ("slow_call_rate_threshold", {"slow_call_duration": 1.0, "slow_call_rate_threshold": -1}),
    ("slow_call_duration", {"slow_call_rate_threshold": 0.5}),
    ("slow_call_duration", {"slow_call_duration": 0}),
    ("slow_call_duration", {"slow_call_duration": -1.0}),
    ("window_size", {"window_size": 0}),
    ("window_size", {"window_size": -10}),
    ("window_size", {"window_size": True}),
    ("window_size", {"window_size": 10.5}),
    ("window_duration", {"window_duration": 0}),
    ("window_duration", {"window_duration": -5.0}),
    ("window_duration", {"window_duration": 5e-324}),  # once a ZeroDivisionError on first call
    ("window_duration", {"window_duration": 1e-4}),
    ("clock", {"clock": None}),
    ("clock", {"clock": object()}),
    ("clock", {"clock": FakeClock}),  # the class, not an instance
    ("record_exceptions", {"record_exceptions": 42}),
    ("ignore_exceptions", {"ignore_exceptions": "KeyError"}),
    ("minimum_calls", {"minimum_calls": 0}),
    ("minimum_calls", {"minimum_calls": -1}),
    ("minimum_calls", {"minimum_calls": True}),
    ("recovery_timeout", {"recovery_timeout": 0}),
    ("recovery_timeout", {"recovery_timeout": -1.0}),
    ("recovery_timeout", {"recovery_timeout": "30"}),
    ("recovery_backoff", {"recovery_backoff": 0.5}),
    ("recovery_backoff", {"recovery_backoff": 0}),
    ("recovery_backoff", {"recovery_backoff": -2.0}),
    ("max_recovery_timeout", {"recovery_timeout": 30.0, "max_recovery_timeout": 10.0}),
    ("max_recovery_timeout", {"max_recovery_timeout": 0}),
    ("half_open_max_calls", {"half_open_max_calls": 0}),
    ("half_open_max_calls", {"half_open_max_calls": -1}),
    ("half_open_max_calls", {"half_open_max_calls": True}),
    ("success_threshold", {"success_threshold": 0}),
    ("success_threshold", {"success_threshold": -2}),
    ("success_threshold", {"success_threshold": True}),
    ("record_exceptions", {"record_exceptions": ("ValueError",)}),
    ("record_exceptions", {"record_exceptions": (1,)}),
    ("record_exceptions", {"record_exceptions": (int,)}),
    ("record_exceptions", {"record_exceptions": (ValueError, "KeyError")}),
    ("ignore_exceptions", {"ignore_exceptions": ("KeyError",)}),
    ("ignore_exceptions", {"ignore_exceptions": (42,)}),
    ("ignore_exceptions", {"ignore_exceptions": (str,)}),
    ("result_is_failure", {"result_is_failure": 42}),
    ("result_is_failure", {"result_is_failure": "status >= 500"}),
    ("name", {"name": ""}),
]


@pytest.mark.parametrize(("param", "config"), [pytest.param(p, c, id=f"{p}={c}") for p, c in BAD])
def test_bad_config_is_refused_naming_the_parameter(
    clock: FakeClock, param: str, config: dict[str, Any]
) -> None:
    """A bad constructor argument raises ValueError or TypeError whose message names it."""
    config = dict(config)
    name = config.pop("name", "dep")
    with pytest.raises((ValueError, TypeError), match=re.escape(param)):
        CircuitBreaker(name, clock=clock, **config)


@pytest.mark.parametrize(
    ("param", "config"), [pytest.param(p, c, id=f"{p}={c}") for p, c in BAD[:6]]
)
def test_registry_refuses_bad_config_and_registers_nothing(
    clock: FakeClock, param: str, config: dict[str, Any]
) -> None:
    """get_or_create validates like the constructor and leaves no half-made breaker behind."""
    registry = CircuitBreakerRegistry()
    with pytest.raises((ValueError, TypeError), match=re.escape(param)):
        registry.get_or_create("dep", clock=clock, **config)
    assert "dep" not in registry
    with pytest.raises((ValueError, TypeError), match=re.escape(param)):
        circuit_breaker("dep", clock=clock, **config)


@pytest.mark.parametrize(
    "config",
    [
        {"failure_threshold": None},
        {"failure_threshold": 1},
        {"failure_rate_threshold": 1.0},
        {"failure_rate_threshold": 1},
        {"failure_rate_threshold": 0.001},
        {"slow_call_duration": 0.001, "slow_call_rate_threshold": 1.0},
        {"slow_call_duration": 2.0},
        {"window_size": 1, "minimum_calls": 1},
        {"window_size": 5, "minimum_calls": 50},
        {"window_duration": 0.5},
        {"recovery_timeout": 0.001},
        {"recovery_backoff": 1.0},
        {"recovery_backoff": 2, "max_recovery_timeout": 30.0},
        {"recovery_timeout": 30.0, "max_recovery_timeout": 30.0},
        {"half_open_max_calls": 1, "success_threshold": 3},
        {"record_exceptions": ()},
        {"record_exceptions": (OSError, TimeoutError), "ignore_exceptions": (ConnectionError,)},
        {"result_is_failure": bool},
        {"result_is_failure": lambda r: r is None},
    ],
    ids=repr,
)
def test_boundary_config_is_accepted(clock: FakeClock, config: dict[str, Any]) -> None:
    """Values at the edge of each valid range are accepted and give a CLOSED breaker."""
    breaker = CircuitBreaker("dep", clock=clock, **config)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(lambda: 1) == 1


def test_config_is_keyword_only(clock: FakeClock) -> None:
    """Everything after the name must be passed by keyword."""
    with pytest.raises(TypeError):
        CircuitBreaker("dep", 5, clock=clock)  # type: ignore[misc]
