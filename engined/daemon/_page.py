"""The status page's HTML, rendered on the server from the JSON documents the API serves.

The first paint needs no JavaScript: the page is complete as sent, and
``/static/status.js`` then keeps it current by polling the same documents
(:mod:`engined.daemon._api`, :mod:`engined.daemon._events`) and rebuilding the rows with
``textContent``. Rendering from the documents, not from the manager's objects, keeps the
two views in the same words.

Every string that comes from outside this module (names, messages, errors, event text)
goes through :func:`html.escape`, attributes included: a check's message is whatever
the checked service said. A status is shown as a word and a coloured badge with a glyph
(CSS), never by colour alone; :data:`TONES` maps each word to its tone, and the script
reads the same map from the page, so the two cannot drift.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from engined.daemon._api import encode

__all__ = [
    "POLL_MS",
    "PREFIXES",
    "TONES",
    "age_text",
    "badge",
    "render_page",
    "seconds",
    "took_text",
    "word",
]

POLL_MS: Final = 1000
"""How often the script polls the API, in milliseconds."""

PREFIXES: Final = ("HEALTH_STATUS_", "COMPONENT_TYPE_", "HEAL_STATE_", "CIRCUIT_STATE_")
"""Enum-name prefixes of the proto JSON mapping that the page drops."""

TONES: Final[Mapping[str, str]] = {
    # component statuses
    "HEALTHY": "ok",
    "DEGRADED": "warn",
    "UNHEALTHY": "bad",
    "UNKNOWN": "off",
    # breaker states
    "CLOSED": "ok",
    "HALF_OPEN": "warn",
    "OPEN": "bad",
    "FORCED_OPEN": "bad",
    "DISABLED": "off",
    # heal states
    "IDLE": "plain",
    "HEALING": "info",
    "BACKOFF": "warn",
    "EXHAUSTED": "bad",
    "SUPPRESSED": "off",
}
"""A word's tone: its colour and glyph in the stylesheet (``tone-ok``...)."""

_COMPONENT_COLUMNS: Final = (
    ("c-name", "Component"),
    ("c-status", "Status"),
    ("c-type", "Type"),
    ("c-critical", "Critical"),
    ("c-last", "Last check"),
    ("c-message", "Message"),
    ("c-heal", "Heal"),
    ("c-deps", "Depends on"),
)
_BREAKER_COLUMNS: Final = (
    ("b-name", "Breaker"),
    ("b-state", "State"),
    ("b-rate", "Failure rate"),
    ("b-calls", "Calls"),
    ("b-rejected", "Rejected"),
    ("b-retry", "Retry after"),
)
_EVENT_COLUMNS: Final = (
    ("e-time", "Time (UTC)"),
    ("e-source", "Source"),
    ("e-name", "Name"),
    ("e-what", "Event"),
)
_API_PATHS: Final = (
    "/api/v1/health",
    "/api/v1/breakers",
    "/api/v1/events",
    "/api/v1/dependencies",
    "/metrics",
)


def _e(text: object) -> str:
    """``text`` escaped for HTML content and double- or single-quoted attributes."""
    return html.escape(str(text), quote=True)


def word(name: str) -> str:
    """``HEALTH_STATUS_HEALTHY`` as ``HEALTHY``: the enum's name without its prefix."""
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def badge(text: str) -> str:
    """A status word as a badge: its tone's class (colour and glyph) and the word itself."""
    tone = TONES.get(text, "off")
    return f'<span class="badge tone-{tone}">{_e(text)}</span>'


def seconds(duration: object) -> float | None:
    """A proto JSON ``Duration`` (``"1.500s"``) in seconds; ``None`` if absent or malformed."""
    if not isinstance(duration, str) or not duration.endswith("s"):
        return None
    try:
        return float(duration[:-1])
    except ValueError:
        return None


def age_text(value: float) -> str:
    """A compact age: ``0.4s``, ``12s``, ``3m``, ``5h``, ``2d``."""
    if value < 10:
        return f"{max(value, 0.0):.1f}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{int(value // size)}{unit}"
    return f"{int(value)}s"


