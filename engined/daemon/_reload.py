"""SIGHUP: replace the running checks with a new config's, keeping what did not change.

A reload is all or nothing. The new file is read, validated and built in full first
(:func:`engined.daemon._config_load.load_config`, :func:`engined.daemon._build.build`);
a config refused at any step is logged in one line naming the key, and the running one
stays as it was. A valid one is applied as a :class:`Plan`:

- a check whose entry is equal in every key (type, target, every setting, the heal) is
  kept: it stays registered, so its status, counters and heal history carry on;
- a check that is gone is unregistered (a running check or heal is cancelled);
- a changed check is unregistered and registered anew (its history starts over), and a
  new one is registered.

Nothing can fail half-way: the new set has no duplicate, unknown parent or cycle, every
changed check is unregistered before any is registered (the graph only ever holds a
subset of the new one), and every callable was built before the manager was touched.
The ``[server]`` section (ports, TLS, token) is bound to the running servers; a change
there is logged and takes effect on the next start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engined import HealthCheckManager
from engined.daemon._build import AnyCheck, Registration, register

__all__ = ["Plan", "apply", "plan"]

_log = logging.getLogger("engined.daemon")


@dataclass(frozen=True, slots=True)
class Plan:
    """What a reload does, by component name (each tuple in the new file's order).

    Attributes:
        kept: Unchanged: left registered with their state.
        removed: Gone from the new config: unregistered.
        changed: Different settings: unregistered, then registered anew.
        added: New names: registered.
    """

    kept: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def touches_nothing(self) -> bool:
        """Whether applying it leaves the manager as it is."""
        return not (self.removed or self.changed or self.added)


def plan(old: Sequence[AnyCheck], new: Sequence[AnyCheck]) -> Plan:
    """Compare the running entries with the new ones, key by key."""
    before = {spec.name: spec for spec in old}
    after = {spec.name: spec for spec in new}
    return Plan(
        kept=tuple(n for n, spec in after.items() if n in before and before[n] == spec),
        removed=tuple(n for n in before if n not in after),
        changed=tuple(n for n, spec in after.items() if n in before and before[n] != spec),
        added=tuple(n for n in after if n not in before),
    )


def apply(
    manager: HealthCheckManager, change: Plan, registrations: Mapping[str, Registration]
) -> None:
    """Carry ``change`` out on ``manager``; ``registrations`` holds every new check, built.

    Raises:
        KeyError: A name to register is missing from ``registrations`` (a bug, not a
            config error: :func:`plan` and the builder saw the same config).
    """
    fresh = {name: registrations[name] for name in (*change.changed, *change.added)}
    for name in (*change.removed, *change.changed):
        try:
            manager.unregister(name)
        except KeyError:
            _log.warning("reload: %s was not registered", name)
    register(manager, fresh)
