"""Retry: the exact backoff schedule, giving up, what is never retried, deadline, per-call state."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
import random
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from engined import (
    Backoff,
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
    RetryBudget,
    retry,
)
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]

MODES = ["sync", "async"]
NONE_JITTER = Backoff(initial=0.1, multiplier=2, max=0.3, jitter="none")
TRIPLING = Backoff(initial=1.0, multiplier=3.0, max=100.0, jitter="none")
CONSTANT = Backoff(initial=0.5, multiplier=1.0, max=0.5, jitter="none")
CAP_5 = Backoff(initial=2.0, multiplier=2.0, max=5.0, jitter="none")
NOTE = re.compile(r"engined\.retry: gave up after (\d+) (attempts?) \((.+)\)")


class Boom(Exception):
    """The retryable failure."""


class Script:
    """A function to decorate that plays back outcomes, one per attempt; the last one repeats.

    An exception class is raised as a fresh instance per attempt, an exception instance is
    raised as is, anything else is returned. ``cost`` seconds pass on the clock per attempt.
    """

    def __init__(self, *outcomes: Any, clock: FakeClock | None = None, cost: float = 0.0) -> None:
        self.outcomes = outcomes
        self.clock = clock
        self.cost = cost
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.raised: list[BaseException] = []

    def _play(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls.append((args, kwargs))
        if self.cost:
            assert self.clock is not None
            self.clock.advance(self.cost)
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            outcome = outcome(f"attempt {len(self.calls)}")
        if isinstance(outcome, BaseException):
            self.raised.append(outcome)
            raise outcome
        return outcome

    def fn(self, mode: str) -> Callable[..., Any]:
        """Return a sync or an async function running the script."""
        if mode == "sync":

            def target(*args: Any, **kwargs: Any) -> Any:
                return self._play(args, kwargs)

            return target

        async def atarget(*args: Any, **kwargs: Any) -> Any:
            return self._play(args, kwargs)

        return atarget


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a sync or an async function and return its result."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def _retried(mode: str, script: Script, **config: Any) -> Callable[..., Any]:
    return retry(**config)(script.fn(mode))


def _note(exc: BaseException) -> tuple[int, str]:
    """Return (attempts, reason) from the one retry note on ``exc``: "1 attempt", "N attempts"."""
    notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("engined.retry")]
    assert len(notes) == 1, getattr(exc, "__notes__", None)
    match = NOTE.fullmatch(notes[0])
    assert match is not None, notes[0]
    assert match[2] == ("attempt" if match[1] == "1" else "attempts"), notes[0]
    return int(match[1]), match[3]


def _notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


# --- Backoff -----------------------------------------------------------------------------------


def test_backoff_defaults_match_the_contract() -> None:
    """Backoff() is initial 0.1, multiplier 2, max 10, full jitter."""
    b = Backoff()
    assert (b.initial, b.multiplier, b.max, b.jitter) == (0.1, 2.0, 10.0, "full")


def test_backoff_is_a_frozen_slotted_dataclass() -> None:
    """Backoff refuses assignment and has no per-instance __dict__."""
    b = Backoff(initial=1.0)
    assert dataclasses.is_dataclass(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.initial = 2.0
    assert not hasattr(b, "__dict__")
    assert b == Backoff(initial=1.0)


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        pytest.param(NONE_JITTER, [0.1, 0.2, 0.3, 0.3, 0.3], id="capped-doubling"),
        pytest.param(TRIPLING, [1.0, 3.0, 9.0, 27.0, 81.0], id="x3"),
        pytest.param(CONSTANT, [0.5] * 5, id="constant"),
        pytest.param(CAP_5, [2.0, 4.0, 5.0, 5.0, 5.0], id="cap-5"),
    ],
)
def test_backoff_delay_without_jitter_is_the_capped_exponential(
    backoff: Backoff, expected: list[float]
) -> None:
    """delay(n) with jitter="none" is exactly min(initial * multiplier ** (n - 1), max)."""
    rng = random.Random(7)
    assert [backoff.delay(n, rng) for n in range(1, 6)] == expected


def test_backoff_delay_stays_capped_for_huge_retry_numbers() -> None:
    """delay() for retry 5000 is the cap, not an OverflowError from multiplier ** 4999."""
    backoff = Backoff(initial=0.1, multiplier=2.0, max=10.0, jitter="none")
    assert backoff.delay(5000, random.Random(0)) == 10.0
    full = Backoff(initial=0.1, multiplier=2.0, max=10.0, jitter="full")
    assert 0.0 <= full.delay(5000, random.Random(0)) <= 10.0


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_backoff_full_jitter_delay_is_rng_random_times_cap(seed: int) -> None:
    """delay(n) with full jitter is rng.random() * cap, one draw per delay (gRFC A6)."""
    backoff = Backoff(initial=1.0, multiplier=2.0, max=5.0, jitter="full")
    caps = [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    rng, twin = random.Random(seed), random.Random(seed)
    delays = [backoff.delay(n, rng) for n in range(1, 7)]
    assert delays == [twin.random() * cap for cap in caps]
    assert all(0.0 <= d <= cap for d, cap in zip(delays, caps, strict=True))


BACKOFF_BAD: list[Any] = [
    ("initial", {"initial": -0.1}),
    ("initial", {"initial": "0.1"}),
    ("initial", {"initial": math.nan}),
    ("multiplier", {"multiplier": 0.5}),
    ("multiplier", {"multiplier": 0}),
    ("multiplier", {"multiplier": -2.0}),
    ("multiplier", {"multiplier": "2"}),
    ("max", {"initial": 1.0, "max": 0.5}),
    ("max", {"max": 0}),
    ("max", {"max": "10"}),
    ("jitter", {"jitter": "equal"}),
    ("jitter", {"jitter": "FULL"}),
    ("jitter", {"jitter": ""}),
    ("jitter", {"jitter": None}),
]


@pytest.mark.parametrize(("field", "config"), BACKOFF_BAD)
def test_backoff_refuses_bad_values_naming_the_field(field: str, config: dict[str, Any]) -> None:
    """Every invalid Backoff field is a TypeError or ValueError whose message names it."""
    with pytest.raises((TypeError, ValueError), match=rf"\b{field}\b"):
        Backoff(**config)


@pytest.mark.parametrize(
    "config",
    [
        {"multiplier": 1},
        {"initial": 0.5, "max": 0.5},
        {"initial": 1e-9},
        {"jitter": "none"},
        {"jitter": "full"},
    ],
)
def test_backoff_accepts_boundary_values(config: dict[str, Any]) -> None:
    """A multiplier of 1, max equal to initial and both jitter modes are valid."""
    b = Backoff(**config)
    for key, value in config.items():
        assert getattr(b, key) == value


# --- The schedule --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("backoff", "attempts", "expected"),
    [
        pytest.param(NONE_JITTER, 5, [0.1, 0.2, 0.3, 0.3], id="capped-doubling"),
        pytest.param(TRIPLING, 4, [1.0, 3.0, 9.0], id="x3"),
        pytest.param(CONSTANT, 3, [0.5, 0.5], id="constant"),
        pytest.param(NONE_JITTER, 2, [0.1], id="one-retry"),
    ],
)
async def test_sleeps_follow_the_exact_schedule_without_jitter(
    clock: FakeClock, mode: str, backoff: Backoff, attempts: int, expected: list[float]
) -> None:
    """With jitter="none" the recorded sleeps are exactly the capped exponential schedule."""
    script = Script(Boom)
    fn = _retried(mode, script, on=Boom, attempts=attempts, backoff=backoff, clock=clock)
    with pytest.raises(Boom):
        await _call(fn)
    assert clock.sleeps == expected
    assert len(script.calls) == attempts


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [0, 3, 99])
async def test_full_jitter_sleeps_match_a_separately_seeded_rng(
    clock: FakeClock, mode: str, seed: int
) -> None:
    """Full jitter sleeps r.random() * cap, within [0, cap], as a twin Random(seed) predicts."""
    backoff = Backoff(initial=1.0, multiplier=2.0, max=5.0, jitter="full")
    script = Script(Boom)
    fn = _retried(
        mode, script, on=Boom, attempts=6, backoff=backoff, clock=clock, rng=random.Random(seed)
    )
    with pytest.raises(Boom):
        await _call(fn)
    caps = [1.0, 2.0, 4.0, 5.0, 5.0]
    twin = random.Random(seed)
    assert clock.sleeps == [twin.random() * cap for cap in caps]
    assert all(0.0 <= s <= cap for s, cap in zip(clock.sleeps, caps, strict=True))


@pytest.mark.parametrize("mode", MODES)
async def test_defaults_are_three_attempts_with_full_jitter(clock: FakeClock, mode: str) -> None:
    """Without attempts/backoff: 3 attempts, sleeps r.random() * 0.1 then r.random() * 0.2."""
    script = Script(Boom)
    fn = _retried(mode, script, on=Boom, clock=clock, rng=random.Random(5))
    with pytest.raises(Boom):
        await _call(fn)
    twin = random.Random(5)
    assert len(script.calls) == 3
    assert clock.sleeps == [twin.random() * 0.1, twin.random() * 0.2]


@pytest.mark.parametrize("mode", MODES)
async def test_sync_sleeps_on_clock_sleep_and_async_on_sleep_async(mode: str) -> None:
    """A sync function backs off with clock.sleep, an async one awaits clock.sleep_async."""

    class KindClock(FakeClock):
        def __init__(self) -> None:
            super().__init__()
            self.kinds: list[str] = []

        def sleep(self, seconds: float) -> None:
            self.kinds.append("sleep")
            super().sleep(seconds)

        async def sleep_async(self, seconds: float) -> None:
            self.kinds.append("sleep_async")
            FakeClock.sleep(self, seconds)

    clock = KindClock()
    fn = _retried(mode, Script(Boom), on=Boom, attempts=3, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(Boom):
        await _call(fn)
    assert clock.kinds == (["sleep"] * 2 if mode == "sync" else ["sleep_async"] * 2)
    assert clock.sleeps == [0.1, 0.2]


# --- Attempts and giving up ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attempts", [1, 2, 3, 7])
async def test_attempts_counts_the_first_call(clock: FakeClock, mode: str, attempts: int) -> None:
    """attempts=N calls the function N times in all and sleeps N - 1 times; 1 never retries."""
    script = Script(Boom)
    fn = _retried(mode, script, on=Boom, attempts=attempts, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(Boom) as info:
        await _call(fn)
    assert len(script.calls) == attempts
    assert len(clock.sleeps) == attempts - 1
    assert _note(info.value) == (attempts, "attempts exhausted")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [1, 2, 4])
async def test_success_on_attempt_k_returns_the_value_and_stops(
    clock: FakeClock, mode: str, k: int
) -> None:
    """A call that succeeds on attempt k returns its value after exactly k calls and k-1 sleeps."""
    script = Script(*([Boom] * (k - 1)), "value")
    fn = _retried(mode, script, on=Boom, attempts=5, backoff=NONE_JITTER, clock=clock)
    assert await _call(fn) == "value"
    assert len(script.calls) == k
    assert clock.sleeps == [0.1, 0.2, 0.3, 0.3][: k - 1]


@pytest.mark.parametrize("mode", MODES)
async def test_every_attempt_gets_the_same_arguments(clock: FakeClock, mode: str) -> None:
    """Positional and keyword arguments reach every attempt unchanged."""
    script = Script(Boom, Boom, "ok")
    fn = _retried(mode, script, on=Boom, attempts=3, backoff=NONE_JITTER, clock=clock)
    assert await _call(fn, 1, "two", three=3) == "ok"
    assert script.calls == [((1, "two"), {"three": 3})] * 3


@pytest.mark.parametrize("mode", MODES)
async def test_gives_up_raising_the_last_exception_itself_with_one_note(
    clock: FakeClock, mode: str
) -> None:
    """The last attempt's exception propagates as the same object with one note added to its own."""
    last = Boom("third")
    last.add_note("the caller's own note")
    script = Script(Boom("first"), Boom("second"), last)
    fn = _retried(mode, script, on=Boom, attempts=3, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(Boom) as info:
        await _call(fn)
    assert info.value is last
    assert _notes(last) == [
        "the caller's own note",
        "engined.retry: gave up after 3 attempts (attempts exhausted)",
    ]
    assert _notes(script.raised[0]) == []
    assert _notes(script.raised[1]) == []


@pytest.mark.parametrize("mode", MODES)
async def test_non_matching_exception_propagates_at_once_without_note(
    clock: FakeClock, mode: str
) -> None:
    """An exception `on` does not match is raised after one call, no sleep, no note."""
    err = KeyError("k")
    script = Script(err)
    fn = _retried(mode, script, on=Boom, attempts=5, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(KeyError) as info:
        await _call(fn)
    assert info.value is err
    assert len(script.calls) == 1
    assert clock.sleeps == []
    assert _notes(err) == []


@pytest.mark.parametrize("mode", MODES)
async def test_non_matching_exception_on_a_later_attempt_stops_with_not_retryable_note(
    clock: FakeClock, mode: str
) -> None:
    """A non-matching exception after retries propagates at once, noted as not retryable."""
    err = KeyError("k")
    script = Script(Boom, Boom, err, "never")
    fn = _retried(mode, script, on=Boom, attempts=5, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(KeyError) as info:
        await _call(fn)
    assert info.value is err
    assert len(script.calls) == 3
    assert clock.sleeps == [0.1, 0.2]
    assert _note(err) == (3, "not retryable")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("on", "exc"),
    [
        pytest.param(Boom, Boom("x"), id="class"),
        pytest.param((KeyError, Boom), Boom("x"), id="tuple"),
        pytest.param(LookupError, KeyError("x"), id="base-class"),
        pytest.param(Exception, ValueError("x"), id="exception"),
    ],
)
async def test_on_matches_classes_tuples_and_subclasses(
    clock: FakeClock, mode: str, on: Any, exc: Exception
) -> None:
    """`on` as a class or a tuple retries the exception and its subclasses."""
    script = Script(exc, "ok")
    fn = _retried(mode, script, on=on, attempts=3, backoff=NONE_JITTER, clock=clock)
    assert await _call(fn) == "ok"
    assert len(script.calls) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_predicate_on_decides_per_exception(clock: FakeClock, mode: str) -> None:
    """`on` as a predicate sees each exception and retries only when it returns true."""
    seen: list[BaseException] = []

    def transient(exc: BaseException) -> bool:
        seen.append(exc)
        return exc.args == ("transient",)

    fatal = Boom("fatal")
    script = Script(Boom("transient"), Boom("transient"), fatal)
    fn = _retried(mode, script, on=transient, attempts=5, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(Boom) as info:
        await _call(fn)
    assert info.value is fatal
    assert len(script.calls) == 3
    assert seen == script.raised
    assert _note(fatal) == (3, "not retryable")


def test_on_is_required_and_keyword_only() -> None:
    """retry() without `on`, or with `on` passed positionally, is a TypeError."""
    with pytest.raises(TypeError):
        retry()
    with pytest.raises(TypeError):
        retry(Boom)


# --- Never retried -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "on", [BaseException, (BaseException,), lambda exc: True], ids=["base", "tuple", "predicate"]
)
@pytest.mark.parametrize(
    "exc_type", [asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit]
)
async def test_non_exception_base_exceptions_are_never_retried(
    clock: FakeClock, mode: str, on: Any, exc_type: type[BaseException]
) -> None:
    """Cancellation and interpreter exits propagate after one call, even with on=BaseException.

    Guards against tenacity#529.
    """
    exc = exc_type()
    script = Script(exc, "never")
    fn = _retried(mode, script, on=on, attempts=5, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(exc_type) as info:
        await _call(fn)
    assert info.value is exc
    assert len(script.calls) == 1
    assert clock.sleeps == []
    assert _notes(exc) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "on",
    [Exception, CircuitBreakerOpenError, lambda exc: True],
    ids=["exception", "itself", "predicate"],
)
async def test_circuit_breaker_open_error_is_never_retried(
    clock: FakeClock, mode: str, on: Any
) -> None:
    """A CircuitBreakerOpenError propagates after one call whatever `on` says."""
    exc = CircuitBreakerOpenError("dep", CircuitState.OPEN, 5.0)
    script = Script(exc, "never")
    fn = _retried(mode, script, on=on, attempts=5, backoff=NONE_JITTER, clock=clock)
    with pytest.raises(CircuitBreakerOpenError) as info:
        await _call(fn)
    assert info.value is exc
    assert len(script.calls) == 1
    assert clock.sleeps == []
    assert _notes(exc) == []


@pytest.mark.parametrize("mode", MODES)
async def test_retry_around_an_open_breaker_stops_at_once(
    clock: FakeClock, make_breaker: Factory, mode: str
) -> None:
    """@retry over a breaker that opens stops at the first rejection, noted as not retryable."""
    breaker = make_breaker(failure_threshold=2)
    script = Script(Boom)
    fn = retry(on=Exception, attempts=6, backoff=NONE_JITTER, clock=clock)(breaker(script.fn(mode)))
    with pytest.raises(CircuitBreakerOpenError) as info:
        await _call(fn)
    assert len(script.calls) == 2
    assert clock.sleeps == [0.1, 0.2]
    assert _note(info.value) == (3, "not retryable")
    assert breaker.metrics.rejected_calls == 1


# --- Deadline ------------------------------------------------------------------------------------

DOUBLING = Backoff(initial=1.0, multiplier=2.0, max=100.0, jitter="none")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("deadline", "sleeps"),
    [
        pytest.param(1.0, [], id="first-delay-reaches-it"),
        pytest.param(3.0, [1.0], id="exact-boundary-gives-up"),
        pytest.param(3.5, [1.0, 2.0], id="just-inside"),
        pytest.param(5.0, [1.0, 2.0], id="next-would-cross"),
        pytest.param(7.5, [1.0, 2.0, 4.0], id="three-sleeps"),
    ],
)
async def test_deadline_gives_up_before_a_sleep_that_would_reach_it(
    clock: FakeClock, mode: str, deadline: float, sleeps: list[float]
) -> None:
    """Before each sleep, elapsed + delay >= deadline gives up: never sleeping past the deadline."""
    script = Script(Boom)
    fn = _retried(
        mode, script, on=Boom, attempts=20, backoff=DOUBLING, deadline=deadline, clock=clock
    )
    with pytest.raises(Boom) as info:
        await _call(fn)
    assert clock.sleeps == sleeps
    assert sum(clock.sleeps) < deadline
    assert len(script.calls) == len(sleeps) + 1
    assert _note(info.value) == (len(sleeps) + 1, "deadline")


@pytest.mark.parametrize("mode", MODES)
async def test_time_spent_in_attempts_counts_against_the_deadline(
    clock: FakeClock, mode: str
) -> None:
    """Attempts that take 2 s each use up the deadline together with the 1 s sleeps."""
    constant = Backoff(initial=1.0, multiplier=1.0, max=1.0, jitter="none")
    script = Script(Boom, clock=clock, cost=2.0)
    fn = _retried(mode, script, on=Boom, attempts=20, backoff=constant, deadline=10.0, clock=clock)
    with pytest.raises(Boom) as info:
        await _call(fn)
    # 0-2 attempt, 2-3 sleep, 3-5, 5-6, 6-8, 8-9, 9-11; then 11 + 1 >= 10.
    assert clock.sleeps == [1.0, 1.0, 1.0]
    assert len(script.calls) == 4
    assert _note(info.value) == (4, "deadline")


@pytest.mark.parametrize("mode", MODES)
async def test_deadline_does_not_interrupt_a_slow_successful_attempt(
    clock: FakeClock, mode: str
) -> None:
    """An attempt that runs past the deadline still returns its value."""
    script = Script("late", clock=clock, cost=50.0)
    fn = _retried(mode, script, on=Boom, attempts=3, deadline=5.0, clock=clock)
    assert await _call(fn) == "late"
    assert clock.sleeps == []


@pytest.mark.parametrize("mode", MODES)
async def test_deadline_runs_from_the_start_of_each_call(mode: str) -> None:
    """Each call gets the whole deadline, however long after decoration or another call it runs."""
    clock = FakeClock(1000.0)
    script = Script(Boom)
    fn = _retried(mode, script, on=Boom, attempts=20, backoff=DOUBLING, deadline=5.0, clock=clock)
    clock.advance(100.0)
    for _ in range(3):
        with pytest.raises(Boom) as info:
            await _call(fn)
        assert _note(info.value) == (3, "deadline")
        clock.advance(7.0)
    assert clock.sleeps == [1.0, 2.0] * 3
    assert len(script.calls) == 9


@pytest.mark.parametrize("mode", MODES)
async def test_attempts_exhausted_before_the_deadline_says_so(clock: FakeClock, mode: str) -> None:
    """With a roomy deadline the note gives attempts exhausted as the reason."""
    script = Script(Boom)
    fn = _retried(
        mode, script, on=Boom, attempts=3, backoff=NONE_JITTER, deadline=100.0, clock=clock
    )
    with pytest.raises(Boom) as info:
        await _call(fn)
    assert _note(info.value) == (3, "attempts exhausted")


# --- Per-call state -------------------------------------------------------------------------------


async def test_interleaved_async_calls_each_get_their_full_attempts(clock: FakeClock) -> None:
    """Two concurrent calls of one decorated function keep separate attempt counts.

    Guards against tenacity#701.
    """
    order: list[tuple[str, int]] = []
    per_caller: dict[str, int] = {"a": 0, "b": 0}

    @retry(on=Boom, attempts=4, backoff=NONE_JITTER, clock=clock)
    async def fetch(caller: str) -> str:
        per_caller[caller] += 1
        order.append((caller, per_caller[caller]))
        if caller == "a" or per_caller[caller] < 3:
            raise Boom(caller)
        return caller

    results = await asyncio.gather(fetch("a"), fetch("b"), return_exceptions=True)
    assert per_caller == {"a": 4, "b": 3}
    assert isinstance(results[0], Boom)
    assert _note(results[0]) == (4, "attempts exhausted")
    assert results[1] == "b"
    # The calls really overlapped: b started before a finished.
    assert order.index(("b", 1)) < order.index(("a", 4))
    assert sorted(clock.sleeps) == [0.1, 0.1, 0.2, 0.2, 0.3]


@pytest.mark.usefixtures("fast_thread_switching")
def test_eight_threads_each_see_their_own_attempt_counts(clock: FakeClock) -> None:
    """8 threads x 200 calls of one decorated function: every call gets exactly its own attempts.

    Guards against tenacity#701.
    """
    attempts = 4

    @retry(on=Boom, attempts=attempts, backoff=NONE_JITTER, clock=clock)
    def flaky(tally: list[int], needed: int) -> int:
        tally[0] += 1
        if tally[0] < needed:
            raise Boom(tally[0])
        return tally[0]

    start = threading.Barrier(8, timeout=5)
    wrong: list[str] = []
    retries = [0] * 8

    def worker(i: int) -> None:
        start.wait()
        for r in range(200):
            needed = (i + r) % (attempts + 1) + 1  # 1..5; 5 can never succeed
            tally = [0]
            try:
                got = flaky(tally, needed)
            except Boom as err:
                if needed <= attempts or tally[0] != attempts:
                    wrong.append(f"thread {i} call {r}: gave up after {tally[0]}: {err!r}")
                retries[i] += attempts - 1
            else:
                if got != needed or tally[0] != needed:
                    wrong.append(f"thread {i} call {r}: {tally[0]} calls, wanted {needed}")
                retries[i] += needed - 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert wrong == []
    assert len(clock.sleeps) == sum(retries)


# --- Cancellation --------------------------------------------------------------------------------


class GateClock(FakeClock):
    """A FakeClock whose sleep_async records, then waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = asyncio.Event()
        self.release = asyncio.Event()

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        self.sleeping.set()
        await self.release.wait()


async def test_cancelling_during_the_backoff_sleep_stops_retrying() -> None:
    """A task cancelled while it sleeps between attempts raises CancelledError and never retries.

    Guards against tenacity#529.
    """
    clock = GateClock()
    script = Script(Boom, "never")
    fn = _retried("async", script, on=BaseException, attempts=5, backoff=NONE_JITTER, clock=clock)
    task = asyncio.ensure_future(_call(fn))
    await asyncio.wait_for(clock.sleeping.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    clock.release.set()
    await FakeClock().sleep_async(0)
    assert len(script.calls) == 1
    assert clock.sleeps == [0.1]


async def test_cancelling_during_an_attempt_stops_retrying(clock: FakeClock) -> None:
    """A task cancelled inside an attempt raises CancelledError after that one attempt.

    Guards against tenacity#529.
    """
    started = asyncio.Event()
    calls = 0

    @retry(on=BaseException, attempts=5, backoff=NONE_JITTER, clock=clock)
    async def hang() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            return "retried"  # a wrong retry ends the task at once instead of hanging
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.ensure_future(hang())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1
    assert clock.sleeps == []


# --- The decorator -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_decorator_preserves_metadata_and_kind(clock: FakeClock, mode: str) -> None:
    """The wrapper keeps __name__, __qualname__, __doc__, __wrapped__, and sync/async kind."""
    fn = Script("ok").fn(mode)
    fn.__doc__ = "Fetch the thing."
    wrapped = retry(on=Boom, clock=clock)(fn)
    assert wrapped.__name__ == fn.__name__
    assert wrapped.__qualname__ == fn.__qualname__
    assert wrapped.__doc__ == "Fetch the thing."
    assert wrapped.__wrapped__ is fn
    assert inspect.iscoroutinefunction(wrapped) is (mode == "async")


# --- Validation ----------------------------------------------------------------------------------

RETRY_BAD: list[Any] = [
    ("attempts", {"attempts": 0}),
    ("attempts", {"attempts": -1}),
    ("attempts", {"attempts": 2.0}),
    ("attempts", {"attempts": "3"}),
    ("attempts", {"attempts": True}),
    ("deadline", {"deadline": 0}),
    ("deadline", {"deadline": -1.0}),
    ("deadline", {"deadline": "5"}),
    ("deadline", {"deadline": math.nan}),
    ("backoff", {"backoff": 0.1}),
    ("backoff", {"backoff": None}),
    ("backoff", {"backoff": {"initial": 0.1}}),
    ("budget", {"budget": 10}),
    ("budget", {"budget": "budget"}),
    ("budget", {"budget": RetryBudget}),
    ("clock", {"clock": None}),  # once an AttributeError on the first call
    ("clock", {"clock": "system"}),
    ("rng", {"rng": 42}),
]


@pytest.mark.parametrize(("field", "config"), RETRY_BAD)
def test_retry_refuses_bad_arguments_naming_the_field(
    clock: FakeClock, field: str, config: dict[str, Any]
) -> None:
    """Every invalid retry argument is a TypeError or ValueError whose message names it."""
    config = {"on": Boom, "clock": clock, **config}
    with pytest.raises((TypeError, ValueError), match=rf"\b{field}\b"):
        retry(**config)(Script("ok").fn("sync"))


@pytest.mark.parametrize("on", ["Boom", 42, None, 1.5, [Boom], int, (Boom, "KeyError")])
def test_on_of_the_wrong_kind_is_a_type_error(clock: FakeClock, on: Any) -> None:
    """An `on` that is neither exception class(es) nor callable is a TypeError naming `on`."""
    with pytest.raises(TypeError, match=r"\bon\b"):
        retry(on=on, clock=clock)(Script("ok").fn("sync"))


@pytest.mark.parametrize(
    "config",
    [
        {"attempts": 1},
        {"deadline": 0.001},
        {"deadline": None},
        {"budget": None},
        {"budget": RetryBudget()},
        {"backoff": Backoff(jitter="none")},
    ],
)
def test_retry_accepts_boundary_arguments(clock: FakeClock, config: dict[str, Any]) -> None:
    """attempts=1, a tiny deadline, None budget/deadline and a custom Backoff are valid."""
    fn = retry(on=Boom, clock=clock, **config)(Script("ok").fn("sync"))
    assert fn() == "ok"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_zero_initial_backoff_retries_without_delay(clock: FakeClock, mode: str) -> None:
    """Backoff(initial=0) is allowed and means every retry starts at once."""
    script = Script(Boom, Boom, "ok")
    fn = _retried(mode, script, on=Boom, attempts=3, backoff=Backoff(initial=0), clock=clock)
    assert await _call(fn) == "ok"
    assert clock.sleeps == [0.0, 0.0]
