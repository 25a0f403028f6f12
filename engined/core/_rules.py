"""The rules that open a CLOSED breaker: consecutive failures, failure rate, slow-call rate.

``TripRules`` owns the consecutive-failure count and the sliding window, and answers one
question after each recorded call: does a rule fire? The breaker holds its lock around
every method here.
"""

from __future__ import annotations

import math

from engined.core import _validate as check
from engined.core._window import CountWindow, TimeWindow

__all__ = ["MIN_WINDOW_DURATION", "TripRules"]

MIN_WINDOW_DURATION = 1e-3
"""Shortest ``window_duration``: a window split into 10 buckets of less than 0.1 ms would
age out within one clock tick, and sub-normal widths overflow the bucket arithmetic."""


class TripRules:
    """Trip rules of one breaker, validated at construction (see ``CircuitBreaker``)."""

    __slots__ = (
        "_failure_rate_threshold",
        "_failure_threshold",
        "_min_calls",
        "_slow_rate_threshold",
        "_window",
        "consecutive_failures",
        "has_rates",
        "slow_call_duration",
        "timed",
    )

    def __init__(
        self,
        *,
        failure_threshold: int | None,
        failure_rate_threshold: float | None,
        slow_call_duration: float | None,
        slow_call_rate_threshold: float | None,
        window_size: int,
        window_duration: float | None,
        minimum_calls: int,
    ) -> None:
        self._failure_threshold = (
            None
            if failure_threshold is None
            else check.check_int("failure_threshold", failure_threshold, minimum=1)
        )
        self._failure_rate_threshold = (
            None
            if failure_rate_threshold is None
            else check.check_rate("failure_rate_threshold", failure_rate_threshold)
        )
        self._slow_rate_threshold = (
            None
            if slow_call_rate_threshold is None
            else check.check_rate("slow_call_rate_threshold", slow_call_rate_threshold)
        )
        if slow_call_duration is None:
            if self._slow_rate_threshold is not None:
                msg = "slow_call_rate_threshold needs slow_call_duration to say what is slow"
                raise ValueError(msg)
            self.slow_call_duration = math.inf
        else:
            self.slow_call_duration = check.check_positive("slow_call_duration", slow_call_duration)
        size = check.check_int("window_size", window_size, minimum=1)
        minimum = check.check_int("minimum_calls", minimum_calls, minimum=1)
        self._window: CountWindow | TimeWindow
        if window_duration is None:
            self._window = CountWindow(size)
            self._min_calls = min(minimum, size)
        else:
            duration = check.check_positive(
                "window_duration", window_duration, minimum=MIN_WINDOW_DURATION, inclusive=True
            )
            self._window = TimeWindow(duration)
            self._min_calls = minimum
        self.consecutive_failures = 0
        self.has_rates = (
            self._failure_rate_threshold is not None or self._slow_rate_threshold is not None
        )
        self.timed = slow_call_duration is not None or window_duration is not None

    @property
    def failure_threshold(self) -> int | None:
        """Consecutive failures that trip, or ``None``."""
        return self._failure_threshold

    @property
    def window_size(self) -> int:
        """Calls a count window holds (0 for a time window)."""
        window = self._window
        return window.size if isinstance(window, CountWindow) else 0

    def settings(self) -> dict[str, object]:
        """The effective rule settings, for comparing breaker configurations."""
        window = self._window
        return {
            "failure_threshold": self._failure_threshold,
            "failure_rate_threshold": self._failure_rate_threshold,
            "slow_call_duration": self.slow_call_duration,
            "slow_call_rate_threshold": self._slow_rate_threshold,
            "window": (
                ("calls", window.size)
                if isinstance(window, CountWindow)
                else ("seconds", window.duration)
            ),
            "minimum_calls": self._min_calls,
        }

    @property
    def slow_probe_fails(self) -> bool:
        """Whether a slow probe counts as a failed one: only when slowness can trip."""
        return self._slow_rate_threshold is not None

    def record(self, failed: bool, slow: bool, now: float) -> bool:
        """Record one call and return whether a rule fires."""
        if failed:
            self.consecutive_failures += 1
        else:
            self.consecutive_failures = 0
        self._window.add(failed, slow, now)
        threshold = self._failure_threshold
        if threshold is not None and self.consecutive_failures >= threshold:
            return True
        return self.has_rates and self._rate_fires(now)

    def rates(self, now: float) -> tuple[float | None, float | None]:
        """Return the failure and slow-call rates, or ``None`` below the minimum calls."""
        return self.rates_of(*self._window.counts(now))

    def rates_of(
        self, calls: int, failures: int, slow: int = 0
    ) -> tuple[float | None, float | None]:
        """The rates of a window holding these counts, or ``None`` below the minimum calls."""
        if calls < self._min_calls or calls == 0:
            return None, None
        return failures / calls, slow / calls

    def clear(self) -> None:
        """Start afresh: an empty window and no failures in a row."""
        self._window.clear()
        self.consecutive_failures = 0

    def _rate_fires(self, now: float) -> bool:
        failure_rate, slow_rate = self.rates(now)
        if failure_rate is None or slow_rate is None:
            return False
        threshold = self._failure_rate_threshold
        if threshold is not None and failure_rate >= threshold:
            return True
        threshold = self._slow_rate_threshold
        return threshold is not None and slow_rate >= threshold

    def __repr__(self) -> str:
        return (
            f"failure_threshold={self._failure_threshold!r}, "
            f"failure_rate_threshold={self._failure_rate_threshold!r}, "
            f"slow_call_rate_threshold={self._slow_rate_threshold!r}"
        )
