"""The lock-free books of a plain breaker's CLOSED phase: window, run, bounds, races.

A plain breaker (consecutive-failure rule only, untimed, no result_is_failure) records
CLOSED outcomes without its lock (engined/core/_phase.py). These tests pin what that
path must keep exact: the window's failure rate, the failure run, the trip on the exact
call, a bounded record, and exact counts with threads failing and reading at once.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable

import pytest

from engined import CircuitBreaker, CircuitBreakerMetrics, CircuitBreakerOpenError, CircuitState

Factory = Callable[..., CircuitBreaker]
Invariant = Callable[[CircuitBreakerMetrics], None]


class Boom(Exception):
    pass


def _raise() -> None:
    raise Boom


def _run(breaker: CircuitBreaker, outcomes: list[bool]) -> None:
    """Call through the breaker once per outcome: True succeeds, False fails."""
    for ok in outcomes:
        if ok:
            breaker.call(lambda: None)
        else:
            with pytest.raises(Boom):
                breaker.call(_raise)


@pytest.mark.parametrize("seed", range(5))
def test_failure_rate_is_that_of_the_last_window_size_calls(
    make_breaker: Factory, seed: int
) -> None:
    """After a random run of outcomes, failure_rate is the failed share of the last 10 calls."""
    rng = random.Random(seed)
    breaker = make_breaker(failure_threshold=None, window_size=10, minimum_calls=4)
    outcomes: list[bool] = []
    for _ in range(60):
        step = [rng.random() < 0.6 for _ in range(rng.randint(1, 7))]
        _run(breaker, step)
        outcomes += step
        last = outcomes[-10:]
        expected = None if len(last) < 4 else last.count(False) / len(last)
        assert breaker.metrics.failure_rate == expected


def test_consecutive_failures_is_the_current_run(make_breaker: Factory) -> None:
    """consecutive_failures counts failures since the last success, and 0 right after one."""
    breaker = make_breaker(failure_threshold=None)
    _run(breaker, [False, False, True, False, False, False])
    assert breaker.metrics.consecutive_failures == 3
    _run(breaker, [True])
    assert breaker.metrics.consecutive_failures == 0


@pytest.mark.parametrize("threshold", [1, 2, 5, 150])
def test_trips_on_exactly_the_threshold_th_failure_in_a_row(
    make_breaker: Factory, threshold: int
) -> None:
    """A run of threshold-1 failures broken by a success stays closed; threshold in a row trips."""
    breaker = make_breaker(failure_threshold=threshold, window_size=100)
    _run(breaker, [False] * (threshold - 1) + [True] + [False] * (threshold - 1))
    assert breaker.state is CircuitState.CLOSED
    _run(breaker, [False])
    m = breaker.metrics
    assert m.state is CircuitState.OPEN
    assert m.consecutive_failures == threshold


def test_the_window_survives_into_open(make_breaker: Factory) -> None:
    """In OPEN the metrics still show the window the breaker tripped on."""
    breaker = make_breaker(failure_threshold=3, window_size=10, minimum_calls=5)
    _run(breaker, [True, True, False, False, False])
    m = breaker.metrics
    assert m.state is CircuitState.OPEN
    assert m.failure_rate == pytest.approx(3 / 5)


def test_a_long_failure_streak_keeps_a_bounded_record(make_breaker: Factory) -> None:
    """50,000 failures that never trip keep at most twice the window of failure tickets."""
    breaker = make_breaker(failure_threshold=10**9, window_size=100)
    _run(breaker, [False] * 50_000)
    fails = breaker._phase.fails
    assert fails is not None
    assert len(fails) <= 201
    m = breaker.metrics
    assert (m.failed_calls, m.failure_rate, m.consecutive_failures) == (50_000, 1.0, 50_000)


def test_a_plain_failure_through_a_permit_uses_the_same_books(make_breaker: Factory) -> None:
    """Permits, call() and the decorator share the books: three failures in a row trip."""
    breaker = make_breaker(failure_threshold=3)
    breaker.acquire().record_failure()
    with pytest.raises(Boom):
        breaker.call(_raise)
    with pytest.raises(Boom):
        breaker(_raise)()
    assert breaker.state is CircuitState.OPEN


def test_a_failure_that_is_not_recorded_breaks_the_run(make_breaker: Factory) -> None:
    """An exception outside record_exceptions is a success for the run, with a custom matcher."""
    breaker = make_breaker(failure_threshold=2, record_exceptions=(Boom,))
    with pytest.raises(Boom):
        breaker.call(_raise)
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["k"])
    with pytest.raises(Boom):
        breaker.call(_raise)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.consecutive_failures == 1


def test_threads_failing_together_open_it_once_and_count_every_call(
    make_breaker: Factory, assert_invariant: Invariant, fast_thread_switching: None
) -> None:
    """Eight threads fail 2,000 times each through one breaker: it opens once, nothing is lost."""
    breaker = make_breaker(failure_threshold=50, recovery_timeout=3600.0)
    ran = [0] * 8
    rejected = [0] * 8
    start = threading.Barrier(8, timeout=5)

    def hammer(i: int) -> None:
        start.wait()
        for _ in range(2_000):
            try:
                breaker.call(_fail_counting, ran, i)
            except Boom:
                pass
            except CircuitBreakerOpenError:
                rejected[i] += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    m = breaker.metrics
    assert_invariant(m)
    assert m.state is CircuitState.OPEN
    assert m.times_opened == 1
    assert m.failed_calls == sum(ran)
    assert m.rejected_calls == sum(rejected) == 16_000 - sum(ran)
    assert sum(ran) >= 50  # never before the threshold-th failure


def _fail_counting(ran: list[int], i: int) -> None:
    ran[i] += 1
    raise Boom


def test_readers_racing_failing_threads_see_consistent_snapshots(
    make_breaker: Factory, fast_thread_switching: None
) -> None:
    """Metrics read while four threads fail and succeed never raise and never go backwards."""
    breaker = make_breaker(failure_threshold=None, window_size=50)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(5_000):
            with contextlib.suppress(Boom):
                breaker.call(_raise if rng.random() < 0.5 else (lambda: None))

    def read() -> None:
        last = 0
        try:
            while not stop.is_set():
                m = breaker.metrics
                assert m.total_calls >= last
                assert m.failure_rate is None or 0.0 <= m.failure_rate <= 1.0
                last = m.total_calls
        except BaseException as exc:  # reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    stop.set()
    reader.join(10)
    assert errors == []
    assert breaker.metrics.total_calls == 20_000
