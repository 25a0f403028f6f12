"""Bad arguments to the health manager fail at once, naming the parameter (DESIGN.md §9).

``register(config={...})`` used to fail later with an AttributeError on ``depends_on``,
``HealthCheckManager(clock=None)`` on the first read of the time, and a bad
``component_type`` given to ``@manager.check(...)`` only at decoration. ``register`` now
also takes the config keywords ``@manager.check`` takes.
"""

from __future__ import annotations

from typing import Any

import pytest

from engined import (
    ComponentType,
    HealthCheckConfig,
    HealthCheckManager,
    HealthStatus,
)
from engined.testing import FakeClock


def _ok() -> bool:
    return True


@pytest.fixture
def manager() -> HealthCheckManager:
    """A manager on a fake clock; nothing in these tests starts it."""
    return HealthCheckManager(clock=FakeClock())


@pytest.mark.parametrize(
    ("options", "error", "parameter"),
    [
        ({"clock": None}, TypeError, "clock"),
        ({"clock": object()}, TypeError, "clock"),
        ({"max_concurrent_heals": 0}, ValueError, "max_concurrent_heals"),
        ({"max_concurrent_heals": True}, TypeError, "max_concurrent_heals"),
        ({"max_concurrent_heals": 2.0}, TypeError, "max_concurrent_heals"),
        ({"max_check_threads": 0}, ValueError, "max_check_threads"),
        ({"max_check_threads": None}, TypeError, "max_check_threads"),
        ({"rng": 42}, TypeError, "rng"),
        ({"rng": "seed"}, TypeError, "rng"),
    ],
)
def test_constructor_refuses_bad_arguments_naming_them(
    options: dict[str, Any], error: type[Exception], parameter: str
) -> None:
    """Each constructor argument is checked at construction; the message names it."""
    with pytest.raises(error, match=parameter):
        HealthCheckManager(**options)


def test_constructor_defaults_allow_sixty_four_check_threads() -> None:
    """The documented default cap of sync check threads is 64, and 1 is accepted."""
    assert HealthCheckManager(max_check_threads=1) is not None
    defaults = HealthCheckManager.__init__.__kwdefaults__
    assert defaults is not None
    assert defaults["max_check_threads"] == 64


@pytest.mark.parametrize(
    "config", [{"interval": 5.0}, {}, "interval=5", 5.0], ids=["dict", "empty", "str", "float"]
)
def test_register_refuses_a_config_that_is_not_a_health_check_config(
    config: object, manager: HealthCheckManager
) -> None:
    """config={...} is a TypeError naming config (and the keyword form), registering nothing."""
    with pytest.raises(TypeError, match="config must be a HealthCheckConfig") as info:
        manager.register("db", _ok, config=config)  # type: ignore[arg-type]
    assert "keyword" in str(info.value)
    assert dict(manager.snapshot().components) == {}


async def test_register_takes_the_config_keywords_of_the_check_decorator(
    manager: HealthCheckManager,
) -> None:
    """register(name, check, failure_threshold=2, critical=False) configures like a config=."""
    manager.register("db", lambda: False, failure_threshold=2, critical=False, interval=5.0)
    first = await manager.run_check("db")
    second = await manager.run_check("db")
    assert (first.status, second.status) == (HealthStatus.UNKNOWN, HealthStatus.UNHEALTHY)
    assert second.critical is False


def test_register_refuses_config_and_keywords_together(manager: HealthCheckManager) -> None:
    """Giving config= and config keywords is a TypeError naming both; nothing is registered."""
    with pytest.raises(TypeError, match="config=") as info:
        manager.register("db", _ok, config=HealthCheckConfig(), interval=5.0)
    assert "interval" in str(info.value)
    assert dict(manager.snapshot().components) == {}


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        ({"intervall": 5.0}, "intervall"),
        ({"interval": 0}, "interval"),
        ({"critical": 1}, "critical"),
    ],
)
def test_register_refuses_bad_config_keywords_naming_them(
    keywords: dict[str, Any], field: str, manager: HealthCheckManager
) -> None:
    """A keyword that is no field, or a bad value, is a clean ValueError naming it."""
    with pytest.raises(ValueError, match=field) as info:
        manager.register("db", _ok, **keywords)
    assert "pydantic" not in str(info.value)
    assert dict(manager.snapshot().components) == {}


@pytest.mark.parametrize("component_type", ["DATABASE", "Database", "message_QUEUE"])
async def test_component_type_is_accepted_in_any_case(
    component_type: str, manager: HealthCheckManager
) -> None:
    """Both register and @manager.check take a type name in any case."""
    manager.register("a", _ok, component_type=component_type)
    manager.check("b", component_type=component_type)(_ok)
    expected = ComponentType(component_type.lower())
    assert manager.component("a").component_type is expected
    assert manager.component("b").component_type is expected
    assert (await manager.run_check("a")).last_result.component_type is expected  # type: ignore[union-attr]


@pytest.mark.parametrize("component_type", ["mainframe", None, 3, ""])
def test_bad_component_type_is_refused_by_register_listing_the_values(
    component_type: object, manager: HealthCheckManager
) -> None:
    """A bad or None component_type is a ValueError naming it and listing every valid value."""
    with pytest.raises(ValueError, match="component_type") as info:
        manager.register("db", _ok, component_type=component_type)  # type: ignore[arg-type]
    for member in ComponentType:
        assert member.value in str(info.value)
    assert dict(manager.snapshot().components) == {}


def test_bad_component_type_fails_at_the_check_call_not_at_decoration(
    manager: HealthCheckManager,
) -> None:
    """@manager.check(component_type="mainframe") raises where it is written."""
    with pytest.raises(ValueError, match="component_type"):
        manager.check("db", component_type="mainframe")
    assert dict(manager.snapshot().components) == {}


@pytest.mark.parametrize(("name", "error"), [("", ValueError), (None, TypeError), (3, TypeError)])
def test_bad_name_fails_at_the_check_call(
    name: object, error: type[Exception], manager: HealthCheckManager
) -> None:
    """@manager.check with a bad name raises at the call, naming the parameter."""
    with pytest.raises(error, match="name"):
        manager.check(name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "error", "parameter"),
    [
        ({"check": None}, TypeError, "check"),
        ({"check": "db"}, TypeError, "check"),
        ({"heal": 5}, TypeError, "heal"),
        ({"name": ""}, ValueError, "name"),
        ({"name": None}, TypeError, "name"),
    ],
)
def test_register_refuses_bad_arguments_naming_them(
    arguments: dict[str, Any],
    error: type[Exception],
    parameter: str,
    manager: HealthCheckManager,
) -> None:
    """Every register argument is checked before anything is registered."""
    call: dict[str, Any] = {"name": "db", "check": _ok, **arguments}
    with pytest.raises(error, match=parameter):
        manager.register(**call)
    assert dict(manager.snapshot().components) == {}
