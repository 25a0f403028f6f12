"""engined_circuit_breaker_* families read from real breakers on a FakeClock at scrape time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from metrics_support import MESSAGE_BITS, scrape

from engined import CircuitBreaker, CircuitBreakerRegistry, CircuitState, circuit_breaker
from engined.metrics import metrics_registry
from engined.testing import FakeClock

STATES = ("closed", "open", "half_open", "forced_open", "disabled")


def _fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            breaker.call(_raise)


def _raise() -> None:
    raise ConnectionError("password=hunter2 boom")


@pytest.fixture
def breakers() -> CircuitBreakerRegistry:
    return CircuitBreakerRegistry()


@pytest.fixture
def make(breakers: CircuitBreakerRegistry, clock: FakeClock) -> Callable[..., CircuitBreaker]:
    def make(name: str, **config: object) -> CircuitBreaker:
        return breakers.get_or_create(name, clock=clock, **config)

    return make


def test_state_is_one_hot_over_all_five_states(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """Each breaker lists all five states, 1 for its current one and 0 for the others."""
    closed = make("a")
    opened = make("b", failure_threshold=1, recovery_timeout=10.0)
    _fail(opened)
    forced = make("c")
    forced.force_open()
    disabled = make("d")
    disabled.disable()
    half = make("e", failure_threshold=1, recovery_timeout=1.0)
    _fail(half)
    clock.advance(1.0)  # OPEN -> HALF_OPEN lazily, when read
    current = {"a": "closed", "b": "open", "c": "forced_open", "d": "disabled", "e": "half_open"}
    result = scrape(metrics_registry(breakers=breakers))
    for name, state in current.items():
        for each in STATES:
            got = result.value("engined_circuit_breaker_state", breaker=name, state=each)
            assert got == (1.0 if each == state else 0.0), (name, each)
    assert closed.state is CircuitState.CLOSED


def test_calls_count_every_kind_including_refusals(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker]
) -> None:
    """successful, failed, ignored and not_permitted are the breaker's own counters."""
    breaker = make("db", failure_threshold=3, ignore_exceptions=(KeyError,))
    breaker.call(lambda: 1)
    breaker.call(lambda: 2)
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"])
    _fail(breaker, 3)  # opens
    for _ in range(4):
        with pytest.raises(Exception, match="open"):
            breaker.call(lambda: 1)
    result = scrape(metrics_registry(breakers=breakers))
    kinds = {
        kind: result.value("engined_circuit_breaker_calls_total", breaker="db", kind=kind)
        for kind in ("successful", "failed", "ignored", "not_permitted")
    }
    assert kinds == {"successful": 2.0, "failed": 3.0, "ignored": 1.0, "not_permitted": 4.0}
    metrics = breaker.metrics
    assert kinds["not_permitted"] == metrics.rejected_calls
    assert sum(kinds.values()) - kinds["not_permitted"] == metrics.total_calls


def test_transitions_list_the_automatic_cycle_from_zero_and_count_each_one(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """The four automatic transitions exist at 0, then count; a manual one appears when made."""
    fresh = make("fresh")
    cycled = make("cycled", failure_threshold=1, recovery_timeout=1.0)
    _fail(cycled)  # closed -> open
    clock.advance(1.0)
    _fail(cycled)  # open -> half_open, then the probe fails: half_open -> open
    clock.advance(1.0)
    cycled.call(lambda: None)  # open -> half_open -> closed
    cycled.force_open()  # closed -> forced_open (manual)
    result = scrape(metrics_registry(breakers=breakers))
    name = "engined_circuit_breaker_transitions_total"
    assert result.values(name)  # parsed as a counter with _total
    for pair, count in {
        ("closed", "open"): 1.0,
        ("open", "half_open"): 2.0,
        ("half_open", "open"): 1.0,
        ("half_open", "closed"): 1.0,
        ("closed", "forced_open"): 1.0,
    }.items():
        got = result.value(name, breaker="cycled", from_state=pair[0], to_state=pair[1])
        assert got == count, pair
    fresh_rows = {
        labels: value
        for labels, value in result.values(name).items()
        if ("breaker", "fresh") in labels
    }
    assert len(fresh_rows) == 4
    assert set(fresh_rows.values()) == {0.0}
    assert fresh.state is CircuitState.CLOSED


def test_failure_ratio_is_absent_below_minimum_calls_and_the_window_share_above(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker]
) -> None:
    """No sample while the breaker has no ratio (never NaN); then failed / window calls."""
    breaker = make("api", failure_threshold=None, failure_rate_threshold=0.9, minimum_calls=4)
    breaker.call(lambda: 1)
    _fail(breaker)
    result = scrape(metrics_registry(breakers=breakers))
    assert result.values("engined_circuit_breaker_failure_ratio") == {}
    breaker.call(lambda: 1)
    _fail(breaker)
    result = scrape(metrics_registry(breakers=breakers))
    assert result.value("engined_circuit_breaker_failure_ratio", breaker="api") == 0.5
    assert "NaN" not in result.text


def test_collector_reads_the_default_registry_when_given_none(clock: FakeClock) -> None:
    """Breakers made with @circuit_breaker (the default registry) show without configuration."""
    guarded = circuit_breaker("payments", clock=clock)(lambda: "ok")
    assert guarded() == "ok"
    result = scrape(metrics_registry())
    assert result.value(
        "engined_circuit_breaker_calls_total", breaker="payments", kind="successful"
    )
    assert result.value("engined_circuit_breaker_state", breaker="payments", state="closed") == 1.0


def test_scrape_reads_the_breaker_now_not_when_registered(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker]
) -> None:
    """The same registry scraped twice shows the calls made in between: nothing is cached."""
    registry = metrics_registry(breakers=breakers)
    breaker = make("db")
    first = scrape(registry)
    breaker.call(lambda: 1)
    second = scrape(registry)
    kind = {"breaker": "db", "kind": "successful"}
    assert first.value("engined_circuit_breaker_calls_total", **kind) == 0.0
    assert second.value("engined_circuit_breaker_calls_total", **kind) == 1.0


def test_removed_breaker_disappears_from_the_next_scrape(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker]
) -> None:
    """A breaker removed from the registry is no longer listed."""
    make("gone")
    registry = metrics_registry(breakers=breakers)
    assert "gone" in scrape(registry).label_values()
    breakers.remove("gone")
    assert "gone" not in scrape(registry).label_values()


def test_label_values_are_names_and_enums_never_messages(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker]
) -> None:
    """Errors raised through breakers leave no trace of their text in any label."""
    breaker = make("db", failure_threshold=1)
    _fail(breaker)
    labels = scrape(metrics_registry(breakers=breakers)).label_values("engined_circuit_breaker")
    assert not {value for value in labels for bit in MESSAGE_BITS if bit in value}
    assert labels == {"db", *STATES, "successful", "failed", "ignored", "not_permitted"}


def test_breaker_names_needing_escapes_round_trip(
    breakers: CircuitBreakerRegistry, make: Callable[..., CircuitBreaker]
) -> None:
    """A name with a quote, a backslash, a newline or non-ASCII is escaped and parses back."""
    odd = 'rpc:"db"\\eu\nwest-ü'
    make(odd)
    result = scrape(metrics_registry(breakers=breakers))
    assert result.value("engined_circuit_breaker_state", breaker=odd, state="closed") == 1.0
