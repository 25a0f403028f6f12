"""State-change listeners: typed events, timing, isolation from failures, no deadlock."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import pytest

from engined import CircuitBreaker, CircuitState, StateChange
from engined.testing import FakeClock

Factory = Callable[..., CircuitBreaker]
S = CircuitState


class Boom(Exception):
    """The recorded failure."""


def _raise() -> None:
    raise Boom


def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise)


def test_listener_gets_typed_events_stamped_with_the_clock(
    make_breaker: Factory, clock: FakeClock
) -> None:
    """Each transition delivers one frozen StateChange whose `at` is the clock at the transition.

    Guards against pybreaker#16 (listener not called when a failure trips the breaker).
    """
    breaker = make_breaker("orders", failure_threshold=1, recovery_timeout=10.0)
    events: list[StateChange] = []
    breaker.add_listener(events.append)
    clock.advance(5.0)
    _fail(breaker)
    clock.advance(10.0)
    assert breaker.state is S.HALF_OPEN
    clock.advance(1.5)
    breaker.call(lambda: None)
    clock.advance(1.0)
    breaker.force_open()
    clock.advance(1.0)
    breaker.reset()
    clock.advance(1.0)
    breaker.disable()
    assert events == [
        StateChange(name="orders", from_state=S.CLOSED, to_state=S.OPEN, at=5.0),
        StateChange(name="orders", from_state=S.OPEN, to_state=S.HALF_OPEN, at=15.0),
        StateChange(name="orders", from_state=S.HALF_OPEN, to_state=S.CLOSED, at=16.5),
        StateChange(name="orders", from_state=S.CLOSED, to_state=S.FORCED_OPEN, at=17.5),
        StateChange(name="orders", from_state=S.FORCED_OPEN, to_state=S.CLOSED, at=18.5),
        StateChange(name="orders", from_state=S.CLOSED, to_state=S.DISABLED, at=19.5),
    ]
    assert all(isinstance(e, StateChange) for e in events)
    with pytest.raises(dataclasses.FrozenInstanceError):
        events[0].at = 0.0  # type: ignore[misc]


def test_no_event_without_a_transition(make_breaker: Factory) -> None:
    """Calls that do not change the state notify nobody."""
    breaker = make_breaker(failure_threshold=3)
    events: list[StateChange] = []
    breaker.add_listener(events.append)
    breaker.call(lambda: None)
    _fail(breaker)
    _fail(breaker)
    breaker.call(lambda: None)
    breaker.reset()  # already CLOSED: not a change
    assert events == []


@pytest.mark.parametrize("trigger", ["state", "metrics", "call"])
def test_lazy_half_open_is_announced_when_observed(
    make_breaker: Factory, clock: FakeClock, trigger: str
) -> None:
    """Reading state or metrics, or making a call, performs the due OPEN->HALF_OPEN and notifies."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=10.0, success_threshold=2)
    _fail(breaker)
    events: list[StateChange] = []
    breaker.add_listener(events.append)
    clock.advance(10.0)
    assert events == []  # nothing happens until someone looks
    if trigger == "state":
        _ = breaker.state
    elif trigger == "metrics":
        _ = breaker.metrics
    else:
        breaker.call(lambda: None)
    assert [(e.from_state, e.to_state, e.at) for e in events] == [(S.OPEN, S.HALF_OPEN, 10.0)]


def test_listener_runs_in_the_thread_that_caused_the_transition(make_breaker: Factory) -> None:
    """The listener runs synchronously in the caller's thread, before the call returns."""
    breaker = make_breaker(failure_threshold=1)
    seen: list[int] = []
    breaker.add_listener(lambda e: seen.append(threading.get_ident()))
    caller: list[int] = []

    def work() -> None:
        caller.append(threading.get_ident())
        _fail(breaker)
        caller.append(len(seen))

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=5)
    assert not t.is_alive()
    assert seen == [caller[0]]
    assert caller[1] == 1  # already notified when call() raised


def test_listener_may_read_the_breaker_without_deadlock(make_breaker: Factory) -> None:
    """A listener reading state and metrics runs after the lock is released, so it cannot deadlock.

    Guards against the lock held across calls and notifications behind pybreaker#55.
    """
    breaker = make_breaker(failure_threshold=1)
    observed: list[tuple[CircuitState, CircuitState, int]] = []

    def listener(event: StateChange) -> None:
        m = breaker.metrics
        observed.append((breaker.state, m.state, m.failed_calls))

    breaker.add_listener(listener)
    t = threading.Thread(target=_fail, args=(breaker,), daemon=True)
    t.start()
    t.join(timeout=5)
    assert not t.is_alive(), "listener deadlocked on the breaker's lock"
    assert observed == [(S.OPEN, S.OPEN, 1)]


