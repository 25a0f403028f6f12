"""Metric families that render themselves as Prometheus text fast, and the exposition that uses it.

prometheus_client 0.26 spends about 6 µs per sample in ``generate_latest`` (it validates
and escapes every label name of every sample for UTF-8 names), so 25,000 samples, what
1,000 breakers and 1,000 components make, take ~150 ms: three times the budget of a scrape.
A :class:`Family` is a real ``prometheus_client`` metric (``generate_latest``, the parser,
``restricted_registry`` and every exporter accept it), but it keeps its samples as rows and
builds ``Sample`` objects only when something asks for ``samples``. :func:`exposition`
renders such families straight from their rows, and any other metric with legacy names
through :func:`~engined.metrics._text.render_metric`, byte for byte as ``generate_latest``
would; only a metric with other names goes to ``generate_latest`` itself.

A row is ``(lead, lasts, values)``: the values of every label but the last, then the last
label's values and the samples' values, pairwise. One row holds an entity's whole group (a
breaker's five states: ``lasts`` a constant tuple, ``values`` a constant one-hot tuple), so
a scrape makes one tuple per entity and family, and the text of ``lead`` and of each
``lasts`` tuple is escaped once per exposition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, Literal

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from engined.metrics._text import escape_help, render_metric, value_text

__all__ = ["CONTENT_TYPE", "Family", "exposition"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of :func:`exposition`'s output (Prometheus text format 0.0.4)."""

Row = tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...]]

_BODY_CACHE: Final = 1024  # distinct (lasts, values) groups remembered per family and scrape
_ESCAPE_CACHE: Final = 100_000  # label values remembered across scrapes, then forgotten at once


class _Escaper(dict[str, str]):
    """Escapes label values as the text format wants, remembering each.

    Breaker and component names are the same from one scrape to the next, so the escapes
    are kept across scrapes (dict reads and writes are atomic: scrapes in several threads
    are safe); past :data:`_ESCAPE_CACHE` values, names that came and went, it starts over.
    """

    def __missing__(self, value: str) -> str:
        escaped = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        self[value] = escaped
        return escaped


