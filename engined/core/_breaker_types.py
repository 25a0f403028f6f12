"""Values a circuit breaker hands out: its states, its error, its metrics and its events."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engined.core.errors import RejectedError

__all__ = ["CircuitBreakerMetrics", "CircuitBreakerOpenError", "CircuitState", "StateChange"]


class CircuitState(enum.StrEnum):
    """Where a breaker stands; the values are the lower-case names used in metrics and RPCs."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class CircuitBreakerOpenError(RejectedError):
    """Raised instead of calling the protected function while the breaker refuses calls.

    Args:
        name: The breaker's name.
        state: The state that refused the call (OPEN, HALF_OPEN with every probe taken,
            or FORCED_OPEN).
        retry_after: Seconds until the breaker will let a probe through, or ``None``
            when that is not known.

    A fresh instance is raised per rejected call, so tracebacks never pile up on a shared
    object. The attributes are read from ``args`` rather than set in ``__init__``: a
    rejection is on the hot path and a Python-level ``__init__`` would double its cost.
    """

    __slots__ = ()

    args: tuple[str, CircuitState, float | None]

    if TYPE_CHECKING:
        # Only declared: BaseException's C initializer stores the arguments in ``args``.
        def __init__(
            self, name: str, state: CircuitState, retry_after: float | None = None, /
        ) -> None: ...

    @property
    def name(self) -> str:
        """The name of the breaker that refused the call."""
        return self.args[0]

    @property
    def state(self) -> CircuitState:
        """The state that refused the call."""
        return self.args[1]

    @property
    def retry_after(self) -> float | None:
        """Seconds until a probe will be admitted, or ``None`` when unknown."""
        return self.args[2] if len(self.args) > 2 else None

    def __str__(self) -> str:
        retry_after = self.retry_after
        when = f"; retry after {retry_after:.3f}s" if retry_after is not None else ""
        return f"circuit breaker {self.name!r} is {self.state.value}{when}"


@dataclass(frozen=True, slots=True)
class StateChange:
    """A breaker moved from one state to another.

    Attributes:
        name: The breaker's name.
        from_state: The state it left.
        to_state: The state it entered.
        at: The breaker clock's ``monotonic()`` reading when it happened.
    """

    name: str
    from_state: CircuitState
    to_state: CircuitState
    at: float


@dataclass(frozen=True, slots=True)
class CircuitBreakerMetrics:
    """A consistent snapshot of one breaker, taken under its lock.

    Cumulative counters never go down, not even on ``reset()``, so they can be exported as
    Prometheus counters. ``total_calls == successful_calls + failed_calls + ignored_calls``
    always holds; rejected calls never ran, so they are not calls.

    Attributes:
        name: The breaker's name.
        state: The state at the time of the snapshot.
        total_calls: Calls that ran and finished (cancelled calls are not counted).
        successful_calls: Calls the breaker counted as successes.
        failed_calls: Calls the breaker counted as failures.
        ignored_calls: Calls that raised one of ``ignore_exceptions``.
        rejected_calls: Calls refused without running.
        slow_calls: Calls slower than ``slow_call_duration``, successful or not.
        consecutive_failures: Failures since the last success in the current state.
        failure_rate: Failed share of the window in [0, 1], or ``None`` below ``minimum_calls``.
        slow_call_rate: Slow share of the window in [0, 1], or ``None`` below ``minimum_calls``.
        times_opened: How many times the breaker entered OPEN.
        retry_after: Seconds left in OPEN, or ``None`` in any other state.
        transitions: Cumulative count of each ``(from_state, to_state)`` transition.
    """

    name: str
    state: CircuitState
    total_calls: int
    successful_calls: int
    failed_calls: int
    ignored_calls: int
    rejected_calls: int
    slow_calls: int
    consecutive_failures: int
    failure_rate: float | None
    slow_call_rate: float | None
    times_opened: int
    retry_after: float | None
    transitions: Mapping[tuple[CircuitState, CircuitState], int]
