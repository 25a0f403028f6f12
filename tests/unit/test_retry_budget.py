"""RetryBudget (gRFC A6 throttling): token accounting, the retry boundary, sharing, validation."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

from engined import Backoff, RetryBudget, retry
from engined.testing import FakeClock

FIXED = Backoff(initial=0.1, multiplier=1.0, max=0.1, jitter="none")


class Boom(Exception):
    """The retryable failure."""


def _run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"


async def _call(fn: Callable[..., Any]) -> Any:
    """Call a sync or an async function and return its result."""
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


def _note(exc: BaseException) -> str:
    notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("engined.retry")]
    assert len(notes) == 1, getattr(exc, "__notes__", None)
    return notes[0]


# --- Accounting ----------------------------------------------------------------------------------


def test_defaults_match_the_contract() -> None:
    """RetryBudget() has max_tokens 10 and token_ratio 0.1."""
    budget = RetryBudget()
    assert (budget.max_tokens, budget.token_ratio) == (10, 0.1)


@pytest.mark.parametrize("max_tokens", [1, 3, 10, 2.5, 1000])
def test_starts_full_and_allows_retries(max_tokens: float) -> None:
    """A new budget holds max_tokens tokens and allows a retry."""
    budget = RetryBudget(max_tokens=max_tokens)
    assert budget.tokens == max_tokens
    assert isinstance(budget.tokens, float)
    assert budget.retry_allowed is True


def test_each_failure_costs_one_token_never_below_zero() -> None:
    """record_failure() takes one token at a time down to zero, and no further."""
    budget = RetryBudget(max_tokens=4, token_ratio=0.5)
    seen = []
    for _ in range(7):
        budget.record_failure()
        seen.append(budget.tokens)
    assert seen == [3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_each_success_adds_token_ratio_never_above_max() -> None:
    """record_success() adds token_ratio per call, capped at max_tokens."""
    budget = RetryBudget(max_tokens=4, token_ratio=0.25)
    budget.record_success()
    assert budget.tokens == 4.0
    for _ in range(3):
        budget.record_failure()
    assert budget.tokens == 1.0
    seen = []
    for _ in range(14):
        budget.record_success()
        seen.append(budget.tokens)
    assert seen == [1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.0, 4.0]


def test_success_with_the_default_ratio_adds_a_tenth() -> None:
    """With defaults, two failures and one success leave 8.1 tokens."""
    budget = RetryBudget()
    budget.record_failure()
    budget.record_failure()
    budget.record_success()
    assert budget.tokens == pytest.approx(8.1)


@pytest.mark.parametrize(
    ("max_tokens", "allowed_failures"),
    [
        pytest.param(10, 4, id="10-stops-at-5"),
        pytest.param(4, 1, id="4-stops-at-2"),
        pytest.param(3, 1, id="3-stops-at-1.5"),
        pytest.param(2, 0, id="2-stops-at-1"),
        pytest.param(1, 0, id="1-never"),
        pytest.param(11, 5, id="11-stops-at-5.5"),
    ],
)
def test_retries_stop_while_tokens_are_at_or_below_half(
    max_tokens: int, allowed_failures: int
) -> None:
    """record_failure() allows a retry only while tokens > max_tokens / 2 after the charge."""
    budget = RetryBudget(max_tokens=max_tokens, token_ratio=0.5)
    answers = [budget.record_failure() for _ in range(max_tokens + 2)]
    assert answers == [True] * allowed_failures + [False] * (max_tokens + 2 - allowed_failures)
    assert budget.retry_allowed is False


def test_exact_boundary_at_half_of_ten() -> None:
    """max_tokens=10: 4 failures leave 6 (allowed), the 5th leaves exactly 5 (refused)."""
    budget = RetryBudget(max_tokens=10, token_ratio=0.5)
    for _ in range(4):
        assert budget.record_failure() is True
    assert (budget.tokens, budget.retry_allowed) == (6.0, True)
    assert budget.record_failure() is False
    assert (budget.tokens, budget.retry_allowed) == (5.0, False)
    budget.record_success()
    assert (budget.tokens, budget.retry_allowed) == (5.5, True)


def test_retry_allowed_agrees_with_record_failure() -> None:
    """retry_allowed reads the same verdict record_failure() returned, and does not charge."""
    budget = RetryBudget(max_tokens=6, token_ratio=1.0)
    for _ in range(10):
        verdict = budget.record_failure()
        tokens = budget.tokens
        assert budget.retry_allowed is verdict
        assert budget.retry_allowed is verdict
        assert budget.tokens == tokens
        assert verdict is (tokens > 3)


# --- With @retry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_retry_stops_once_the_shared_budget_is_exhausted(clock: FakeClock, mode: str) -> None:
    """A 4-token budget allows one retry, then calls give up at once with a budget note."""
    budget = RetryBudget(max_tokens=4, token_ratio=0.5)
    calls = 0

    def fail() -> None:
        nonlocal calls
        calls += 1
        raise Boom(calls)

    async def afail() -> None:
        fail()

    fn: Any = retry(on=Boom, attempts=10, backoff=FIXED, budget=budget, clock=clock)(
        fail if mode == "sync" else afail
    )

    async def invoke() -> BaseException:
        with pytest.raises(Boom) as info:
            await _call(fn)
        return info.value

    first = await invoke()
    # attempt 1: 4 -> 3 (> 2, retry); attempt 2: 3 -> 2 (not > 2, give up)
    assert (calls, clock.sleeps, budget.tokens) == (2, [0.1], 2.0)
    assert _note(first) == "engined.retry: gave up after 2 attempts (retry budget exhausted)"
    second = await invoke()
    assert (calls, clock.sleeps, budget.tokens) == (3, [0.1], 1.0)
    assert _note(second) == "engined.retry: gave up after 1 attempt (retry budget exhausted)"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_retry_charges_every_failed_attempt_and_credits_success(
    clock: FakeClock, mode: str
) -> None:
    """Every retryable failed attempt costs a token, the last included; a success adds the ratio."""
    budget = RetryBudget(max_tokens=100, token_ratio=0.5)
    outcomes = iter([Boom(), Boom(), "ok", Boom(), Boom(), Boom()])

    def step() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def astep() -> str:
        return step()

    fn: Any = retry(on=Boom, attempts=3, backoff=FIXED, budget=budget, clock=clock)(
        step if mode == "sync" else astep
    )
    assert await _call(fn) == "ok"
    assert budget.tokens == 100 - 2 + 0.5
    with pytest.raises(Boom):
        await _call(fn)
    assert budget.tokens == 100 - 2 + 0.5 - 3


@pytest.mark.parametrize("exc", [KeyError("k"), asyncio.CancelledError(), KeyboardInterrupt()])
def test_non_retryable_exceptions_cost_no_tokens(clock: FakeClock, exc: BaseException) -> None:
    """Exceptions `on` does not match, and non-Exception exits, leave the budget untouched."""
    budget = RetryBudget(max_tokens=10)

    @retry(on=Boom, attempts=3, backoff=FIXED, budget=budget, clock=clock)
    def fail() -> None:
        raise exc

    with pytest.raises(type(exc)):
        fail()
    assert budget.tokens == 10.0


def test_one_budget_throttles_every_function_sharing_it(clock: FakeClock) -> None:
    """Failures of one decorated function use up the budget a second function shares."""
    budget = RetryBudget(max_tokens=10, token_ratio=0.5)
    calls = {"a": 0, "b": 0}

    def make(name: str) -> Callable[[], None]:
        @retry(on=Boom, attempts=10, backoff=FIXED, budget=budget, clock=clock)
        def fail() -> None:
            calls[name] += 1
            raise Boom(name)

        return fail

    a, b = make("a"), make("b")
    with pytest.raises(Boom):
        a()
    assert calls["a"] == 5  # 9, 8, 7, 6 allowed; 5 refused
    with pytest.raises(Boom) as info:
        b()
    assert calls["b"] == 1
    assert "retry budget exhausted" in _note(info.value)


# --- Concurrency ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("fast_thread_switching")
def test_eight_threads_of_failures_lose_no_update() -> None:
    """8 threads x 1000 record_failure() from 100000 tokens end at exactly 92000."""
    budget = RetryBudget(max_tokens=100_000, token_ratio=0.5)
    start = threading.Barrier(8, timeout=5)

    def worker(_: int) -> None:
        start.wait()
        for _ in range(1000):
            budget.record_failure()

    _run_threads(worker, 8)
    assert budget.tokens == 92_000.0


@pytest.mark.usefixtures("fast_thread_switching")
def test_eight_threads_of_successes_from_empty_lose_no_update() -> None:
    """8 threads x 1000 record_success() of 0.5 from an empty budget end at exactly 4000."""
    budget = RetryBudget(max_tokens=10_000, token_ratio=0.5)
    for _ in range(10_000):
        budget.record_failure()
    assert budget.tokens == 0.0
    start = threading.Barrier(8, timeout=5)

    def worker(_: int) -> None:
        start.wait()
        for _ in range(1000):
            budget.record_success()

    _run_threads(worker, 8)
    assert budget.tokens == 4000.0


@pytest.mark.usefixtures("fast_thread_switching")
def test_eight_threads_of_mixed_calls_away_from_the_bounds_lose_no_update() -> None:
    """8 threads x 1000 failures and 1000 successes, never near a bound, end at the exact sum."""
    budget = RetryBudget(max_tokens=100_000, token_ratio=0.5)
    for _ in range(20_000):
        budget.record_failure()
    # From 80000 the tokens stay within [72000, 84000]: no clamp, so order cannot matter.
    start = threading.Barrier(8, timeout=5)
    refused: list[int] = []

    def worker(i: int) -> None:
        start.wait()
        for _ in range(1000):
            if not budget.record_failure():
                refused.append(i)
            budget.record_success()

    _run_threads(worker, 8)
    assert refused == []
    assert budget.tokens == 80_000.0 - 8000 + 4000


@pytest.mark.usefixtures("fast_thread_switching")
def test_retries_across_eight_threads_are_capped_by_the_budget(clock: FakeClock) -> None:
    """8 threads x 5 always-failing calls share 10 tokens: exactly 4 retries happen in all."""
    budget = RetryBudget(max_tokens=10, token_ratio=0.1)
    lock = threading.Lock()
    calls = 0

    @retry(on=Boom, attempts=10, backoff=FIXED, budget=budget, clock=clock)
    def fail() -> None:
        nonlocal calls
        with lock:
            calls += 1
        raise Boom

    start = threading.Barrier(8, timeout=5)

    def worker(_: int) -> None:
        start.wait()
        for _ in range(5):
            with pytest.raises(Boom):
                fail()

    _run_threads(worker, 8)
    assert calls == 40 + 4
    assert len(clock.sleeps) == 4
    assert budget.tokens == 0.0


async def test_retries_across_twenty_tasks_are_capped_by_the_budget(clock: FakeClock) -> None:
    """20 concurrent always-failing calls share 10 tokens: exactly 4 retries happen in all."""
    budget = RetryBudget(max_tokens=10, token_ratio=0.1)
    calls = 0

    @retry(on=Boom, attempts=10, backoff=FIXED, budget=budget, clock=clock)
    async def fail() -> None:
        nonlocal calls
        calls += 1
        await FakeClock().sleep_async(0)  # let the other tasks in
        raise Boom

    results = await asyncio.gather(*(fail() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, Boom) for r in results)
    assert calls == 24
    assert len(clock.sleeps) == 4
    assert budget.tokens == 0.0


# --- Validation ----------------------------------------------------------------------------------

BAD: list[Any] = [
    ("max_tokens", {"max_tokens": 0}),
    ("max_tokens", {"max_tokens": -1}),
    ("max_tokens", {"max_tokens": "10"}),
    ("max_tokens", {"max_tokens": None}),
    ("max_tokens", {"max_tokens": True}),
    ("max_tokens", {"max_tokens": math.nan}),
    ("token_ratio", {"token_ratio": 0}),
    ("token_ratio", {"token_ratio": -0.1}),
    ("token_ratio", {"token_ratio": "0.1"}),
    ("token_ratio", {"token_ratio": None}),
    ("token_ratio", {"token_ratio": math.nan}),
]


@pytest.mark.parametrize(("field", "config"), BAD)
def test_refuses_bad_values_naming_the_field(field: str, config: dict[str, Any]) -> None:
    """Every invalid RetryBudget argument is a TypeError or ValueError naming it."""
    with pytest.raises((TypeError, ValueError), match=rf"\b{field}\b"):
        RetryBudget(**config)


@pytest.mark.parametrize(
    "config", [{"max_tokens": 0.5}, {"token_ratio": 1e-6}, {"token_ratio": 20}, {"max_tokens": 1}]
)
def test_accepts_small_and_large_positive_values(config: dict[str, Any]) -> None:
    """Any positive number is a valid max_tokens or token_ratio."""
    budget = RetryBudget(**config)
    for key, value in config.items():
        assert getattr(budget, key) == value
