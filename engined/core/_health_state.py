"""One component's effective status and heal bookkeeping, driven by results and the clock.

This is pure logic: no tasks, no threads, no waiting. The manager feeds it results and
heal outcomes under its own serialization and asks it what is due; tests drive it with
plain numbers for time.

Effective status (DESIGN.md §5):

- UNKNOWN until decided. The first passing result makes it HEALTHY or DEGRADED at once;
  HEALTHY <-> DEGRADED follows the latest passing result.
- ``failure_threshold`` failing results in a row make it UNHEALTHY; before that it keeps
  its previous status. From UNHEALTHY it takes ``success_threshold`` passing results in a
  row to come back. An UNKNOWN result is neutral: counted, but it moves nothing.

Healing: while UNHEALTHY, attempt 1 (since the last reset) is due at once; after attempt
n ends, the next is due ``heal_delay(n)`` seconds later; after ``heal_max_attempts`` the
component is EXHAUSTED. Only :meth:`reset_heal` or ``heal_reset_after`` seconds of
sustained health re-arm it, so a crash loop that recovers for a moment keeps its backoff.
"""

from __future__ import annotations

import math

from engined.core._health_model import (
    ComponentHealth,
    ComponentType,
    HealState,
    HealthCheckConfig,
    HealthCheckResult,
    HealthStatus,
)
from engined.core._health_stats import StatsTally

__all__ = ["ComponentState"]

UNHEALTHY = HealthStatus.UNHEALTHY
UNKNOWN = HealthStatus.UNKNOWN


class ComponentState:
    """Mutable bookkeeping of one component; the manager serializes every call."""

    __slots__ = (
        "_has_heal",
        "_view",
        "check_count",
        "component_type",
        "config",
        "consecutive_failures",
        "consecutive_successes",
        "heal_attempts",
        "healing",
        "healthy_since",
        "last_heal_error",
        "last_result",
        "name",
        "next_heal_at",
        "status",
        "tally",
    )

    def __init__(
        self,
        name: str,
        component_type: ComponentType,
        config: HealthCheckConfig,
        *,
        has_heal: bool,
    ) -> None:
        self.name = name
        self.component_type = component_type
        self.config = config
        self._has_heal = has_heal
        self._view: ComponentHealth | None = None  # the last snapshot, while still true
        self.status = UNKNOWN
        self.last_result: HealthCheckResult | None = None
        self.check_count = 0
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.heal_attempts = 0
        self.healing = False
        self.next_heal_at = -math.inf  # attempt 1 is due at once, whatever the clock reads
        self.healthy_since: float | None = None
        self.last_heal_error: str | None = None
        self.tally = StatsTally()  # cumulative: checks by result, heals by outcome

    @property
    def critical(self) -> bool:
        """Whether this component's status counts in full in the roll-up."""
        return self.config.critical

    @property
    def has_heal(self) -> bool:
        """Whether a heal is registered for this component."""
        return self._has_heal

    @has_heal.setter
    def has_heal(self, value: bool) -> None:
        self._has_heal = value
        self._view = None

    def record(self, result: HealthCheckResult, now: float) -> HealthStatus | None:
        """Apply one check result; return the previous status if the effective one changed."""
        self._view = None
        self.check_count += 1
        self.tally.count_check(result.status)
        self.last_result = result
        previous = self.status
        if result.status.passing:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            if previous is not UNHEALTHY or (
                self.consecutive_successes >= self.config.success_threshold
            ):
                self.status = result.status
        elif result.status is UNHEALTHY:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            if self.consecutive_failures >= self.config.failure_threshold:
                self.status = UNHEALTHY
        self._track_health(now)
        return previous if self.status is not previous else None

    def _track_health(self, now: float) -> None:
        if not self.status.passing:
            self.healthy_since = None
            return
        if self.healthy_since is None:
            self.healthy_since = now
        elif self.heal_attempts and now - self.healthy_since >= self.config.heal_reset_after:
            self.reset_heal()

    def heal_due(self, now: float, *, parent_unhealthy: bool) -> bool:
        """Whether a heal should start now."""
        return (
            self.has_heal
            and self.status is UNHEALTHY
            and not self.healing
            and not parent_unhealthy
            and self.heal_attempts < self.config.heal_max_attempts
            and now >= self.next_heal_at
        )

    def heal_started(self) -> None:
        """A heal attempt begins."""
        self._view = None
        self.healing = True
        self.heal_attempts += 1

    def heal_finished(self, now: float, error: str | None) -> None:
        """A heal attempt ended at ``now``; ``error`` is the failure's type name, if any."""
        self._view = None
        self.healing = False
        self.last_heal_error = error
        self.tally.count_heal(error)
        if self.heal_attempts:  # zero: re-armed while it ran, so the next one is due at once
            self.next_heal_at = now + self.config.heal_delay(self.heal_attempts)

    def heal_abandoned(self) -> None:
        """A due heal never started (stopped while queued, or no thread): not an attempt.

        The attempt counted by :meth:`heal_started` is given back and the backoff is left
        as it was, so the next heal is due as this one was.
        """
        self._view = None
        self.healing = False
        if self.heal_attempts:  # zero: re-armed while it waited
            self.heal_attempts -= 1

    def reset_heal(self) -> None:
        """Re-arm healing: no attempts so far, the next one due at once."""
        self._view = None
        self.heal_attempts = 0
        self.next_heal_at = -math.inf
        self.last_heal_error = None

    def heal_state(self, now: float, *, parent_unhealthy: bool) -> HealState:
        """Where healing stands, for snapshots."""
        if self.healing:
            return HealState.HEALING
        if self.has_heal and self.heal_attempts >= self.config.heal_max_attempts:
            return HealState.EXHAUSTED
        if self.has_heal and self.status is UNHEALTHY:
            if parent_unhealthy:
                return HealState.SUPPRESSED
            if now < self.next_heal_at:
                return HealState.BACKOFF
        return HealState.IDLE

    def snapshot(self, now: float, *, parent_unhealthy: bool) -> ComponentHealth:
        """A frozen view of this component.

        The view is kept and handed out again until this state changes or its heal state
        moves with time or with a parent: a snapshot of many components then rebuilds only
        the few that changed, which matters when one is published every loop iteration.
        """
        heal_state = self.heal_state(now, parent_unhealthy=parent_unhealthy)
        view = self._view
        if view is not None and view.heal_state is heal_state:
            return view
        view = self._view = ComponentHealth(
            name=self.name,
            component_type=self.component_type,
            status=self.status,
            critical=self.config.critical,
            last_result=self.last_result,
            check_count=self.check_count,
            consecutive_failures=self.consecutive_failures,
            consecutive_successes=self.consecutive_successes,
            heal_attempts=self.heal_attempts,
            heal_state=heal_state,
            last_heal_error=self.last_heal_error,
            has_heal=self._has_heal,
            stats=self.tally.snapshot(),
        )
        return view
