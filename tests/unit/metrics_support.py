"""Helpers for the metrics tests: scrape a registry, read the samples back as a parser does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from engined.metrics import exposition

MESSAGE_BITS = ("hunter2", "password", "boom", "Traceback", " ")
"""Fragments of messages and errors that must never reach a label value."""


@dataclass(frozen=True)
class Scrape:
    """One exposition, parsed back: samples by name and labels, families by name."""

    text: str

    def families(self) -> dict[str, object]:
        """Parsed families by name (counters under their name without ``_total``)."""
        return {family.name: family for family in text_string_to_metric_families(self.text)}

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """Every sample as ``(name, labels, value)``."""
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                yield sample.name, dict(sample.labels), sample.value

    def values(self, sample: str, /) -> dict[tuple[tuple[str, str], ...], float]:
        """The samples called ``sample``, keyed by their sorted label pairs."""
        return {
            tuple(sorted(labels.items())): value
            for name, labels, value in self.samples()
            if name == sample
        }

    def value(self, sample: str, /, **labels: str) -> float:
        """The one sample called ``sample`` with exactly ``labels``."""
        return self.values(sample)[tuple(sorted(labels.items()))]

    def label_values(self, prefix: str = "") -> set[str]:
        """Every label value of the samples whose name starts with ``prefix``."""
        return {
            value
            for name, labels, _ in self.samples()
            if name.startswith(prefix)
            for value in labels.values()
        }


def scrape(registry: Collector) -> Scrape:
    """Render ``registry`` with engined's exposition, checking it equals generate_latest's."""
    fast = exposition(registry)
    assert fast == generate_latest(registry)
    return Scrape(fast.decode("utf-8"))


def registry_of(collector: Collector) -> CollectorRegistry:
    """A fresh registry holding ``collector`` (described by collecting, as engined's is)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return registry
