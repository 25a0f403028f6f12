"""render_metric(): any prometheus_client metric written exactly as generate_latest writes it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.metrics_core import (
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.utils import floatToGoString

from engined.metrics import exposition
from engined.metrics._text import render_metric, value_text

label_values = st.text(max_size=10)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.integers(min_value=0, max_value=10**9),
)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _same(metric: Metric) -> None:
    expected = generate_latest(_Just(metric)).decode("utf-8")
    assert render_metric(metric, _escape) == expected


class _Just:
    def __init__(self, *metrics: Metric) -> None:
        self.metrics = metrics

    def collect(self) -> tuple[Metric, ...]:
        return self.metrics


@given(st.lists(st.tuples(label_values, label_values, numbers), max_size=5))
def test_counters_gauges_and_histograms_with_any_labels(
    rows: list[tuple[str, str, float]],
) -> None:
    """Counters (with _created), gauges and histograms match, for any label value and number."""
    registry = CollectorRegistry()
    counter = Counter("c_events", "Events\nwith a \\ newline.", ["a", "b"], registry=registry)
    gauge = Gauge("g_level", "Level.", ["b", "a"], registry=registry)
    histogram = Histogram("h_seconds", "Time.", ["a"], registry=registry, buckets=(0.001, 1.0))
    for a, b, number in rows:
        counter.labels(a, b).inc(abs(number))
        gauge.labels(b, a).set(number)
        histogram.labels(a).observe(abs(number))
    for metric in registry.collect():
        _same(metric)
    assert exposition(registry) == generate_latest(registry)


def test_every_other_kind_matches() -> None:
    """Summary, Info, Enum, stateset, gauge histogram, unknown and timestamps match too."""
    registry = CollectorRegistry()
    Summary("s_seconds", "Sizes.", registry=registry).observe(0.5)
    Info("i_build", "Build.", registry=registry).info({"version": "1.2", "commit": 'a"b'})
    Enum("e_state", "State.", states=["up", "down"], registry=registry).state("down")
    for metric in registry.collect():
        _same(metric)
    _same(StateSetMetricFamily("ss_flags", "Flags.", {"on": True, "off": False}))
    _same(
        GaugeHistogramMetricFamily(
            "gh_size", "Size.", buckets=[("1", 2.0), ("+Inf", 3.0)], gsum_value=4.0
        )
    )
    _same(UnknownMetricFamily("u_thing", "Thing.", value=7))
    stamped = GaugeMetricFamily("t_stamped", "Stamped.", labels=["k"])
    stamped.add_metric(["v"], 1.5, timestamp=1_700_000_000.123)
    _same(stamped)


def test_a_name_generate_latest_must_escape_is_left_to_it() -> None:
    """A non-legacy metric or label name gives None: only generate_latest escapes those."""
    dotted = GaugeMetricFamily("ok_name", "Doc.", labels=["dotted.label"])
    dotted.add_metric(["x"], 1)
    assert render_metric(dotted, _escape) is None
    assert exposition(_Just(dotted)) == generate_latest(_Just(dotted))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        -3,
        999_999,
        1_000_000,
        2**70,
        0.0,
        -0.0,
        0.5,
        1e-05,
        999999.9,
        1e6,
        1.5e9,
        -1e20,
        math.inf,
        -math.inf,
        math.nan,
    ],
)
def test_values_are_formatted_as_floattogostring(value: float) -> None:
    """Integers, floats and specials format as prometheus_client's floatToGoString."""
    assert value_text(value) == floatToGoString(value)
