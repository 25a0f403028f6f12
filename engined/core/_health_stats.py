"""Cumulative per-component counts: checks by result, heal attempts by outcome.

They only ever grow, from registration on (``reset_heal`` and heal re-arming leave them
alone), so they can be exported as Prometheus counters. The component's state tallies them
under the manager's lock; snapshots carry a frozen :class:`ComponentStats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:  # _health_model imports this module for ComponentHealth.stats
    from engined.core._health_model import HealthStatus

__all__ = [
    "HEAL_OUTCOMES",
    "NO_STATS",
    "ComponentStats",
    "HealOutcome",
    "StatsTally",
    "heal_outcome",
]

HealOutcome = Literal["success", "failure", "timeout", "cancelled"]

HEAL_OUTCOMES: Final[tuple[HealOutcome, ...]] = ("success", "failure", "timeout", "cancelled")
"""Every heal outcome, in the order metrics list them."""


def heal_outcome(error: str | None) -> HealOutcome:
    """Classify a finished heal attempt by its recorded error.

    ``None`` is a success; ``"timeout"`` and ``"cancelled"`` (stopped by ``stop()`` or a
    closed loop) are their own outcomes; anything else (an exception's type name,
    ``"returned False"``) is a failure.
    """
    if error is None:
        return "success"
    if error == "timeout":
        return "timeout"
    if error == "cancelled":
        return "cancelled"
    return "failure"


@dataclass(frozen=True, slots=True)
class ComponentStats:
    """How often one component was checked and healed since it was registered.

    Attributes:
        checks_healthy: Recorded check results that were HEALTHY.
        checks_degraded: ... DEGRADED.
        checks_unhealthy: ... UNHEALTHY (timeouts, stuck checks and exceptions included).
        checks_unknown: ... UNKNOWN (no worker thread included).
        heals_succeeded: Heal attempts that returned without raising and not ``False``.
        heals_failed: Heal attempts that raised or returned ``False``.
        heals_timed_out: Heal attempts that ran past ``heal_timeout``.
        heals_cancelled: Heal attempts ended by ``stop()`` or a closed event loop.
    """

    checks_healthy: int = 0
    checks_degraded: int = 0
    checks_unhealthy: int = 0
    checks_unknown: int = 0
    heals_succeeded: int = 0
    heals_failed: int = 0
    heals_timed_out: int = 0
    heals_cancelled: int = 0

    @property
    def checks(self) -> int:
        """Every recorded check result; equals the component's ``check_count``."""
        return sum(self._check_counts())

    @property
    def heals(self) -> int:
        """Every finished heal attempt."""
        return sum(self._heal_counts())

    def checks_with(self, status: HealthStatus) -> int:
        """Recorded check results with ``status``."""
        return self._check_counts()[_STATUS_INDEX[status]]

    def heals_with(self, outcome: HealOutcome) -> int:
        """Finished heal attempts with ``outcome``."""
        return self._heal_counts()[_OUTCOME_INDEX[outcome]]

    def _check_counts(self) -> tuple[int, int, int, int]:
        return (
            self.checks_healthy,
            self.checks_degraded,
            self.checks_unhealthy,
            self.checks_unknown,
        )

    def _heal_counts(self) -> tuple[int, int, int, int]:
        return (self.heals_succeeded, self.heals_failed, self.heals_timed_out, self.heals_cancelled)


NO_STATS: Final = ComponentStats()
"""All zeros: the default of a snapshot built without counts (frozen, so safe to share)."""

# Keyed by the statuses' values: HealthStatus is a StrEnum, so its members find them.
_STATUS_INDEX = {"healthy": 0, "degraded": 1, "unhealthy": 2, "unknown": 3}
_OUTCOME_INDEX = {outcome: index for index, outcome in enumerate(HEAL_OUTCOMES)}


class StatsTally:
    """The mutable counts behind :class:`ComponentStats`; its owner serializes every call."""

    __slots__ = ("_checks", "_heals")

    def __init__(self) -> None:
        self._checks = [0, 0, 0, 0]
        self._heals = [0, 0, 0, 0]

    def count_check(self, status: HealthStatus) -> None:
        """One check result with ``status`` was recorded."""
        self._checks[_STATUS_INDEX[status]] += 1

    def count_heal(self, error: str | None) -> None:
        """One heal attempt finished with ``error`` (``None`` for a success)."""
        self._heals[_OUTCOME_INDEX[heal_outcome(error)]] += 1

    def snapshot(self) -> ComponentStats:
        """The counts now, frozen."""
        return ComponentStats(*self._checks, *self._heals)