def took_text(value: float) -> str:
    """A check's run time: ``<1 ms``, ``12 ms``, ``1.2 s``."""
    if value < 0.001:
        return "<1 ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"


def clock_text(iso: object) -> str:
    """``HH:MM:SS`` of an ISO 8601 UTC time (a proto JSON ``Timestamp``), or ``-``."""
    return iso[11:19] if isinstance(iso, str) and len(iso) >= 19 else "-"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _cell(css: str, label: str, content: str) -> str:
    return f'<td class="{css}" data-label="{_e(label)}">{content}</td>'


def _head(columns: Sequence[tuple[str, str]]) -> str:
    cells = "".join(f'<th scope="col" class="{css}">{_e(title)}</th>' for css, title in columns)
    return f"<thead><tr>{cells}</tr></thead>"


def _empty_row(columns: Sequence[tuple[str, str]], text: str) -> str:
    return f'<tr class="empty"><td colspan="{len(columns)}">{_e(text)}</td></tr>'


def component_row(component: Mapping[str, Any], parents: Sequence[str]) -> str:
    """One component's ``<tr>``; every value escaped."""
    name = str(component.get("name", ""))
    status = word(str(component.get("status", "")))
    last = component.get("last_result") or {}
    age, took = seconds(last.get("age")), seconds(last.get("duration"))
    if not last:
        last_text = "not yet checked"
    else:
        parts = [f"{age_text(age)} ago" if age is not None else "-"]
        if took is not None:
            parts.append(f"took {took_text(took)}")
        last_text = " · ".join(parts)
    message = str(last.get("message", ""))
    if last.get("error"):
        message = f"{message} (error: {last['error']})".strip()
    heal_state = word(str(component.get("heal_state", "")))
    attempts = int(component.get("heal_attempts", 0))
    heal = f'{badge(heal_state)} <span class="attempts">{_e(_plural(attempts, "attempt"))}</span>'
    if component.get("last_heal_error"):
        heal += f' <span class="heal-error">last: {_e(component["last_heal_error"])}</span>'
    cells = [
        _cell("c-name", "Component", _e(name)),
        _cell("c-status", "Status", badge(status)),
        _cell("c-type", "Type", _e(word(str(component.get("component_type", ""))).lower())),
        _cell("c-critical", "Critical", "yes" if component.get("critical") else "no"),
        _cell("c-last", "Last check", _e(last_text)),
        _cell("c-message", "Message", _e(message) if message else "-"),
        _cell("c-heal", "Heal", heal),
        _cell("c-deps", "Depends on", _e(", ".join(parents)) if parents else "-"),
    ]
    tone = TONES.get(status, "off")
    return f'<tr class="row-{tone}" data-name="{_e(name)}">{"".join(cells)}</tr>'


def breaker_row(breaker: Mapping[str, Any]) -> str:
    """One breaker's ``<tr>``; every value escaped."""
    name = str(breaker.get("name", ""))
    state = word(str(breaker.get("state", "")))
    rate = breaker.get("failure_rate")
    retry = seconds(breaker.get("retry_after"))
    cells = [
        _cell("b-name", "Breaker", _e(name)),
        _cell("b-state", "State", badge(state)),
        _cell("b-rate", "Failure rate", f"{float(rate):.0%}" if rate is not None else "-"),
        _cell("b-calls", "Calls", _e(int(breaker.get("total_calls", 0)))),
        _cell("b-rejected", "Rejected", _e(int(breaker.get("rejected_calls", 0)))),
        _cell("b-retry", "Retry after", age_text(retry) if retry is not None else "-"),
    ]
    tone = TONES.get(state, "off")
    return f'<tr class="row-{tone}" data-name="{_e(name)}">{"".join(cells)}</tr>'