def _trip(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _fail(breaker)


def _observe_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _fail(breaker)
    clock.advance(1.0)
    _ = breaker.state


def _close_by_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _fail(breaker)
    clock.advance(1.0)
    breaker.call(lambda: None)


def _reopen_by_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _fail(breaker)
    clock.advance(1.0)
    _fail(breaker)


def _manual(action: str) -> Callable[[CircuitBreaker, FakeClock], None]:
    def drive(breaker: CircuitBreaker, clock: FakeClock) -> None:
        if action == "reset":
            breaker.force_open()
        getattr(breaker, action)()

    return drive


@pytest.mark.parametrize(
    "drive",
    [
        pytest.param(_trip, id="failure-opens"),
        pytest.param(_observe_half_open, id="lazy-half-open"),
        pytest.param(_close_by_probe, id="probe-closes"),
        pytest.param(_reopen_by_probe, id="probe-reopens"),
        pytest.param(_manual("force_open"), id="force_open"),
        pytest.param(_manual("disable"), id="disable"),
        pytest.param(_manual("reset"), id="reset"),
    ],
)
def test_every_transition_notifies_outside_the_lock(
    make_breaker: Factory, clock: FakeClock, drive: Callable[[CircuitBreaker, FakeClock], None]
) -> None:
    """Whatever causes the transition, a listener reading the breaker never deadlocks."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=1.0)
    seen: list[tuple[CircuitState, CircuitState]] = []

    def listener(event: StateChange) -> None:
        seen.append((event.to_state, breaker.metrics.state))

    breaker.add_listener(listener)
    t = threading.Thread(target=drive, args=(breaker, clock), daemon=True)
    t.start()
    t.join(timeout=5)
    assert not t.is_alive(), "listener deadlocked on the breaker's lock"
    assert seen
    assert seen[-1] == (breaker.state, breaker.state)


def test_listener_may_call_through_the_breaker(make_breaker: Factory, clock: FakeClock) -> None:
    """A listener that makes a call or a manual transition on the same breaker does not deadlock."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=1.0)
    results: list[object] = []

    def listener(event: StateChange) -> None:
        if event.to_state is S.CLOSED:
            results.append(breaker.call(lambda: "inner"))
        if event.to_state is S.HALF_OPEN:
            results.append(event.to_state)

    breaker.add_listener(listener)

    def drive() -> None:
        _fail(breaker)
        clock.advance(1.0)
        breaker.call(lambda: None)

    t = threading.Thread(target=drive, daemon=True)
    t.start()
    t.join(timeout=5)
    assert not t.is_alive(), "listener deadlocked calling through the breaker"
    assert results == [S.HALF_OPEN, "inner"]


def test_raising_listener_is_logged_and_the_rest_still_run(
    make_breaker: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; the caller sees its own outcome and later listeners run.

    Guards against the pybreaker behaviour noted in PR pybreaker#41 (a raising listener breaks the
    call).
    """
    breaker = make_breaker("flaky", failure_threshold=1, recovery_timeout=1.0)
    later: list[StateChange] = []

    def bad(event: StateChange) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad)
    breaker.add_listener(later.append)
    with caplog.at_level(logging.WARNING):
        _fail(breaker)  # the caller gets Boom, not RuntimeError
        breaker.force_open()
        breaker.reset()
    assert [e.to_state for e in later] == [S.OPEN, S.FORCED_OPEN, S.CLOSED]
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 3
    assert all(r.exc_info is not None or "listener bug" in r.getMessage() for r in errors)
    assert breaker.call(lambda: "fine") == "fine"


def test_raising_listener_does_not_hide_a_return_value(
    make_breaker: Factory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe success that closes the breaker returns its value even when a listener raises."""
    breaker = make_breaker(failure_threshold=1, recovery_timeout=1.0)
    _fail(breaker)
    clock.advance(1.0)
    _ = breaker.state

    def bad(event: StateChange) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad)
    with caplog.at_level(logging.WARNING):
        assert breaker.call(lambda: 123) == 123
    assert breaker.state is S.CLOSED
    assert any(r.levelno >= logging.WARNING for r in caplog.records)


def test_remove_listener_stops_notifications(make_breaker: Factory) -> None:
    """After remove_listener the function is no longer called; other listeners still are."""
    breaker = make_breaker(failure_threshold=1)
    removed: list[StateChange] = []
    kept: list[StateChange] = []
    to_remove = removed.append
    breaker.add_listener(to_remove)
    breaker.add_listener(kept.append)
    breaker.remove_listener(to_remove)
    _fail(breaker)
    assert removed == []
    assert [e.to_state for e in kept] == [S.OPEN]


async def test_listener_hears_transitions_caused_from_asyncio(
    make_breaker: Factory,
) -> None:
    """Transitions caused by call_async reach listeners like sync ones."""
    breaker = make_breaker(failure_threshold=1)
    events: list[StateChange] = []
    breaker.add_listener(events.append)

    async def boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        await breaker.call_async(boom)
    assert [(e.from_state, e.to_state) for e in events] == [(S.CLOSED, S.OPEN)]


def test_a_listener_calling_sys_exit_never_reaches_the_caller(
    make_breaker: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """SystemExit from a listener is logged like any error: the caller gets its own outcome."""
    breaker = make_breaker(failure_threshold=1)

    def exits(event: StateChange) -> None:
        raise SystemExit(0)

    breaker.add_listener(exits)
    with caplog.at_level(logging.ERROR):
        _fail(breaker)
    assert breaker.state is S.OPEN
    assert "SystemExit" in caplog.text


def test_a_listener_keyboard_interrupt_propagates(make_breaker: Factory) -> None:
    """KeyboardInterrupt is the user's: it is not swallowed by the listener guard."""
    breaker = make_breaker(failure_threshold=1)

    def interrupted(event: StateChange) -> None:
        raise KeyboardInterrupt

    breaker.add_listener(interrupted)
    with pytest.raises(KeyboardInterrupt):
        breaker.force_open()
    assert breaker.state is S.FORCED_OPEN
