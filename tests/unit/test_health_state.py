"""ComponentState: effective status, thresholds and heal bookkeeping, driven by plain float times.

Letters stand for results and statuses alike: ``P`` HEALTHY, ``D`` DEGRADED, ``F`` UNHEALTHY,
``U`` UNKNOWN. ``_feed(state, "FFPFF")`` records one result per second and returns the effective
status after each one, in the same alphabet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engined.core._health_model import (
    ComponentHealth,
    ComponentType,
    HealState,
    HealthCheckConfig,
    HealthCheckResult,
    HealthStatus,
)
from engined.core._health_state import ComponentState
from engined.core._health_stats import ComponentStats

S = HealthStatus
H = HealState

_STATUS = {"P": S.HEALTHY, "D": S.DEGRADED, "F": S.UNHEALTHY, "U": S.UNKNOWN}
_LETTER = {status: letter for letter, status in _STATUS.items()}

# initial=1, multiplier=2, max=5, five attempts: the gaps after attempts 1..4 are 1, 2, 4, 5.
_SCHEDULE = {
    "heal_backoff_initial": 1.0,
    "heal_backoff_multiplier": 2.0,
    "heal_backoff_max": 5.0,
    "heal_max_attempts": 5,
}


def _result(letter: str) -> HealthCheckResult:
    return HealthCheckResult("db", "database", _STATUS[letter])


def _state(*, has_heal: bool = True, **config: Any) -> ComponentState:
    return ComponentState(
        "db", ComponentType.DATABASE, HealthCheckConfig(**config), has_heal=has_heal
    )


def _feed(state: ComponentState, results: str, start: float = 0.0, step: float = 1.0) -> str:
    """Record one result per letter at start, start + step, ...; return the statuses after each."""
    seen = []
    for i, letter in enumerate(results):
        state.record(_result(letter), start + i * step)
        seen.append(_LETTER[state.status])
    return "".join(seen)


def _heal(state: ComponentState, end: float, error: str | None = "RuntimeError") -> None:
    """Run one heal attempt that ends at ``end``."""
    state.heal_started()
    state.heal_finished(end, error)


def _due(state: ComponentState, now: float) -> bool:
    return state.heal_due(now, parent_unhealthy=False)


def _heal_state(state: ComponentState, now: float, *, parent_unhealthy: bool = False) -> HealState:
    return state.heal_state(now, parent_unhealthy=parent_unhealthy)


# --- effective status -------------------------------------------------------------------------


def test_new_component_is_unknown_with_nothing_recorded() -> None:
    """A component nobody has checked is UNKNOWN, with zero counts and no last result."""
    snap = _state().snapshot(0.0, parent_unhealthy=False)
    assert snap.status is S.UNKNOWN
    assert snap.last_result is None
    assert (snap.check_count, snap.consecutive_failures, snap.consecutive_successes) == (0, 0, 0)
    assert (snap.heal_attempts, snap.heal_state, snap.last_heal_error) == (0, H.IDLE, None)


@pytest.mark.parametrize("failure_threshold", [2, 3, 5])
def test_failures_below_the_threshold_keep_unknown_never_healthy(failure_threshold: int) -> None:
    """The first n-1 failures leave a never-seen component UNKNOWN, not HEALTHY (health#31)."""
    state = _state(failure_threshold=failure_threshold)
    assert _feed(state, "F" * (failure_threshold - 1)) == "U" * (failure_threshold - 1)
    assert _feed(state, "F", start=100.0) == "F"


@pytest.mark.parametrize(
    ("failure_threshold", "success_threshold", "results", "expected"),
    [
        (1, 1, "P", "P"),
        (1, 1, "D", "D"),
        (1, 5, "P", "P"),
        (1, 5, "D", "D"),
        (3, 3, "FFP", "UUP"),
        (3, 3, "FFD", "UUD"),
        (2, 4, "UFUD", "UUUD"),
    ],
)
def test_first_passing_result_decides_at_once(
    failure_threshold: int, success_threshold: int, results: str, expected: str
) -> None:
    """From UNKNOWN one passing result is enough, whatever success_threshold says."""
    state = _state(failure_threshold=failure_threshold, success_threshold=success_threshold)
    assert _feed(state, results) == expected


@pytest.mark.parametrize(
    ("failure_threshold", "success_threshold", "results", "expected"),
    [
        # failure_threshold=3: the third failure in a row, and not before, turns it UNHEALTHY
        (3, 1, "PFFF", "PPPF"),
        (3, 1, "PFFFF", "PPPFF"),
        # a pass in between resets the failure streak: F F P F F stays healthy
        (3, 1, "PFFPFF", "PPPPPP"),
        (3, 1, "PFFPFFPFF", "PPPPPPPPP"),
        (3, 1, "PFFPFFF", "PPPPPPF"),
        # success_threshold=2 from UNHEALTHY: the second pass in a row brings it back
        (3, 2, "FFFPP", "UUFFP"),
        (1, 2, "FPP", "FFP"),
        (1, 3, "FPPP", "FFFP"),
        # a fail in between resets the success streak
        (3, 2, "FFFPFPP", "UUFFFFP"),
        (1, 2, "FPFPP", "FFFFP"),
        # research T5: fail_after=3, recover_after=2, exact ticks both ways
        (3, 2, "PPFFFPPFFP", "PPPPFFPPPP"),
        # thresholds of 1 follow every result
        (1, 1, "PFPF", "PFPF"),
    ],
)
def test_thresholds_decide_the_exact_transition_tick(
    failure_threshold: int, success_threshold: int, results: str, expected: str
) -> None:
    """Consecutive failing/passing results move the status on exactly the threshold tick."""
    state = _state(failure_threshold=failure_threshold, success_threshold=success_threshold)
    assert _feed(state, results) == expected


@pytest.mark.parametrize(
    ("failure_threshold", "success_threshold", "results", "expected"),
    [
        (1, 1, "PDPDD", "PDPDD"),
        (3, 1, "DFFP", "DDDP"),
        (3, 1, "PFFD", "PPPD"),
        # coming back from UNHEALTHY takes the latest passing result's status
        (1, 2, "FPD", "FFD"),
        (1, 2, "FDP", "FFP"),
        (1, 3, "FDDP", "FFFP"),
    ],
)
def test_healthy_and_degraded_follow_the_latest_passing_result(
    failure_threshold: int, success_threshold: int, results: str, expected: str
) -> None:
    """HEALTHY <-> DEGRADED moves with each passing result; both count towards recovery."""
    state = _state(failure_threshold=failure_threshold, success_threshold=success_threshold)
    assert _feed(state, results) == expected


@pytest.mark.parametrize(
    ("failure_threshold", "success_threshold", "results", "expected"),
    [
        (1, 1, "UUU", "UUU"),
        (1, 1, "PUUU", "PPPP"),
        (1, 1, "DU", "DD"),
        (1, 1, "FUU", "FFF"),
        # an UNKNOWN between failures does not break the failure streak
        (3, 1, "PFUFUF", "PPPPPF"),
        (3, 1, "FUFUF", "UUUUF"),
        # nor between passes the success streak
        (1, 2, "FPUP", "FFFP"),
    ],
)
def test_unknown_results_are_neutral(
    failure_threshold: int, success_threshold: int, results: str, expected: str
) -> None:
    """An UNKNOWN result moves neither the status nor the streaks."""
    state = _state(failure_threshold=failure_threshold, success_threshold=success_threshold)
    assert _feed(state, results) == expected


def test_streaks_reset_on_the_opposite_outcome_and_every_result_is_counted() -> None:
    """Each result bumps check_count and last_result; a fail zeroes the passes and vice versa."""
    state = _state(failure_threshold=5)
    seen = []
    for i, letter in enumerate("FFUPDUFP"):
        result = _result(letter)
        state.record(result, float(i))
        assert state.last_result is result
        seen.append((state.check_count, state.consecutive_failures, state.consecutive_successes))
    assert seen == [
        (1, 1, 0),
        (2, 2, 0),
        (3, 2, 0),
        (4, 0, 1),
        (5, 0, 2),
        (6, 0, 2),
        (7, 1, 0),
        (8, 0, 1),
    ]


def test_record_returns_the_previous_status_exactly_when_it_changes() -> None:
    """record() answers the status it left behind on a change and None otherwise."""
    state = _state(failure_threshold=2, success_threshold=2)
    returned = [state.record(_result(letter), float(i)) for i, letter in enumerate("FFPPDDUFFU")]
    assert returned == [
        None,  # F: 1 of 2, still UNKNOWN
        S.UNKNOWN,  # F: UNHEALTHY
        None,  # P: 1 of 2
        S.UNHEALTHY,  # P: HEALTHY
        S.HEALTHY,  # D: DEGRADED
        None,  # D
        None,  # U: neutral
        None,  # F: 1 of 2
        S.DEGRADED,  # F: UNHEALTHY
        None,  # U: neutral
    ]


@pytest.mark.parametrize("failure_threshold", [2, 3, 5])
@pytest.mark.parametrize("pattern", ["PF", "FP", "DF"])
def test_flapping_never_turns_unhealthy_with_consecutive_counting(
    failure_threshold: int, pattern: str
) -> None:
    """1-0-1-0 flapping never reaches failure_threshold > 1 (documented, research T4)."""
    state = _state(failure_threshold=failure_threshold)
    statuses = _feed(state, pattern * 50)
    assert "F" not in statuses
    assert state.status is _STATUS[pattern.replace("F", "")]


def test_flapping_with_failure_threshold_one_follows_every_result() -> None:
    """The contrast case: with failure_threshold=1 every flap is a transition."""
    state = _state(failure_threshold=1)
    changes = [state.record(_result(letter), float(i)) for i, letter in enumerate("PF" * 10)]
    assert None not in changes


# --- heal scheduling --------------------------------------------------------------------------


def _unhealthy(**config: Any) -> ComponentState:
    config.setdefault("failure_threshold", 1)
    state = _state(**config)
    state.record(_result("F"), 0.0)
    return state


_NOT_DUE: dict[str, Callable[[], tuple[ComponentState, float, bool]]] = {
    "no heal registered": lambda: (_unhealthy(has_heal=False), 0.0, False),
    "never checked": lambda: (_state(), 0.0, False),
    "unknown": lambda: (_state(failure_threshold=2), 0.0, False),
    "healthy": lambda: (_with(_state(), "P"), 0.0, False),
    "degraded": lambda: (_with(_state(), "D"), 0.0, False),
    "healing": lambda: (_started(_unhealthy()), 0.0, False),
    "parent unhealthy": lambda: (_unhealthy(), 0.0, True),
    "attempts used up": lambda: (_healed(_unhealthy(heal_max_attempts=1), 1.0), 1e9, False),
    "backoff not elapsed": lambda: (_healed(_unhealthy(heal_backoff_initial=3.0), 1.0), 3.5, False),
}


def _with(state: ComponentState, results: str) -> ComponentState:
    _feed(state, results)
    return state


def _started(state: ComponentState) -> ComponentState:
    state.heal_started()
    return state


def _healed(state: ComponentState, end: float) -> ComponentState:
    _heal(state, end)
    return state


def test_heal_is_due_for_an_unhealthy_component_with_a_heal() -> None:
    """The baseline every case below breaks in one condition: UNHEALTHY, heal, nothing else."""
    state = _unhealthy()
    assert state.heal_due(0.0, parent_unhealthy=False)


@pytest.mark.parametrize("case", list(_NOT_DUE))
def test_heal_is_not_due_when_any_condition_fails(case: str) -> None:
    """has_heal, UNHEALTHY, not healing, parent healthy, budget left and due time all matter."""
    state, now, parent_unhealthy = _NOT_DUE[case]()
    assert not state.heal_due(now, parent_unhealthy=parent_unhealthy)


@pytest.mark.parametrize("now", [0.0, 0.25, 12345.5, -50.0], ids=["zero", "small", "large", "neg"])
def test_first_heal_is_due_at_once_at_any_clock_reading(now: float) -> None:
    """Attempt 1 is due at the very tick the component turns UNHEALTHY (DESIGN §5)."""
    state = _state(failure_threshold=1)
    state.record(_result("F"), now)
    assert _due(state, now)


def test_heal_schedule_follows_capped_exponential_backoff() -> None:
    """initial=1, x2, max=5, 5 attempts: after each ending the next is due at end+1, +2, +4, +5."""
    config = HealthCheckConfig(**_SCHEDULE)
    assert [config.heal_delay(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 5.0]
    state = _unhealthy(**_SCHEDULE)
    now = 0.0
    ends, dues = [], []
    for attempt in range(1, 6):
        assert _due(state, now), attempt
        assert _heal_state(state, now) is H.IDLE
        state.heal_started()
        assert state.heal_attempts == attempt
        assert _heal_state(state, now) is H.HEALING
        assert not _due(state, now + 100.0)  # one heal at a time
        end = now + 0.5
        state.heal_finished(end, "RuntimeError")
        assert state.last_heal_error == "RuntimeError"
        ends.append(end)
        if attempt == 5:
            break
        due = end + config.heal_delay(attempt)
        dues.append(due - end)
        state.record(_result("F"), end + 0.25)  # checks go on during the backoff
        assert not _due(state, due - 0.25)
        assert _heal_state(state, due - 0.25) is H.BACKOFF
        now = due
    assert dues == [1.0, 2.0, 4.0, 5.0]
    assert ends == [0.5, 2.0, 4.5, 9.0, 14.5]


@pytest.mark.parametrize(
    ("initial", "multiplier", "maximum", "gaps"),
    [
        (1.0, 2.0, 60.0, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),
        (0.5, 3.0, 10.0, [0.5, 1.5, 4.5, 10.0, 10.0, 10.0, 10.0, 10.0]),
        (2.0, 1.0, 2.0, [2.0] * 8),
    ],
)
def test_heal_gap_after_attempt_n_is_min_of_initial_times_multiplier_power_and_max(
    initial: float, multiplier: float, maximum: float, gaps: list[float]
) -> None:
    """The next heal is due min(initial * multiplier**(n-1), max) after attempt n ends."""
    state = _unhealthy(
        heal_backoff_initial=initial,
        heal_backoff_multiplier=multiplier,
        heal_backoff_max=maximum,
        heal_max_attempts=len(gaps) + 1,
    )
    now = 0.0
    for gap in gaps:
        assert _due(state, now)
        _heal(state, now)
        assert not _due(state, now + gap - 0.125)
        now += gap
    assert _due(state, now)


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_exhausted_after_max_attempts_stops_heals_but_not_checks(max_attempts: int) -> None:
    """After heal_max_attempts attempts heal_due stays False, EXHAUSTED shows, checks go on."""
    state = _unhealthy(heal_max_attempts=max_attempts, heal_backoff_max=5.0)
    now = 0.0
    for _ in range(max_attempts):
        assert _due(state, now)
        _heal(state, now + 1.0)
        now += 10.0
    for later in (now, now + 1e3, now + 1e9):
        state.record(_result("F"), later)
        assert not state.heal_due(later, parent_unhealthy=False)
        assert _heal_state(state, later) is H.EXHAUSTED
        assert _heal_state(state, later, parent_unhealthy=True) is H.EXHAUSTED
    assert state.status is S.UNHEALTHY
    assert state.heal_attempts == max_attempts
    assert state.check_count == 1 + 3


def test_reset_heal_rearms_an_exhausted_component() -> None:
    """reset_heal() zeroes the attempts and error and makes attempt 1 due at once again."""
    state = _unhealthy(**_SCHEDULE)
    now = 0.0
    for attempt in range(1, 6):
        _heal(state, now)
        now += state.config.heal_delay(attempt)
    assert _heal_state(state, now) is H.EXHAUSTED
    state.reset_heal()
    assert (state.heal_attempts, state.last_heal_error) == (0, None)
    assert _heal_state(state, now) is H.IDLE
    assert _due(state, now)
    _heal(state, now + 1.0)  # the schedule starts over at the initial gap
    assert not _due(state, now + 1.75)
    assert _due(state, now + 2.0)


@pytest.mark.parametrize("passing", ["P", "D"])
def test_crash_loop_keeps_heal_attempts_and_backoff(passing: str) -> None:
    """A heal that 'works' for less than heal_reset_after keeps attempts and the longer gap (T9)."""
    state = _unhealthy(heal_max_attempts=10, heal_reset_after=30.0)
    _heal(state, 1.0, error=None)  # attempt 1 "succeeds"; attempt 2 due at 1 + 1
    assert state.last_heal_error is None
    _feed(state, passing, start=1.5)
    _feed(state, "F", start=1.75)  # dies again a moment later
    assert state.heal_attempts == 1
    assert not _due(state, 1.75)
    assert _heal_state(state, 1.75) is H.BACKOFF
    assert _due(state, 2.0)
    _heal(state, 3.0, error=None)  # attempt 2; attempt 3 due at 3 + 2
    _feed(state, passing * 20, start=3.5, step=1.25)  # 23.75 s of health, < 30
    _feed(state, "F", start=30.0)
    assert state.heal_attempts == 2
    _heal(state, 31.0, error=None)  # attempt 3; attempt 4 due at 31 + 4, not at once
    _feed(state, passing + "F", start=31.5)
    assert state.heal_attempts == 3
    assert not _due(state, 34.75)
    assert _due(state, 35.0)


def test_crash_loop_that_recovers_briefly_still_exhausts() -> None:
    """Every heal 'succeeding' for a moment does not stop the budget running out."""
    state = _unhealthy(heal_max_attempts=3, heal_reset_after=60.0)
    now = 0.0
    for _ in range(3):
        assert _due(state, now)
        _heal(state, now + 0.5, error=None)
        _feed(state, "PF", start=now + 1.0)
        now += 10.0
    assert not _due(state, now)
    assert _heal_state(state, now) is H.EXHAUSTED


@pytest.mark.parametrize(
    ("healthy_for", "reset"),
    [(29.5, False), (30.0, True), (45.0, True)],
)
@pytest.mark.parametrize("passing", ["P", "D"])
def test_sustained_health_for_heal_reset_after_rearms_healing(
    healthy_for: float, reset: bool, passing: str
) -> None:
    """heal_reset_after seconds of passing status, seen by a record, reset the attempts."""
    state = _unhealthy(heal_reset_after=30.0, heal_max_attempts=2)
    _heal(state, 1.0)
    _heal(state, 3.0)  # budget used up
    _feed(state, passing, start=10.0)  # healthy since 10
    _feed(state, passing, start=10.0 + healthy_for)
    assert state.heal_attempts == (0 if reset else 2)
    assert state.last_heal_error == (None if reset else "RuntimeError")
    now = 10.0 + healthy_for + 0.5
    _feed(state, "F", start=now)
    assert _due(state, now) is reset
    assert _heal_state(state, now) is (H.IDLE if reset else H.EXHAUSTED)
    if reset:  # the next failure's schedule starts at the initial gap again
        _heal(state, now + 1.0)
        assert _due(state, now + 2.0)


def test_sustained_health_counts_from_the_recovery_tick() -> None:
    """With success_threshold=2 health starts at the second pass, not the first."""
    state = _unhealthy(success_threshold=2, heal_reset_after=30.0)
    _heal(state, 1.0)
    assert _feed(state, "PP", start=10.0) == "FP"  # HEALTHY from 11
    _feed(state, "P", start=40.0)
    assert state.heal_attempts == 1
    _feed(state, "P", start=41.0)
    assert state.heal_attempts == 0


def test_failures_below_threshold_do_not_break_sustained_health() -> None:
    """Health follows the effective status, so failures under failure_threshold are no break."""
    state = _unhealthy(failure_threshold=3, heal_reset_after=30.0)
    _feed(state, "FFF")
    _heal(state, 3.5)
    assert _feed(state, "PFFPFFP", start=10.0, step=5.0) == "PPPPPPP"  # 10 .. 40
    assert state.heal_attempts == 0


def test_a_failure_restarts_the_sustained_health_clock() -> None:
    """Turning UNHEALTHY in between means the heal_reset_after seconds start over."""
    state = _unhealthy(heal_reset_after=30.0, heal_max_attempts=10)
    _heal(state, 1.0)
    _feed(state, "P", start=10.0)
    _feed(state, "F", start=20.0)
    _feed(state, "P", start=25.0)
    _feed(state, "P", start=50.0)  # 40 s since the first pass, 25 s since the last recovery
    assert state.heal_attempts == 1
    _feed(state, "P", start=55.0)
    assert state.heal_attempts == 0


def _reset_by_call(state: ComponentState) -> None:
    state.reset_heal()


def _reset_by_health(state: ComponentState) -> None:
    _feed(state, "P", start=1.0)
    _feed(state, "P", start=31.0)


@pytest.mark.parametrize(
    "reset", [_reset_by_call, _reset_by_health], ids=["reset_heal", "heal_reset_after"]
)
def test_reset_while_a_heal_runs_makes_the_next_attempt_due_at_once(
    reset: Callable[[ComponentState], None],
) -> None:
    """A reset during a running heal re-arms: the next heal is attempt 1, due at once (§5)."""
    state = _unhealthy(heal_reset_after=30.0, heal_timeout=60.0)
    state.heal_started()
    reset(state)
    assert state.heal_attempts == 0
    state.heal_finished(40.0, None)
    _feed(state, "F", start=40.0)
    assert _due(state, 40.0)
    _heal(state, 41.0)
    assert state.heal_attempts == 1
    assert _due(state, 41.0 + state.config.heal_delay(1))


# --- heal_state -------------------------------------------------------------------------------


def test_heal_state_is_healing_while_started_whatever_else_holds() -> None:
    """HEALING wins over EXHAUSTED and SUPPRESSED while the last attempt runs."""
    state = _unhealthy(heal_max_attempts=1)
    state.heal_started()
    assert state.heal_attempts == state.config.heal_max_attempts
    assert _heal_state(state, 0.0) is H.HEALING
    assert _heal_state(state, 0.0, parent_unhealthy=True) is H.HEALING
    state.heal_finished(1.0, None)
    assert _heal_state(state, 1.0) is H.EXHAUSTED


def test_heal_state_exhausted_wins_over_suppressed_backoff_and_health() -> None:
    """EXHAUSTED shows with a parent down, during backoff, and even after a brief recovery."""
    state = _unhealthy(heal_max_attempts=1, heal_reset_after=60.0)
    _heal(state, 1.0)
    assert _heal_state(state, 1.5) is H.EXHAUSTED  # the gap after attempt 1 is not over
    assert _heal_state(state, 1.5, parent_unhealthy=True) is H.EXHAUSTED
    _feed(state, "P", start=5.0)
    assert state.status is S.HEALTHY
    assert _heal_state(state, 5.0) is H.EXHAUSTED


def test_heal_state_suppressed_wins_over_backoff() -> None:
    """An UNHEALTHY component with a parent down is SUPPRESSED, due or in backoff."""
    state = _unhealthy()
    assert _heal_state(state, 0.0, parent_unhealthy=True) is H.SUPPRESSED
    _heal(state, 1.0)
    assert _heal_state(state, 1.5, parent_unhealthy=True) is H.SUPPRESSED
    assert _heal_state(state, 1.5) is H.BACKOFF


def test_heal_state_backoff_until_due_then_idle() -> None:
    """BACKOFF lasts while UNHEALTHY and not yet due; a due heal not yet started is IDLE."""
    state = _unhealthy()
    assert _heal_state(state, 0.0) is H.IDLE
    _heal(state, 1.0)
    assert _heal_state(state, 1.0) is H.BACKOFF
    assert _heal_state(state, 1.75) is H.BACKOFF
    assert _heal_state(state, 2.0) is H.IDLE


@pytest.mark.parametrize("results", ["", "U", "FF", "P", "D", "FFP"])
@pytest.mark.parametrize("parent_unhealthy", [False, True])
def test_heal_state_is_idle_when_not_unhealthy(results: str, parent_unhealthy: bool) -> None:
    """Nothing to heal means IDLE, a parent being down or not."""
    state = _state(failure_threshold=3)
    _feed(state, results)
    assert state.status is not S.UNHEALTHY
    assert _heal_state(state, 10.0, parent_unhealthy=parent_unhealthy) is H.IDLE


@pytest.mark.parametrize("results", ["", "F", "FFFFF", "FP", "PFU"])
@pytest.mark.parametrize("parent_unhealthy", [False, True])
def test_heal_state_is_always_idle_without_a_heal(results: str, parent_unhealthy: bool) -> None:
    """A component registered without a heal is never due and always IDLE."""
    state = _state(has_heal=False, heal_max_attempts=1)
    _feed(state, results)
    for now in (0.0, 10.0, 1e9):
        assert not state.heal_due(now, parent_unhealthy=parent_unhealthy)
        assert _heal_state(state, now, parent_unhealthy=parent_unhealthy) is H.IDLE


# --- snapshot ---------------------------------------------------------------------------------


@pytest.mark.parametrize("critical", [True, False])
@pytest.mark.parametrize("parent_unhealthy", [False, True])
def test_snapshot_fields_equal_the_state(critical: bool, parent_unhealthy: bool) -> None:
    """snapshot() copies name, type, status, critical and every count and heal field."""
    state = ComponentState(
        "cache",
        ComponentType.CACHE,
        HealthCheckConfig(failure_threshold=2, critical=critical),
        has_heal=True,
    )
    _feed(state, "PFF")
    _heal(state, 3.0, error="TimeoutError")
    last = HealthCheckResult("cache", "cache", "unhealthy", error="stuck")
    state.record(last, 3.5)
    snap = state.snapshot(3.5, parent_unhealthy=parent_unhealthy)
    assert snap == ComponentHealth(
        name="cache",
        component_type=ComponentType.CACHE,
        status=S.UNHEALTHY,
        critical=critical,
        last_result=last,
        check_count=4,
        consecutive_failures=3,
        consecutive_successes=0,
        heal_attempts=1,
        heal_state=H.SUPPRESSED if parent_unhealthy else H.BACKOFF,
        last_heal_error="TimeoutError",
        has_heal=True,
        stats=ComponentStats(checks_healthy=1, checks_unhealthy=3, heals_failed=1),
    )
    _feed(state, "PP", start=10.0)
    assert snap.status is S.UNHEALTHY  # a snapshot does not move with the state
    assert snap.check_count == 4


# --- property: the state against a model written from DESIGN.md §5 ----------------------------


def _trailing(decisive: list[str], letters: str) -> int:
    run = 0
    for letter in reversed(decisive):
        if letter not in letters:
            break
        run += 1
    return run


def _model_status(decisive: list[str], failure_threshold: int, success_threshold: int) -> str:
    """DESIGN §5 as a function of the passing/failing results so far (UNKNOWN results left out).

    UNKNOWN at start; ``failure_threshold`` failing results in a row make it UNHEALTHY, fewer
    keep the previous status; the first passing result decides at once; from UNHEALTHY it takes
    ``success_threshold`` passing results in a row; a pass sets HEALTHY/DEGRADED as it says.
    """
    if not decisive:
        return "U"
    last = decisive[-1]
    if last == "F":
        if _trailing(decisive, "F") >= failure_threshold:
            return "F"
        return _model_status(decisive[:-1], failure_threshold, success_threshold)
    previous = _model_status(decisive[:-1], failure_threshold, success_threshold)
    if previous != "F" or _trailing(decisive, "PD") >= success_threshold:
        return last
    return "F"


@given(
    results=st.text(alphabet="PDFU", max_size=30),
    failure_threshold=st.integers(1, 5),
    success_threshold=st.integers(1, 5),
)
def test_status_matches_a_model_of_the_design(
    results: str, failure_threshold: int, success_threshold: int
) -> None:
    """After every record, status, return value, streaks and count agree with DESIGN §5."""
    state = _state(failure_threshold=failure_threshold, success_threshold=success_threshold)
    decisive: list[str] = []
    before = "U"
    for i, letter in enumerate(results):
        returned = state.record(_result(letter), float(i))
        if letter != "U":
            decisive.append(letter)
        expected = _model_status(decisive, failure_threshold, success_threshold)
        assert _LETTER[state.status] == expected, (results[: i + 1], decisive)
        assert returned == (None if expected == before else _STATUS[before])
        assert state.consecutive_failures == _trailing(decisive, "F")
        assert state.consecutive_successes == _trailing(decisive, "PD")
        assert state.check_count == i + 1
        before = expected


# --- abandoned heals and cached views ----------------------------------------------------------


def test_abandoned_heal_gives_its_attempt_back_and_keeps_the_backoff() -> None:
    """A heal that never started (stopped while queued) costs no attempt; the next is due."""
    state = _state(**_SCHEDULE)
    _feed(state, "F")
    _heal(state, end=0.0)  # attempt 1; attempt 2 due at 1.0
    state.heal_started()  # attempt 2, queued for a slot...
    assert (state.heal_attempts, _heal_state(state, 1.0)) == (2, H.HEALING)
    state.heal_abandoned()  # ...and stopped before it ran
    assert (state.heal_attempts, state.healing) == (1, False)
    assert _heal_state(state, 0.5) is H.BACKOFF
    assert _due(state, 1.0)


def test_abandoned_heal_after_a_reset_stays_at_zero_attempts() -> None:
    """reset_heal() while a heal waits, then the wait is abandoned: attempts never go below 0."""
    state = _state(**_SCHEDULE)
    _feed(state, "F")
    state.heal_started()
    state.reset_heal()
    state.heal_abandoned()
    assert (state.heal_attempts, state.healing) == (0, False)
    assert _due(state, 0.0)


def test_snapshot_is_reused_until_the_state_changes() -> None:
    """Two snapshots with nothing changed are the same object; any change makes a new one."""
    state = _state(**_SCHEDULE)
    first = state.snapshot(0.0, parent_unhealthy=False)
    assert state.snapshot(5.0, parent_unhealthy=False) is first
    changes: list[Callable[[], object]] = [
        lambda: state.record(_result("F"), 1.0),
        state.heal_started,
        lambda: state.heal_finished(1.0, None),
        state.reset_heal,
        lambda: setattr(state, "has_heal", False),
    ]
    seen = [first]
    for change in changes:
        change()
        view = state.snapshot(1.0, parent_unhealthy=False)
        assert all(view is not old for old in seen)
        seen.append(view)
    assert (seen[1].status, seen[2].heal_state, seen[-1].heal_state) == (
        S.UNHEALTHY,
        H.HEALING,
        H.IDLE,
    )


def test_snapshot_follows_a_heal_state_that_moves_with_time_or_a_parent() -> None:
    """A cached view is not served once BACKOFF runs out or a parent turns UNHEALTHY."""
    state = _state(**_SCHEDULE)
    _feed(state, "F")
    _heal(state, end=0.0)  # BACKOFF until 1.0
    backoff = state.snapshot(0.5, parent_unhealthy=False)
    assert backoff.heal_state is H.BACKOFF
    assert state.snapshot(1.0, parent_unhealthy=False).heal_state is H.IDLE
    assert state.snapshot(1.0, parent_unhealthy=True).heal_state is H.SUPPRESSED
    assert state.snapshot(1.0, parent_unhealthy=False).heal_state is H.IDLE
