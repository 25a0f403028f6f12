"""Named retries: per-name cumulative attempt counters that metrics read at scrape time."""

from __future__ import annotations

import inspect
import itertools
import sys
import threading

import pytest

import engined
from engined import Backoff, RetryStats, retry, retry_stats
from engined.testing import FakeClock

NO_WAIT = Backoff(initial=0.0, jitter="none")
_SEQ = itertools.count()


def _name(label: str) -> str:
    """A name no other test uses: the counters are process-wide and only grow."""
    return f"{label}-{next(_SEQ)}"


class Flaky:
    """Fails ``failures`` times per call sequence, then succeeds; counts its invocations."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.invocations = 0

    def __call__(self) -> str:
        self.invocations += 1
        if self.invocations <= self.failures:
            raise ConnectionError("down")
        return "ok"


def test_named_sync_retry_counts_calls_and_every_attempt() -> None:
    """Two calls, one failing twice first, count 2 calls and 4 attempts (2 retries)."""
    name = _name("sync")
    flaky = Flaky(failures=2)
    guarded = retry(on=ConnectionError, attempts=3, backoff=NO_WAIT, clock=FakeClock(), name=name)(
        flaky
    )
    assert guarded() == "ok"
    assert guarded() == "ok"
    stats = retry_stats()[name]
    assert stats == RetryStats(name=name, calls=2, attempts=4)
    assert stats.retries == 2
    assert flaky.invocations == stats.attempts


async def test_named_async_retry_counts_calls_and_every_attempt() -> None:
    """An async function retried once counts 1 call and 2 attempts."""
    name = _name("async")
    seen = []

    @retry(on=ConnectionError, attempts=3, backoff=NO_WAIT, clock=FakeClock(), name=name)
    async def fetch() -> str:
        seen.append(1)
        if len(seen) == 1:
            raise ConnectionError("down")
        return "ok"

    assert await fetch() == "ok"
    assert retry_stats()[name] == RetryStats(name=name, calls=1, attempts=2)
    assert inspect.iscoroutinefunction(fetch)


def test_a_call_that_gives_up_counts_every_attempt_it_made() -> None:
    """A call failing every time counts all ``attempts`` attempts and one call."""
    name = _name("exhausted")
    guarded = retry(on=ConnectionError, attempts=4, backoff=NO_WAIT, clock=FakeClock(), name=name)(
        Flaky(failures=99)
    )
    with pytest.raises(ConnectionError):
        guarded()
    assert retry_stats()[name] == RetryStats(name=name, calls=1, attempts=4)


def test_functions_decorated_with_one_name_share_its_counters() -> None:
    """Two functions named alike add up under that name."""
    name = _name("shared")
    first = retry(on=ConnectionError, backoff=NO_WAIT, clock=FakeClock(), name=name)(Flaky(0))
    second = retry(on=ConnectionError, backoff=NO_WAIT, clock=FakeClock(), name=name)(Flaky(1))
    first()
    second()
    assert retry_stats()[name] == RetryStats(name=name, calls=2, attempts=3)


def test_a_retry_interrupted_during_its_backoff_is_not_counted() -> None:
    """A retry counts once its sleep is over: a sleep that raises leaves only the first attempt."""
    name = _name("interrupted")

    class BrokenSleep(FakeClock):
        def sleep(self, seconds: float) -> None:
            raise RuntimeError("interrupted")

    guarded = retry(on=ConnectionError, backoff=NO_WAIT, clock=BrokenSleep(), name=name)(Flaky(5))
    with pytest.raises(RuntimeError):
        guarded()
    assert retry_stats()[name] == RetryStats(name=name, calls=1, attempts=1)


def test_unnamed_retry_registers_no_counters_and_calls_the_function_directly() -> None:
    """Without a name nothing is counted, and each attempt is the function itself (no wrapper)."""
    before = dict(retry_stats())
    frames: list[str] = []

    def probe() -> None:
        frames.append(sys._getframe(1).f_code.co_name)

    retry(on=ConnectionError, clock=FakeClock())(probe)()
    assert dict(retry_stats()) == before
    assert frames == ["retrying"]  # called straight from the retry loop


def test_named_retry_calls_the_function_through_one_counting_frame() -> None:
    """With a name, each attempt goes through the counter; the wrapper keeps the metadata."""
    frames: list[str] = []

    def probe() -> None:
        """Probe's own docstring."""
        frames.append(sys._getframe(1).f_code.co_name)

    guarded = retry(on=ConnectionError, clock=FakeClock(), name=_name("frame"))(probe)
    guarded()
    assert frames == ["counted"]
    assert guarded.__name__ == "probe"
    assert guarded.__doc__ == "Probe's own docstring."


def test_counts_stay_exact_under_threads(fast_thread_switching: None) -> None:
    """Eight threads calling one named retry lose no count: the counters are atomic."""
    name = _name("threads")
    guarded = retry(on=ConnectionError, backoff=NO_WAIT, clock=FakeClock(), name=name)(lambda: None)
    per_thread, threads = 2_000, 8
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            guarded()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = per_thread * threads
    assert retry_stats()[name] == RetryStats(name=name, calls=total, attempts=total)


@pytest.mark.parametrize(
    ("name", "error"),
    [("", ValueError), ("   ", ValueError), (42, TypeError), (b"db", TypeError)],
)
def test_bad_name_is_refused_naming_the_parameter(name: object, error: type[Exception]) -> None:
    """An empty or non-string name is refused at decoration time, naming ``name``."""
    with pytest.raises(error, match="name"):
        retry(on=ConnectionError, name=name)  # type: ignore[arg-type]


def test_retry_stats_lists_names_in_sorted_order() -> None:
    """``retry_stats()`` is keyed by name, sorted, each value naming itself."""
    late, early = _name("zz-order"), _name("aa-order")
    retry(on=ConnectionError, name=late)
    retry(on=ConnectionError, name=early)
    stats = retry_stats()
    names = list(stats)
    assert names == sorted(names)
    assert stats[early] == RetryStats(name=early, calls=0, attempts=0)
    assert all(value.name == key for key, value in stats.items())


def test_retry_stats_is_public_from_the_package() -> None:
    """``engined.retry_stats`` and ``engined.RetryStats`` are the core's own objects."""
    from engined.core import retry as core_retry

    assert engined.retry_stats is core_retry.retry_stats
    assert engined.RetryStats is core_retry.RetryStats
