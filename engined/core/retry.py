"""Retry a call that failed with a retryable exception: backoff, a deadline, a budget.

The schedule is gRFC A6's: before retry n the delay is
``random(0, min(initial * multiplier ** (n - 1), max))`` with full jitter, or exactly the
capped value with ``jitter="none"``. A :class:`RetryBudget` shared by many calls stops
retry storms: while a dependency keeps failing, the budget runs dry and calls fail fast.

Everything one call needs (attempt number, start time) lives in that call's frame, so
concurrent calls never share retry state (tenacity#701). Cancellation, interpreter exits
and :class:`~engined.CircuitBreakerOpenError` are never retried.

A retry given a ``name`` counts its attempts in lock-free counters shared by that name
(:func:`retry_stats`), which the metrics read at scrape time. An unnamed one has no
counters: its attempts call the function directly, and only the path after a failure
tests that it has none.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core import _validate as check
from engined.core._breaker_types import CircuitBreakerOpenError
from engined.core._callables import (
    PLAIN_RESULTS,
    is_async_callable,
    refuse_awaitable,
    refuse_unguardable,
    returns_awaitable,
)
from engined.core._retry_stats import RetryCounters, RetryStats, counters_for, retry_stats

__all__ = ["Backoff", "RetryBudget", "RetryStats", "retry", "retry_stats"]

F = TypeVar("F", bound=Callable[..., Any])

_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before each retry.

    Attributes:
        initial: Seconds before the first retry (its cap, with full jitter); 0 retries
            at once, every time.
        multiplier: Growth of the cap per retry.
        max: Largest cap, in seconds.
        jitter: ``"full"`` draws each delay uniformly from [0, cap] so that clients
            that failed together do not retry together; ``"none"`` waits exactly the cap.
    """

    initial: float = 0.1
    multiplier: float = 2.0
    max: float = 10.0
    jitter: Literal["full", "none"] = "full"

    def __post_init__(self) -> None:
        initial = check.check_positive("initial", self.initial, inclusive=True)
        check.check_positive("multiplier", self.multiplier, minimum=1.0, inclusive=True)
        check.check_positive("max", self.max, minimum=initial, inclusive=True)
        if self.jitter not in ("full", "none"):
            msg = f"jitter must be 'full' or 'none', got {self.jitter!r}"
            raise ValueError(msg)

    def delay(self, retry: int, rng: random.Random) -> float:
        """Return the seconds to wait before retry number ``retry`` (1 for the first)."""
        try:
            cap = min(self.initial * self.multiplier ** (retry - 1), self.max)
        except OverflowError:
            cap = self.max
        return rng.random() * cap if self.jitter == "full" else cap


class RetryBudget:
    """gRFC A6 retry throttling, shared by every call that is given the same budget.

    The budget starts with ``max_tokens``. A failed attempt costs one token, a successful
    one earns ``token_ratio``; retries are allowed only while more than half the tokens
    are left. Thread-safe; share one budget per dependency.

    Args:
        max_tokens: Size of the bucket.
        token_ratio: Tokens a success earns back.
    """

    __slots__ = ("_lock", "_tokens", "max_tokens", "token_ratio")

    def __init__(self, max_tokens: float = 10, token_ratio: float = 0.1) -> None:
        self.max_tokens = check.check_positive("max_tokens", max_tokens)
        self.token_ratio = check.check_positive("token_ratio", token_ratio)
        self._tokens = self.max_tokens
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        """Tokens left now."""
        return self._tokens

    @property
    def retry_allowed(self) -> bool:
        """Whether a retry may start now."""
        return self._tokens > self.max_tokens / 2

    def record_success(self) -> None:
        """Earn ``token_ratio`` tokens back, up to ``max_tokens``."""
        if self._tokens >= self.max_tokens:
            # Full, the usual state: skip the lock. A failure racing with this read is
            # ordered after the success, which would have been clamped away anyway.
            return
        with self._lock:
            self._tokens = min(self._tokens + self.token_ratio, self.max_tokens)

    def record_failure(self) -> bool:
        """Spend one token for a failed attempt; return whether a retry is allowed."""
        with self._lock:
            self._tokens = max(self._tokens - 1.0, 0.0)
            return self._tokens > self.max_tokens / 2

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self._tokens:g}/{self.max_tokens:g})"


@dataclass(frozen=True, slots=True)
class _Policy:
    """One ``@retry``'s settings and the decision it takes after each failure."""

    matches: Callable[[BaseException], bool]
    attempts: int
    backoff: Backoff
    deadline: float | None
    budget: RetryBudget | None
    clock: Clock
    rng: random.Random
    counters: RetryCounters | None

    def delay_or_give_up(self, exc: Exception, attempt: int, start: float) -> float | None:
        """Return the delay before the next attempt, or ``None`` (noting why on ``exc``)."""
        if isinstance(exc, CircuitBreakerOpenError) or not self.matches(exc):
            if attempt == 1:
                return None
            reason = "not retryable"
        else:
            allowed = self.budget.record_failure() if self.budget is not None else True
            if attempt >= self.attempts:
                reason = "attempts exhausted"
            elif not allowed:
                reason = "retry budget exhausted"
            else:
                delay = self.backoff.delay(attempt, self.rng)
                if self.deadline is None:
                    return delay
                if self.clock.monotonic() - start + delay < self.deadline:
                    return delay
                reason = "deadline"
        plural = "s" if attempt > 1 else ""
        exc.add_note(f"engined.retry: gave up after {attempt} attempt{plural} ({reason})")
        return None


