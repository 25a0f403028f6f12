"""A reload's diff: unchanged checks keep their state, changed ones restart, removed ones go."""

from __future__ import annotations

from pathlib import Path

from engined import HealthCheckManager, HealthCheckResult, HealthStatus
from engined.daemon._build import Registration, register
from engined.daemon._config_load import parse_config
from engined.daemon._reload import apply, plan
from engined.testing import FakeClock

BASE = """\
[[checks]]
name = "a"
type = "tcp"
target = "127.0.0.1:1"
heal = { type = "command", command = ["true"] }

[[checks]]
name = "b"
type = "tcp"
target = "127.0.0.1:2"

[[checks]]
name = "c"
type = "tcp"
target = "127.0.0.1:3"
"""

NEW = """\
[[checks]]
name = "a"
type = "tcp"
target = "127.0.0.1:1"
heal = { type = "command", command = ["true"] }

[[checks]]
name = "b"
type = "tcp"
target = "127.0.0.1:2"
interval = 5.0

[[checks]]
name = "d"
type = "tcp"
target = "127.0.0.1:4"
"""


class Down:
    """A check that always fails, counting its runs."""

    async def __call__(self) -> bool:
        return False


async def failed_heal(trigger: HealthCheckResult) -> bool:
    return False


def registrations(text: str) -> dict[str, Registration]:
    config = parse_config(text, Path("/etc/engined.toml"))
    return {
        spec.name: Registration(spec, Down(), failed_heal if spec.heal else None, spec.settings())
        for spec in config.checks
    }


def test_plan_sorts_names_into_kept_changed_added_and_removed() -> None:
    """Equal entries are kept, a changed setting is a change, new and gone names are seen."""
    old = parse_config(BASE, Path("/x.toml")).checks
    new = parse_config(NEW, Path("/x.toml")).checks
    change = plan(old, new)
    assert (change.kept, change.changed, change.added, change.removed) == (
        ("a",),
        ("b",),
        ("d",),
        ("c",),
    )
    assert not change.touches_nothing
    assert plan(old, old).touches_nothing


def test_a_changed_heal_is_a_change() -> None:
    """The heal is part of a check's settings: a different heal command re-registers it."""
    old = parse_config(BASE, Path("/x.toml")).checks
    new = parse_config(BASE.replace('["true"]', '["false"]'), Path("/x.toml")).checks
    assert plan(old, new).changed == ("a",)


async def test_apply_keeps_the_state_and_heal_history_of_unchanged_checks() -> None:
    """After apply, a kept component has its counts and heal attempts; others start over."""
    manager = HealthCheckManager(clock=FakeClock())
    before = registrations(BASE)
    register(manager, before)
    await manager.run_all()
    await manager.run_all()
    a_before = manager.component("a")
    assert (a_before.check_count, a_before.heal_attempts) == (2, 1)

    after = registrations(NEW)
    change = plan([r.spec for r in before.values()], [r.spec for r in after.values()])
    apply(manager, change, after)

    health = manager.snapshot()
    assert sorted(health.components) == ["a", "b", "d"]
    a = health.components["a"]
    assert (a.check_count, a.heal_attempts, a.status) == (2, 1, HealthStatus.UNHEALTHY)
    assert health.components["b"].check_count == 0
    assert health.components["d"].check_count == 0
    await manager.stop()