class Family(Metric):
    """A gauge or counter family whose samples are rows, rendered as text without ``Sample``s.

    Args:
        name: The family's name (a counter's without ``_total``, as prometheus_client has it).
        documentation: Its HELP text.
        typ: ``"gauge"`` or ``"counter"``.
        labelnames: Its label names, sorted (the text format lists labels sorted by name,
            so rows need no reordering).

    Raises:
        ValueError: ``labelnames`` is empty or not sorted.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        typ: Literal["gauge", "counter"],
        labelnames: Sequence[str],
    ) -> None:
        super().__init__(name, documentation, typ)
        names = tuple(labelnames)
        if not names or list(names) != sorted(names):
            msg = f"{name}: label names must be given sorted and not empty, got {names!r}"
            raise ValueError(msg)
        self._labelnames = names
        self._sample_name = f"{name}_total" if typ == "counter" else name
        self._rows: list[Row] = []
        self.add_rows = self._rows.append  # add_rows((lead, lasts, values)): one C call

    def add(self, lead: tuple[str, ...], last: str, value: float) -> None:
        """Add one sample: ``lead`` labels' values, the last label's value, the value."""
        self._rows.append((lead, (last,), (value,)))

    @property
    def samples(self) -> list[Sample]:
        """The rows as ``Sample`` objects, built on first access and kept."""
        built = self.__dict__.get("_built")
        if built is None:
            name, lead_names, last_name = (
                self._sample_name,
                self._labelnames[:-1],
                self._labelnames[-1],
            )
            built = [
                Sample(name, {**dict(zip(lead_names, lead, strict=True)), last_name: last}, value)
                for lead, lasts, values in self._rows
                for last, value in zip(lasts, values, strict=True)
            ]
            self.__dict__["_built"] = built
        return built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        # Metric.__init__ assigns an empty list; anything else replaces the rows' samples.
        if value:
            self.__dict__["_built"] = value

    def render(self, escape: Callable[[str], str]) -> str:
        """This family in the text format, as ``generate_latest`` writes it."""
        if "_built" in self.__dict__:  # samples were read (and maybe replaced): use them
            text = render_metric(self, escape)
            return text if text is not None else generate_latest(_Batch([self])).decode("utf-8")
        name = self._sample_name
        help_text = escape_help(self.documentation)
        lines = [f"# HELP {name} {help_text}\n# TYPE {name} {self.type}\n"]
        append = lines.append
        # A line is name{lead0="v0",...,last="v"} value: pieces[i] goes before lead value i,
        # then tail before the last value (pieces[0] alone when there is no lead).
        labels = self._labelnames
        pieces = [f'{name}{{{labels[0]}="', *[f'",{label}="' for label in labels[1:]]]
        tail = pieces.pop()
        previous: tuple[str, ...] | None = None
        prefix = ""
        ends: dict[tuple[str, ...], tuple[str, ...]] = {}  # escaped `last"} ` per lasts tuple
        bodies: dict[tuple[tuple[str, ...], tuple[float, ...]], list[str]] = {}
        texts: dict[int, str] = {}  # counts and one-hot values repeat: format each once
        for lead, lasts, values in self._rows:
            if lead is not previous:
                size = len(lead)
                if size == 1:
                    prefix = pieces[0] + escape(lead[0]) + tail
                elif size == 2:
                    prefix = pieces[0] + escape(lead[0]) + pieces[1] + escape(lead[1]) + tail
                else:
                    prefix = (
                        "".join([p + escape(v) for p, v in zip(pieces, lead, strict=True)]) + tail
                    )
                previous = lead
            # Each line is prefix + `last"} value\n`; an entity's lines share the prefix, and
            # one-hot groups (a few kinds of them per family) share the whole rest.
            key = (lasts, values)
            body = bodies.get(key)
            if body is None:
                closing = ends.get(lasts)
                if closing is None:
                    closing = ends[lasts] = tuple([f'{escape(last)}"}} ' for last in lasts])
                body = []
                for end, value in zip(closing, values, strict=True):
                    if type(value) is not int:  # floats seldom repeat (and -0.0 == 0)
                        body.append(end + value_text(value) + "\n")
                        continue
                    text = texts.get(value)
                    if text is None:
                        text = texts[value] = value_text(value) + "\n"
                    body.append(end + text)
                if len(bodies) < _BODY_CACHE:
                    bodies[key] = body
            if body:
                append(prefix + prefix.join(body))
        return "".join(lines)


_ESCAPES = _Escaper()


class _Batch:
    """A collector that yields the given metrics, to hand them to ``generate_latest``."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def exposition(registry: Collector) -> bytes:
    """Render ``registry`` in the Prometheus text format (0.0.4), fast for engined's families.

    The output equals ``prometheus_client.generate_latest(registry)``: :class:`Family`
    objects are rendered from their rows, any other metric (the gRPC counters and
    histograms, a target_info, your own) sample by sample, in registry order; a metric
    with a name that is not a legacy name is left to ``generate_latest`` itself.
    Serve it with the Content-Type :data:`CONTENT_TYPE`.

    Args:
        registry: A ``CollectorRegistry`` (or any collector), e.g. from
            :func:`~engined.metrics.metrics_registry`.
    """
    if len(_ESCAPES) > _ESCAPE_CACHE:
        _ESCAPES.clear()
    escape = _ESCAPES.__getitem__
    chunks: list[str] = []
    for metric in registry.collect():
        if isinstance(metric, Family):
            chunks.append(metric.render(escape))
            continue
        text = render_metric(metric, escape)
        if text is None:  # a name only generate_latest knows how to escape
            text = generate_latest(_Batch([metric])).decode("utf-8")
        chunks.append(text)
    return "".join(chunks).encode("utf-8")
