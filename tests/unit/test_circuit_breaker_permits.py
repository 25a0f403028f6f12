"""Permits belong to themselves: acquire/settle, permit() blocks, and blocks that end elsewhere.

Hardening issue item 1: ``with breaker:`` kept its permit on a per-context stack, so blocks
that did not nest settled each other's permits, and a block that ended in another thread,
task or context raised ``IndexError`` and leaked a HALF_OPEN probe slot for ever (the
resilience4j bugs r4j#903, r4j#935 and r4j#1432 are the same leak by other means).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from engined import Bulkhead, CircuitBreaker, CircuitBreakerOpenError, CircuitState, Permit
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]


async def _yield() -> None:
    """Let the other tasks run once (a FakeClock sleep of zero yields to the loop)."""
    await FakeClock().sleep_async(0)


Invariant = Callable[..., None]


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


def _fail(breaker: CircuitBreaker) -> None:
    with contextlib.suppress(Boom, CircuitBreakerOpenError):
        breaker.call(_raise)


def _raise() -> None:
    raise Boom


@pytest.fixture
def half_open(make_breaker: Factory, clock: FakeClock) -> CircuitBreaker:
    """A breaker with one probe slot, just turned HALF_OPEN."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=5.0, record_exceptions=Boom)
    _fail(breaker)
    clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker


# ------------------------------------------------------------------------- the API


def test_acquire_returns_a_permit_that_records_a_success(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """acquire() admits one call; record_success() counts one success."""
    breaker = make_breaker()
    permit = breaker.acquire()
    assert isinstance(permit, Permit)
    assert not permit.settled
    permit.record_success()
    assert permit.settled
    m = breaker.metrics
    assert_invariant(m)
    assert (m.successful_calls, m.failed_calls) == (1, 0)


def test_a_permit_settles_only_once(make_breaker: Factory) -> None:
    """After the first settle, record_failure, record_exception and release do nothing."""
    breaker = make_breaker(failure_threshold=1)
    permit = breaker.acquire()
    permit.record_success()
    permit.record_failure()
    permit.record_exception(Boom())
    permit.release()
    m = breaker.metrics
    assert (m.total_calls, m.successful_calls, m.failed_calls) == (1, 1, 0)
    assert m.state is CircuitState.CLOSED


def test_record_failure_counts_a_failure_and_can_open(make_breaker: Factory) -> None:
    """record_failure() is a failure whatever happened; enough of them open the breaker."""
    breaker = make_breaker(failure_threshold=2)
    breaker.acquire().record_failure()
    breaker.acquire().record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.failed_calls == 2


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (Boom(), "failed"),
        (Ignored(), "ignored"),
        (LookupError(), "successful"),
        (asyncio.CancelledError(), "none"),
        (GeneratorExit(), "none"),
    ],
)
def test_record_exception_classifies_like_the_decorator(
    make_breaker: Factory, exc: BaseException, kind: str
) -> None:
    """record_exception sorts the exception as a decorated call would, or gives the permit back."""
    breaker = make_breaker(record_exceptions=(Boom,), ignore_exceptions=(Ignored,))
    breaker.acquire().record_exception(exc)
    m = breaker.metrics
    counts = {
        "failed": m.failed_calls,
        "ignored": m.ignored_calls,
        "successful": m.successful_calls,
    }
    assert counts == {k: int(k == kind) for k in counts}
    assert m.total_calls == (0 if kind == "none" else 1)


def test_release_in_half_open_gives_the_probe_back_uncounted(half_open: CircuitBreaker) -> None:
    """release() frees the probe slot and counts nothing, so the next call is the probe."""
    permit = half_open.acquire()
    with pytest.raises(CircuitBreakerOpenError):
        half_open.acquire()
    permit.release()
    before = half_open.metrics.total_calls
    half_open.acquire().record_success()
    m = half_open.metrics
    assert m.state is CircuitState.CLOSED
    assert m.total_calls == before + 1


