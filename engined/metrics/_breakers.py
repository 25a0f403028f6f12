"""The ``engined_circuit_breaker_*`` families, read from a breaker registry at scrape time.

Each breaker is read once per scrape through ``breaker.metrics``, one consistent snapshot
taken under its lock; nothing is counted on the call path. Label values are the breaker's
name and enum values only.

- ``engined_circuit_breaker_state{breaker,state}``: 1 for the current state, 0 for the
  other four (every state is always listed, so ``state="open" == 1`` needs no ``absent``).
- ``engined_circuit_breaker_calls_total{breaker,kind}``: ``successful``, ``failed``,
  ``ignored``, and ``not_permitted`` (refused without running: ``rejected_calls``).
- ``engined_circuit_breaker_transitions_total{breaker,from_state,to_state}``: the four
  transitions a breaker makes by itself (closed->open, open->half_open, half_open->closed,
  half_open->open) are listed from the start, at 0, so ``increase()`` sees the first; the
  transitions operators cause (``force_open``, ``disable``, ``reset``) appear when first made.
- ``engined_circuit_breaker_failure_ratio{breaker}``: the failed share of the window in
  [0, 1]; absent while the window holds fewer than ``minimum_calls`` calls, where the
  breaker has no ratio. No NaN and no stand-in value: an alert on ``> 0.5`` neither
  fires on nor hides behind a value that was never measured.
"""

from __future__ import annotations

from engined.core._breaker_types import CircuitState
from engined.core._registry import CircuitBreakerRegistry
from engined.metrics._family import Family

__all__ = ["breaker_families"]

_TEXT = {state: state.value for state in CircuitState}  # a dict read beats the enum's .value
_STATES = tuple(_TEXT.values())
_ONE_HOT = {state: tuple(int(other is state) for other in CircuitState) for state in CircuitState}
_KINDS = ("successful", "failed", "ignored", "not_permitted")
_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
_CLOSED_OPEN, _OPEN_HALF = (_CLOSED, _OPEN), (_OPEN, _HALF_OPEN)
_HALF_CLOSED, _HALF_OPENED = (_HALF_OPEN, _CLOSED), (_HALF_OPEN, _OPEN)
_AUTOMATIC = frozenset((_CLOSED_OPEN, _OPEN_HALF, _HALF_CLOSED, _HALF_OPENED))
_TO_OPEN, _TO_HALF, _TO_CLOSED_OR_OPEN = ("open",), ("half_open",), ("closed", "open")


def breaker_families(registry: CircuitBreakerRegistry | None) -> list[Family]:
    """The four breaker families for every breaker in ``registry`` (empty families if None)."""
    state = Family(
        "engined_circuit_breaker_state",
        "Circuit breaker state: 1 for the current state, 0 for the others.",
        "gauge",
        ("breaker", "state"),
    )
    calls = Family(
        "engined_circuit_breaker_calls",
        "Calls through a circuit breaker by outcome; not_permitted were refused unrun.",
        "counter",
        ("breaker", "kind"),
    )
    transitions = Family(
        "engined_circuit_breaker_transitions",
        "Circuit breaker state transitions.",
        "counter",
        ("breaker", "from_state", "to_state"),
    )
    ratio = Family(
        "engined_circuit_breaker_failure_ratio",
        "Failed share of the circuit breaker's window (0-1); absent below minimum_calls.",
        "gauge",
        ("breaker",),
    )
    if registry is None:
        return [state, calls, transitions, ratio]
    add_state, add_calls, add_transitions = state.add_rows, calls.add_rows, transitions.add_rows
    measured: list[str] = []
    ratios: list[float] = []
    for breaker in registry:
        snapshot = breaker.metrics
        name = snapshot.name
        lead = (name,)
        add_state((lead, _STATES, _ONE_HOT[snapshot.state]))
        add_calls(
            (
                lead,
                _KINDS,
                (
                    snapshot.successful_calls,
                    snapshot.failed_calls,
                    snapshot.ignored_calls,
                    snapshot.rejected_calls,
                ),
            )
        )
        counts = snapshot.transitions
        get = counts.get
        add_transitions(((name, "closed"), _TO_OPEN, (get(_CLOSED_OPEN, 0),)))
        add_transitions(((name, "open"), _TO_HALF, (get(_OPEN_HALF, 0),)))
        add_transitions(
            ((name, "half_open"), _TO_CLOSED_OR_OPEN, (get(_HALF_CLOSED, 0), get(_HALF_OPENED, 0)))
        )
        if len(counts) > len(_AUTOMATIC) or not counts.keys() <= _AUTOMATIC:
            for pair, count in counts.items():
                if pair not in _AUTOMATIC:
                    transitions.add((name, _TEXT[pair[0]]), _TEXT[pair[1]], count)
        if snapshot.failure_rate is not None:
            measured.append(name)
            ratios.append(snapshot.failure_rate)
    ratio.add_rows(((), tuple(measured), tuple(ratios)))
    return [state, calls, transitions, ratio]