def event_row(event: Mapping[str, Any]) -> str:
    """One event's ``<tr>``, the state entered as a badge; every value escaped."""
    time = str(event.get("time", ""))
    target = event.get("to")
    what = _e(event.get("summary", ""))
    if target:
        what = f"{badge(str(target))} {what}"
    cells = [
        _cell("e-time", "Time (UTC)", f'<time datetime="{_e(time)}">{_e(clock_text(time))}</time>'),
        _cell("e-source", "Source", _e(event.get("source", ""))),
        _cell("e-name", "Name", _e(event.get("name", ""))),
        _cell("e-what", "Event", what),
    ]
    return f'<tr data-seq="{_e(event.get("seq", ""))}">{"".join(cells)}</tr>'


def _table(
    table_id: str, caption: str, columns: Sequence[tuple[str, str]], rows: Iterable[str]
) -> str:
    body = "".join(rows)
    return (
        f'<div class="scroll"><table id="{table_id}"><caption>{_e(caption)}</caption>'
        f"{_head(columns)}<tbody>{body}</tbody></table></div>"
    )


def _summary(components: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for component in components:
        status = word(str(component.get("status", ""))).lower()
        counts[status] = counts.get(status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return _plural(len(components), "component") + (f": {detail}" if detail else "")


def render_page(
    health: Mapping[str, Any],
    breakers: Mapping[str, Any],
    events: Mapping[str, Any],
    dependencies: Mapping[str, Any],
    *,
    version: str,
) -> str:
    """The whole page, from ``/api/v1/health``, ``/breakers``, ``/events``, ``/dependencies``."""
    system = health.get("health", {})
    overall = word(str(system.get("overall_status", "")))
    components = list(system.get("components", []))
    parents = dependencies.get("depends_on", {})
    component_rows = [component_row(c, parents.get(c.get("name"), ())) for c in components]
    breaker_list = list(breakers.get("circuit_breakers", []))
    breaker_rows = [breaker_row(b) for b in breaker_list]
    event_list = list(events.get("events", []))
    event_rows = [event_row(e) for e in event_list]
    observed = clock_text(system.get("observed_at"))
    config = encode({"poll_ms": POLL_MS, "tones": dict(TONES), "prefixes": list(PREFIXES)})
    links = " · ".join(f'<a href="{_e(path)}">{_e(path)}</a>' for path in _API_PATHS)
    page_tone = TONES.get(overall, "off")
    capacity = _e(events.get("capacity", ""))
    component_table = _table(
        "components",
        "Components",
        _COMPONENT_COLUMNS,
        component_rows or [_empty_row(_COMPONENT_COLUMNS, "No components configured.")],
    )
    breaker_table = _table(
        "breakers",
        "Circuit breakers",
        _BREAKER_COLUMNS,
        breaker_rows or [_empty_row(_BREAKER_COLUMNS, "No circuit breakers.")],
    )
    event_table = _table(
        "events",
        "Recent events",
        _EVENT_COLUMNS,
        event_rows or [_empty_row(_EVENT_COLUMNS, "No events yet.")],
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{_e(overall)} · engined status</title>
<link rel="stylesheet" href="/static/status.css">
<script src="/static/status.js" defer></script>
<script type="application/json" id="page-config">{config.decode()}</script>
</head>
<body class="page-{page_tone}">
<header>
<h1>engined status</h1>
<p class="overall">Overall: <span id="overall">{badge(overall)}</span>
<span id="summary">{_e(_summary(components))}</span></p>
<p id="conn" class="conn conn-static" role="status" aria-live="polite">Snapshot taken at
{_e(observed)} UTC. Reload for newer data; live updates need JavaScript.</p>
</header>
<main>
<section aria-labelledby="h-components">
<h2 id="h-components">Components</h2>
{component_table}
</section>
<section aria-labelledby="h-breakers">
<h2 id="h-breakers">Circuit breakers</h2>
{breaker_table}
</section>
<section aria-labelledby="h-events">
<h2 id="h-events">Recent events <small>(last {capacity}, newest first)</small></h2>
{event_table}
</section>
</main>
<footer>
<p>Read-only view; admin actions are gRPC calls with the admin token. engined {_e(version)}.</p>
<p>JSON: {links}</p>
</footer>
</body>
</html>
"""