def test_acquire_while_open_raises_with_retry_after_and_counts_a_rejection(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """acquire() in OPEN refuses like a call: CircuitBreakerOpenError, counted as rejected."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0)
    _fail(breaker)
    clock.advance(4.0)
    with pytest.raises(CircuitBreakerOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_after == pytest.approx(6.0)
    assert breaker.metrics.rejected_calls == 1


def test_permit_block_settles_its_permit_by_the_outcome(make_breaker: Factory) -> None:
    """``with breaker.permit()`` counts a success on a clean exit and a failure on Boom."""
    breaker = make_breaker(record_exceptions=Boom)
    with breaker.permit() as permit:
        assert isinstance(permit, Permit)
    with pytest.raises(Boom), breaker.permit():
        raise Boom
    m = breaker.metrics
    assert (m.successful_calls, m.failed_calls) == (1, 1)


def test_a_block_that_settles_its_own_permit_is_not_counted_again(
    make_breaker: Factory,
) -> None:
    """A block that calls record_failure() itself exits without a second count."""
    breaker = make_breaker()
    with breaker.permit() as permit:
        permit.record_failure()
    m = breaker.metrics
    assert (m.total_calls, m.failed_calls) == (1, 1)


def test_a_permit_block_is_single_use(make_breaker: Factory) -> None:
    """Entering one permit() object twice is a RuntimeError; each block needs a fresh one."""
    breaker = make_breaker()
    block = breaker.permit()
    with block:
        pass
    with pytest.raises(RuntimeError, match=r"breaker\.permit\(\)"), block:
        pass
    assert breaker.metrics.total_calls == 1


async def test_async_permit_block_settles_its_permit(make_breaker: Factory) -> None:
    """``async with breaker.permit()`` works like the sync block, across an await."""
    breaker = make_breaker(record_exceptions=Boom)
    async with breaker.permit():
        await _yield()
    with pytest.raises(Boom):
        async with breaker.permit():
            raise Boom
    m = breaker.metrics
    assert (m.successful_calls, m.failed_calls) == (1, 1)


def test_with_breaker_itself_is_refused_naming_permit(make_breaker: Factory) -> None:
    """``with breaker:`` is a TypeError that points to ``breaker.permit()``; nothing is counted."""
    breaker = make_breaker()
    with pytest.raises(TypeError, match=r"breaker\.permit\(\)"), breaker:  # type: ignore[misc]
        pass
    assert breaker.metrics.total_calls == 0


async def test_async_with_breaker_itself_is_refused_naming_permit(make_breaker: Factory) -> None:
    """``async with breaker:`` is refused the same way."""
    breaker = make_breaker()
    with pytest.raises(TypeError, match=r"breaker\.permit\(\)"):
        async with breaker:  # type: ignore[misc]
            pass


# ------------------------------------------------- blocks that do not nest, or end elsewhere


def test_generators_consumed_in_turn_settle_only_their_own_permits(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """A late CLOSED-phase success cannot close HALF_OPEN; the real probe's failure re-opens.

    Old behaviour: the first generator's exit popped the second's probe permit, closing the
    breaker, and the probe's failure landed on the stale permit and was thrown away.
    """
    breaker = make_breaker(failure_threshold=1, recovery_timeout=5.0, record_exceptions=Boom)

    def read(fail: bool) -> Iterator[int]:
        with breaker.permit():
            yield 1
            if fail:
                raise Boom

    early = read(fail=False)
    next(early)  # admitted in CLOSED, held across the yield
    _fail(breaker)  # another call trips the breaker
    clock.advance(5.0)
    probe = read(fail=True)
    next(probe)  # the HALF_OPEN probe
    assert next(early, None) is None  # the late success: counted, moves nothing
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(Boom):
        next(probe)
    m = breaker.metrics
    assert m.state is CircuitState.OPEN
    assert m.times_opened == 2
    assert (m.successful_calls, m.failed_calls) == (1, 2)


async def test_a_blocking_generator_read_through_to_thread_settles_its_probe(
    half_open: CircuitBreaker,
) -> None:
    """A guarded generator stepped by ``asyncio.to_thread(next, it)`` closes the breaker.

    Each to_thread call runs in a fresh copy of the context, so the block begins in one
    context and ends in another; the old stack raised IndexError and leaked the probe.
    """

    def rows() -> Iterator[int]:
        with half_open.permit():
            yield 1
            yield 2

    it = rows()
    assert await asyncio.to_thread(next, it) == 1
    assert await asyncio.to_thread(next, it) == 2
    assert await asyncio.to_thread(next, it, None) is None
    assert half_open.state is CircuitState.CLOSED
    half_open.call(lambda: None)  # and calls go through again


async def test_an_async_generator_started_under_wait_for_settles_its_probe(
    half_open: CircuitBreaker,
) -> None:
    """An item read under ``asyncio.wait_for`` (another task), then one here: one settle."""

    async def rows() -> AsyncIterator[int]:
        async with half_open.permit():
            yield 1
            raise Boom

    agen = rows()
    assert await asyncio.wait_for(agen.__anext__(), timeout=5) == 1
    with pytest.raises(Boom):
        await agen.__anext__()
    m = half_open.metrics
    assert m.state is CircuitState.OPEN
    assert m.failed_calls == 2


def test_a_permit_settled_in_another_thread_counts_once(half_open: CircuitBreaker) -> None:
    """A probe acquired here and settled by a worker thread closes the breaker."""
    permit = half_open.acquire()
    worker = threading.Thread(target=permit.record_success)
    worker.start()
    worker.join(5)
    assert half_open.state is CircuitState.CLOSED


async def test_a_bulkhead_block_may_end_in_another_context() -> None:
    """A bulkhead slot taken in one to_thread context and given back in another is not lost."""
    bh = Bulkhead("rows", max_concurrent=1)

    def rows() -> Iterator[int]:
        with bh:
            yield 1

    it = rows()
    assert await asyncio.to_thread(next, it) == 1
    assert bh.active == 1
    assert await asyncio.to_thread(next, it, None) is None
    assert bh.active == 0
    assert bh.call(lambda: 7) == 7


def test_bulkhead_blocks_need_not_nest() -> None:
    """Two generators holding bulkhead slots, finished in their start order, free both slots."""
    bh = Bulkhead("rows", max_concurrent=2)

    def rows() -> Iterator[int]:
        with bh:
            yield 1

    first, second = rows(), rows()
    next(first)
    next(second)
    assert bh.active == 2
    assert next(first, None) is None
    assert next(second, None) is None
    assert bh.active == 0


# ------------------------------------------------------------------ dropped permits


def test_a_dropped_unsettled_probe_permit_is_released_when_collected(
    half_open: CircuitBreaker,
) -> None:
    """Forgetting a HALF_OPEN permit cannot wedge the breaker: the next call is admitted."""
    half_open.acquire()  # dropped at once
    half_open.call(lambda: None)
    m = half_open.metrics
    assert m.state is CircuitState.CLOSED
    assert m.total_calls == 2  # the trip and the probe; the dropped permit counted nothing


def test_a_permit_dropped_inside_a_reference_cycle_is_released_by_gc(
    half_open: CircuitBreaker,
) -> None:
    """A permit only the garbage collector can reach still gives its probe slot back."""

    class Holder:
        pass

    gc.disable()  # an automatic collection could free the cycle before the check below
    try:
        holder = Holder()
        holder.me = holder  # type: ignore[attr-defined]
        holder.permit = half_open.acquire()  # type: ignore[attr-defined]
        del holder
        with pytest.raises(CircuitBreakerOpenError):
            half_open.acquire()  # the cycle still holds the slot
    finally:
        gc.enable()
    gc.collect()
    half_open.call(lambda: None)
    assert half_open.state is CircuitState.CLOSED


def test_a_permit_from_an_old_phase_dropped_later_frees_no_new_slot(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """A probe of an earlier HALF_OPEN, dropped after the breaker re-opened, frees no new slot."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=5.0, half_open_max_calls=2)
    _fail(breaker)
    clock.advance(5.0)
    first, stale = breaker.acquire(), breaker.acquire()
    first.record_failure()  # re-opens; ``stale`` now belongs to a phase that is over
    clock.advance(5.0)
    held = [breaker.acquire(), breaker.acquire()]  # both slots of the new HALF_OPEN
    del stale
    gc.collect()
    with pytest.raises(CircuitBreakerOpenError):
        breaker.acquire()
    for permit in held:
        permit.release()


# ------------------------------------------------------------------ concurrency


def test_threads_settling_one_permit_count_it_exactly_once(make_breaker: Factory) -> None:
    """Sixteen threads race to settle the same permit; exactly one settle counts."""
    breaker = make_breaker(failure_threshold=None)
    rounds = 200
    start = threading.Barrier(16, timeout=5)
    permits: list[Permit] = []
    lock = threading.Lock()

    def settle(i: int) -> None:
        for r in range(rounds):
            start.wait()
            if i == 0:
                with lock:
                    permits.append(breaker.acquire())
            start.wait()
            permit = permits[r]
            (permit.record_success if i % 2 else permit.record_failure)()

    threads = [threading.Thread(target=settle, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    m = breaker.metrics
    assert m.total_calls == rounds
    assert m.successful_calls + m.failed_calls == rounds


def test_threads_acquiring_and_settling_keep_exact_counts(
    make_breaker: Factory, assert_invariant: Invariant, fast_thread_switching: None
) -> None:
    """Eight threads x 500 acquire/settle pairs: every success and failure is counted once."""
    breaker = make_breaker(failure_threshold=None)

    def work(i: int) -> None:
        for n in range(500):
            permit = breaker.acquire()
            if (i + n) % 3 == 0:
                permit.record_failure()
            else:
                permit.record_success()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    m = breaker.metrics
    assert_invariant(m)
    expected_failures = sum(1 for i in range(8) for n in range(500) if (i + n) % 3 == 0)
    assert (m.total_calls, m.failed_calls) == (4000, expected_failures)


async def test_tasks_holding_blocks_across_awaits_in_any_order_keep_exact_counts(
    make_breaker: Factory, assert_invariant: Invariant
) -> None:
    """A hundred tasks hold permit() blocks across awaits and finish in reverse order."""
    breaker = make_breaker(failure_threshold=None, record_exceptions=Boom)
    gates = [asyncio.Event() for _ in range(100)]

    async def task(i: int) -> None:
        async with breaker.permit():
            await gates[i].wait()
            if i % 4 == 0:
                raise Boom

    tasks = [asyncio.create_task(task(i)) for i in range(100)]
    await _yield()
    for gate in reversed(gates):
        gate.set()
        await _yield()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, Boom) for r in results) == 25
    m = breaker.metrics
    assert_invariant(m)
    assert (m.successful_calls, m.failed_calls) == (75, 25)


async def test_half_open_probes_held_by_tasks_are_exact(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """Twenty tasks try to take three probe slots at once: exactly three get permits."""
    breaker = make_breaker(
        failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=3, success_threshold=3
    )
    _fail(breaker)
    clock.advance(1.0)
    release = asyncio.Event()
    admitted = 0

    async def probe() -> None:
        nonlocal admitted
        async with breaker.permit():
            admitted += 1
            await release.wait()

    tasks = [asyncio.create_task(probe()) for _ in range(20)]
    await _yield()
    assert admitted == 3
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, CircuitBreakerOpenError) for r in results) == 17
    assert breaker.state is CircuitState.CLOSED
