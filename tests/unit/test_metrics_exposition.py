"""Family and exposition(): text byte-identical to generate_latest, rendered without Samples."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from metrics_support import registry_of
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from engined.metrics import CONTENT_TYPE, exposition
from engined.metrics._family import Family


class Families:
    """A collector yielding fixed families."""

    def __init__(self, *families: Family) -> None:
        self.families = families

    def collect(self) -> tuple[Family, ...]:
        return self.families


def _gauge(*rows: tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...]]) -> Family:
    family = Family("x_state", "A gauge.", "gauge", ("a", "b", "c"))
    for row in rows:
        family.add_rows(row)
    return family


def test_rows_render_exactly_as_generate_latest_writes_their_samples() -> None:
    """Grouped rows, single rows, counters and gauges come out byte for byte the same."""
    gauge = _gauge(
        (("n1", "t"), ("closed", "open"), (1, 0)),
        (("n2", "t"), ("closed",), (0.25,)),
    )
    counter = Family("y_calls", "Help with a \\ backslash\nand a newline.", "counter", ("k",))
    counter.add((), "ok", 3)
    counter.add((), "err", 1234567)
    fast = exposition(registry_of(Families(gauge, counter)))
    # A copy whose samples are built first goes through prometheus_client's own code path.
    slow = generate_latest(registry_of(Families(gauge, counter)))
    assert fast == slow
    assert b'x_state{a="n1",b="t",c="closed"} 1.0\n' in fast
    assert b'y_calls_total{k="err"} 1.234567e+06\n' in fast
    assert b"# HELP y_calls_total Help with a \\\\ backslash\\nand a newline.\n" in fast


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.one_of(
                st.integers(min_value=-(10**20), max_value=10**20),
                st.floats(),
                st.sampled_from([0.0, -0.0, 1e6, 999999.5, math.inf, -math.inf, math.nan]),
            ),
        ),
        max_size=8,
        unique_by=lambda item: item[0],
    )
)
def test_any_label_value_and_number_round_trips(rows: list[tuple[str, float]]) -> None:
    """Quotes, backslashes, newlines, unicode and any number render as generate_latest does."""
    family = Family("z_value", "Values.", "gauge", ("name",))
    for name, value in rows:
        family.add((), name, value)
    fast = exposition(registry_of(Families(family)))
    assert fast == generate_latest(registry_of(Families(family)))
    parsed = [s for f in text_string_to_metric_families(fast.decode()) for s in f.samples]
    assert [s.labels["name"] for s in parsed] == [name for name, _ in rows]
    for sample, (_, value) in zip(parsed, rows, strict=True):
        assert sample.value == float(value) or (math.isnan(sample.value) and math.isnan(value))


def test_samples_are_built_only_when_asked_and_match_the_rows() -> None:
    """A family renders without Sample objects; reading .samples builds them once."""
    family = _gauge((("n1", "t"), ("closed", "open"), (1, 0)))
    exposition(registry_of(Families(family)))
    assert "_built" not in family.__dict__
    samples = family.samples
    assert samples == [
        Sample("x_state", {"a": "n1", "b": "t", "c": "closed"}, 1),
        Sample("x_state", {"a": "n1", "b": "t", "c": "open"}, 0),
    ]
    assert family.samples is samples


def test_samples_replaced_after_construction_are_what_renders() -> None:
    """Assigning samples (as restricted registries do) takes over from the rows."""
    family = _gauge((("n1", "t"), ("closed",), (1,)))
    family.samples = [Sample("x_state", {"a": "o", "b": "p", "c": "q"}, 7)]
    assert b'x_state{a="o",b="p",c="q"} 7.0' in exposition(registry_of(Families(family)))


def test_restricted_registry_filters_families_by_name() -> None:
    """restricted_registry (?name[]= on /metrics) sees the families' samples."""
    registry = registry_of(Families(_gauge((("n", "t"), ("closed",), (1,)))))
    restricted = registry.restricted_registry(["x_state"])
    assert b'x_state{a="n",b="t",c="closed"} 1.0' in exposition(restricted)
    assert exposition(registry.restricted_registry(["other"])) == b""


def test_other_metrics_are_rendered_by_prometheus_client_in_registry_order() -> None:
    """A plain Counter registered between engined families keeps its place and its _created."""
    registry = CollectorRegistry()
    registry.register(Families(_gauge((("n", "t"), ("closed",), (1,)))))
    plain = Counter("plain_events", "Events.", registry=registry)
    plain.inc(2)
    registry.register(Families(Family("w_last", "Last.", "gauge", ("k",))))
    text = exposition(registry)
    assert text == generate_latest(registry)
    assert text.index(b"x_state") < text.index(b"plain_events_total 2.0") < text.index(b"w_last")


def test_empty_groups_render_nothing() -> None:
    """A row with no samples adds no line (and no stray prefix)."""
    family = Family("e_g", "Empty.", "gauge", ("name",))
    family.add_rows(((), (), ()))
    text = exposition(registry_of(Families(family)))
    assert text == b"# HELP e_g Empty.\n# TYPE e_g gauge\n"


@pytest.mark.parametrize("labels", [(), ("b", "a")])
def test_label_names_must_be_given_sorted_and_not_empty(labels: tuple[str, ...]) -> None:
    """Rows are rendered in label order, so unsorted or missing label names are refused."""
    with pytest.raises(ValueError, match="sorted"):
        Family("bad", "Bad.", "gauge", labels)


def test_content_type_is_the_text_format_0_0_4() -> None:
    """The output is Prometheus text 0.0.4, which every Prometheus version scrapes."""
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