def retry(
    *,
    on: type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool],
    attempts: int = 3,
    backoff: Backoff = Backoff(),  # frozen, so one shared default is safe
    deadline: float | None = None,
    budget: RetryBudget | None = None,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
    name: str | None = None,
) -> Callable[[F], F]:
    """Retry a sync or async function when it raises an exception that ``on`` matches.

    Args:
        on: What to retry: an exception class, a tuple of them, or a predicate.
        attempts: Attempts in all, the first call included.
        backoff: The delay schedule.
        deadline: Seconds for the whole call, sleeps included; no retry starts that could
            not begin before it.
        budget: A shared :class:`RetryBudget`.
        clock: Time source for sleeping and the deadline.
        rng: Random source for jitter; tests pass a seeded ``random.Random``.
        name: Names this retry in :func:`retry_stats` and the
            ``engined_retry_attempts_total{name}`` metric. Functions decorated with the
            same name share its counters. ``None`` (the default) counts nothing and costs
            nothing.

    Returns:
        A decorator. After the last attempt the last exception propagates unchanged,
        with a note saying how many attempts were made and why retrying stopped.

    Raises:
        TypeError: An argument has the wrong type (naming it); at decoration, a generator
            function, whose errors would surface while the caller iterates, beyond reach;
            at a call, a callable taken for sync that returned an awaitable.
    """
    policy = _Policy(
        matches=check.check_matcher("on", on),
        attempts=check.check_int("attempts", attempts, minimum=1),
        backoff=_check_instance("backoff", backoff, Backoff),
        deadline=None if deadline is None else check.check_positive("deadline", deadline),
        budget=None if budget is None else _check_instance("budget", budget, RetryBudget),
        clock=check.check_clock("clock", clock),
        rng=_RNG if rng is None else _check_instance("rng", rng, random.Random),
        counters=None if name is None else counters_for(check.check_name("name", name)),
    )

    def decorate(fn: F) -> F:
        check.check_callable("the decorated object", fn)
        refuse_unguardable(fn, "retry()")
        if is_async_callable(fn):
            return cast(F, _retry_async(fn, policy))
        return cast(F, _retry_sync(fn, policy))

    return decorate


def _check_instance(param: str, value: object, kind: type[Any]) -> Any:
    if not isinstance(value, kind):
        msg = f"{param} must be a {kind.__name__}, got {type(value).__name__}"
        raise TypeError(msg)
    return value


def _counting(fn: Callable[..., Any], counters: RetryCounters | None) -> Callable[..., Any]:
    """``fn``, or for a named retry ``fn`` behind a lock-free count of each attempt.

    The count wraps the attempt, not the whole call, so an unnamed retry's call path is
    untouched. For an async function the wrapper hands back the coroutine unawaited (the
    retry loop awaits it), so it adds no coroutine of its own.
    """
    if counters is None:
        return fn
    tick = counters.attempt

    def counted(*args: Any, **kwargs: Any) -> Any:
        tick()
        return fn(*args, **kwargs)

    return counted


def _retry_sync(fn: Callable[..., Any], policy: _Policy) -> Callable[..., Any]:
    budget, timed, monotonic = policy.budget, policy.deadline is not None, policy.clock.monotonic
    attempt_fn = _counting(fn, policy.counters)
    retried = None if policy.counters is None else policy.counters.retried

    @functools.wraps(fn)
    def retrying(*args: Any, **kwargs: Any) -> Any:
        start = monotonic() if timed else 0.0
        attempt = 1
        while True:
            try:
                result = attempt_fn(*args, **kwargs)
            except Exception as exc:
                delay = policy.delay_or_give_up(exc, attempt, start)
                if delay is None:
                    raise
                policy.clock.sleep(delay)
                if retried is not None:
                    retried()
                attempt += 1
                continue
            if type(result) not in PLAIN_RESULTS and returns_awaitable(result):
                refuse_awaitable(fn, result, "retry()")
            if budget is not None:
                budget.record_success()
            return result

    return retrying


def _retry_async(fn: Callable[..., Any], policy: _Policy) -> Callable[..., Any]:
    budget, timed, monotonic = policy.budget, policy.deadline is not None, policy.clock.monotonic
    attempt_fn = _counting(fn, policy.counters)
    retried = None if policy.counters is None else policy.counters.retried

    @functools.wraps(fn)
    async def retrying(*args: Any, **kwargs: Any) -> Any:
        start = monotonic() if timed else 0.0
        attempt = 1
        while True:
            try:
                result = await attempt_fn(*args, **kwargs)
            except Exception as exc:
                delay = policy.delay_or_give_up(exc, attempt, start)
                if delay is None:
                    raise
                await policy.clock.sleep_async(delay)
                if retried is not None:
                    retried()
                attempt += 1
                continue
            if budget is not None:
                budget.record_success()
            return result

    return retrying
