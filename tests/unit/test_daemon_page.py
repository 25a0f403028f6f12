"""The status page: escaped HTML, statuses as colour and word, JSON equal to the gRPC replies.

Everything here is rendered or dispatched in-process (the router's ``dispatch``, no
socket), on a FakeClock and a fixed wall time; the daemon subprocess and a real browser
are in tests/integration/test_daemon_status_page*.py.
"""

from __future__ import annotations

import json
import re
import threading
from importlib import resources
from typing import Any

import pytest
from google.protobuf import json_format

from engined import CircuitBreakerRegistry, HealthCheckManager, HealthCheckResult, HealthEvent
from engined.daemon._api import (
    breakers_document,
    breakers_response,
    dependencies_document,
    encode,
    health_document,
    health_response,
)
from engined.daemon._events import EventRing
from engined.daemon._http import Request, Router
from engined.daemon._page import (
    TONES,
    age_text,
    badge,
    render_page,
    seconds,
    took_text,
    word,
)
from engined.daemon._status import as_json
from engined.daemon._web import CSP, add_status_routes
from engined.testing import FakeClock
from engined.v1 import engined_pb2 as pb

NOW_NS = 1_796_289_137_123_000_000  # 2026-12-03T09:12:17.123Z
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">&\'"'


def static_text(name: str) -> str:
    return resources.files("engined.daemon").joinpath("static", name).read_text("utf-8")


def hostile_documents() -> tuple[dict[str, Any], ...]:
    """Documents whose every string field carries markup."""
    health = {
        "health": {
            "overall_status": "HEALTH_STATUS_UNHEALTHY",
            "components": [
                {
                    "name": HOSTILE,
                    "component_type": "COMPONENT_TYPE_DATABASE",
                    "status": "HEALTH_STATUS_UNHEALTHY",
                    "critical": True,
                    "last_result": {
                        "message": HOSTILE,
                        "error": HOSTILE,
                        "age": "1.5s",
                        "duration": "0.012s",
                    },
                    "heal_state": "HEAL_STATE_BACKOFF",
                    "heal_attempts": "2",
                    "last_heal_error": HOSTILE,
                }
            ],
            "observed_at": "2026-12-03T09:12:17.123Z",
        }
    }
    breakers = {
        "circuit_breakers": [
            {
                "name": HOSTILE,
                "state": "CIRCUIT_STATE_OPEN",
                "failure_rate": 0.5,
                "total_calls": "10",
                "rejected_calls": "3",
                "retry_after": "4.2s",
            }
        ]
    }
    events = {
        "capacity": 50,
        "events": [
            {
                "seq": 1,
                "time": "2026-12-03T09:12:17.123Z",
                "source": "component",
                "name": HOSTILE,
                "kind": "transition",
                "to": HOSTILE,
                "summary": HOSTILE,
            }
        ],
    }
    dependencies = {"depends_on": {HOSTILE: [HOSTILE]}}
    return health, breakers, events, dependencies


def test_hostile_names_and_messages_are_escaped_everywhere() -> None:
    """Markup in names, messages, errors, events and parents shows as text, never as tags."""
    page = render_page(*hostile_documents(), version=HOSTILE)
    assert "<script>alert" not in page
    assert "<img" not in page
    assert 'onerror="' not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"
    # name, message, error, heal error, parent, breaker, event name, event badge, summary,
    # version, and the row attributes data-name (component, breaker)
    assert page.count(escaped) >= 12


def test_the_only_scripts_are_the_daemons_own_and_nothing_is_inline() -> None:
    """One script by src, one JSON data block; no inline style, form, button or external URL."""
    page = render_page(*hostile_documents(), version="1")
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == [
        '<script src="/static/status.js" defer>',
        '<script type="application/json" id="page-config">',
    ]
    for forbidden in ("style=", "<style", "<form", "<button", "<input", "http://", "https://"):
        assert forbidden not in page
    assert re.findall(r'(?:href|src)="([^"]*)"', page) == [
        "/static/status.css",
        "/static/status.js",
        "/api/v1/health",
        "/api/v1/breakers",
        "/api/v1/events",
        "/api/v1/dependencies",
        "/metrics",
    ]


def test_the_script_and_stylesheet_load_nothing_and_never_use_inner_html() -> None:
    """status.js builds with textContent only; neither file names another origin or import."""
    script, style = static_text("status.js"), static_text("status.css")
    for text in (script, style):
        assert "http://" not in text
        assert "https://" not in text
        assert "@import" not in text
        assert "url(" not in text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script


@pytest.mark.parametrize(
    ("enum", "prefix"),
    [
        (pb.HealthStatus, "HEALTH_STATUS_"),
        (pb.CircuitState, "CIRCUIT_STATE_"),
        (pb.HealState, "HEAL_STATE_"),
    ],
)
def test_every_state_has_a_tone_and_shows_its_word(enum: Any, prefix: str) -> None:
    """Each status, breaker state and heal state has a tone class and its word as text."""
    names = [v.name for v in enum.DESCRIPTOR.values if not v.name.endswith("UNSPECIFIED")]
    assert len(names) >= 4
    for name in names:
        text = word(name)
        assert text == name.removeprefix(prefix)
        assert text in TONES
        assert badge(text) == f'<span class="badge tone-{TONES[text]}">{text}</span>'


def test_every_tone_has_a_colour_and_all_but_plain_a_glyph() -> None:
    """The stylesheet colours each tone and gives each coloured one a glyph (never colour alone)."""
    style = static_text("status.css")
    for tone in set(TONES.values()):
        assert re.search(rf"\.tone-{tone} \{{[^}}]*color:", style), tone
        if tone != "plain":
            assert re.search(rf'\.tone-{tone}::before \{{ content: "[^"]+"', style), tone


def test_the_page_hands_the_script_the_same_tones_and_prefixes() -> None:
    """The page-config block carries TONES, so the script's badges match the server's."""
    page = render_page(*hostile_documents(), version="1")
    block = re.search(r'id="page-config">(.*?)</script>', page, re.S)
    assert block is not None
    config = json.loads(block.group(1))
    assert config["tones"] == dict(TONES)
    assert config["prefixes"] == [
        "HEALTH_STATUS_",
        "COMPONENT_TYPE_",
        "HEAL_STATE_",
        "CIRCUIT_STATE_",
    ]
    assert config["poll_ms"] == 1000


def test_rows_show_status_heal_ages_and_parents_as_words() -> None:
    """A component row reads its status, type, ages, attempts and parents; a breaker its numbers."""
    health, breakers, events, _ = hostile_documents()
    component = health["health"]["components"][0]
    component["name"] = "db"
    component["last_result"] = {"message": "refused", "age": "1.5s", "duration": "0.012s"}
    del component["last_heal_error"]
    breakers["circuit_breakers"][0]["name"] = "rpc:db"
    page = render_page(
        health, breakers, events, {"depends_on": {"db": ["net", "dns"]}}, version="1"
    )
    row = re.search(r'<tr class="row-bad" data-name="db">(.*?)</tr>', page)
    assert row is not None
    cells = re.findall(r'<td class="(c-[a-z]+)" data-label="[^"]+">(.*?)</td>', row.group(1))
    text = {css: re.sub(r"<[^>]+>", "", content) for css, content in cells}
    assert text == {
        "c-name": "db",
        "c-status": "UNHEALTHY",
        "c-type": "database",
        "c-critical": "yes",
        "c-last": "1.5s ago · took 12 ms",
        "c-message": "refused",
        "c-heal": "BACKOFF 2 attempts",
        "c-deps": "net, dns",
    }
    assert '<td class="b-rate" data-label="Failure rate">50%</td>' in page
    assert '<td class="b-retry" data-label="Retry after">4.2s</td>' in page


def test_an_empty_system_says_so_in_each_table() -> None:
    """No components, breakers or events: each table has a one-line placeholder row."""
    health = {"health": {"overall_status": "HEALTH_STATUS_HEALTHY", "components": []}}
    page = render_page(health, {}, {"capacity": 50, "events": []}, {}, version="1")
    assert "No components configured." in page
    assert "No circuit breakers." in page
    assert "No events yet." in page
    assert '<span id="overall"><span class="badge tone-ok">HEALTHY</span></span>' in page


def test_durations_and_ages_read_compactly() -> None:
    """Durations parse from proto JSON; ages and run times read short."""
    assert seconds("1.500s") == 1.5
    assert seconds("bogus") is None
    assert seconds(None) is None
    assert [age_text(0.44), age_text(12.9), age_text(200), age_text(7300), age_text(2 * 86400)] == [
        "0.4s",
        "12s",
        "3m",
        "2h",
        "2d",
    ]
    assert [took_text(0.0004), took_text(0.0123), took_text(2.345)] == ["<1 ms", "12 ms", "2.3 s"]


async def populated(clock: FakeClock) -> tuple[HealthCheckManager, CircuitBreakerRegistry]:
    manager = HealthCheckManager(clock=clock)
    manager.register(
        "db",
        lambda: HealthCheckResult("db", "database", "degraded", message="slow", details={"ms": 12}),
        component_type="database",
    )
    manager.register("cache", lambda: False, critical=False)
    await manager.run_all()
    registry = CircuitBreakerRegistry()
    registry.get_or_create("rpc:b", clock=clock).force_open()
    registry.get_or_create("rpc:a", clock=clock, minimum_calls=1)
    return manager, registry


async def test_the_json_documents_are_the_grpc_replies_in_proto_json(clock: FakeClock) -> None:
    """/api/v1/health and /breakers parse back into exactly the replies the servicer builds."""
    manager, registry = await populated(clock)
    health = health_document(manager, NOW_NS)
    breakers = breakers_document(registry, NOW_NS)
    assert json_format.ParseDict(health, pb.GetSystemHealthResponse()) == health_response(
        manager, NOW_NS
    )
    assert json_format.ParseDict(breakers, pb.ListCircuitBreakersResponse()) == breakers_response(
        registry, NOW_NS
    )
    assert health["health"]["overall_status"] == "HEALTH_STATUS_DEGRADED"
    assert health["health"]["observed_at"] == "2026-12-03T09:12:17.123Z"
    assert [c["name"] for c in health["health"]["components"]] == ["cache", "db"]
    assert health["health"]["components"][1]["check_count"] == "1"  # int64 as a string
    assert [b["name"] for b in breakers["circuit_breakers"]] == ["rpc:a", "rpc:b"]
    assert breakers["circuit_breakers"][1]["state"] == "CIRCUIT_STATE_FORCED_OPEN"


async def test_the_json_documents_equal_the_halves_of_status_json(clock: FakeClock) -> None:
    """Each document's payload is what `engined status --json` prints for its half."""
    manager, registry = await populated(clock)
    cli = json.loads(as_json(health_response(manager, NOW_NS), breakers_response(registry, NOW_NS)))
    assert health_document(manager, NOW_NS)["health"] == cli["health"]
    assert breakers_document(registry, NOW_NS)["circuit_breakers"] == cli["circuit_breakers"]


def test_json_is_compact_utf8_with_markup_characters_escaped() -> None:
    """encode() escapes <, > and & but the parsed value is unchanged."""
    document = {"m": "</script><b>&é", "n": [1, None]}
    raw = encode(document)
    assert b"<" not in raw
    assert b">" not in raw
    assert b"&" not in raw
    assert "é".encode() in raw
    assert json.loads(raw) == document


def test_dependencies_are_sorted_by_component() -> None:
    """/api/v1/dependencies maps every configured component to its parents, sorted by name."""
    document = dependencies_document(lambda: {"web": ("db", "cache"), "db": ()})
    assert json.dumps(document) == '{"depends_on": {"db": [], "web": ["db", "cache"]}}'


async def test_routes_answer_with_types_and_security_headers(clock: FakeClock) -> None:
    """Every status route answers 200 with its content type, the CSP and nosniff."""
    manager, registry = await populated(clock)
    ring = EventRing(lambda: NOW_NS, breakers=registry)
    ring(HealthEvent("heal_started", "db", 0.0, attempt=1))
    router = Router()
    add_status_routes(
        router,
        manager=manager,
        breakers=registry,
        events=ring,
        depends_on=lambda: {"db": ("cache",)},
        wall_time_ns=lambda: NOW_NS,
    )
    expected = {
        "/": "text/html; charset=utf-8",
        "/static/status.js": "text/javascript; charset=utf-8",
        "/static/status.css": "text/css; charset=utf-8",
        "/api/v1/health": "application/json",
        "/api/v1/breakers": "application/json",
        "/api/v1/events": "application/json",
        "/api/v1/dependencies": "application/json",
    }
    assert sorted(router.paths) == sorted(expected)
    for path, content_type in expected.items():
        response = await router.dispatch(Request("GET", path, {}, {}))
        assert (path, response.status, response.content_type) == (path, 200, content_type)
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in CSP
    events = json.loads((await router.dispatch(Request("GET", "/api/v1/events", {}, {}))).body)
    assert events["events"][0]["summary"] == "heal 1 started"
    page = (await router.dispatch(Request("GET", "/", {}, {}))).body.decode()
    assert '<tr class="row-warn" data-name="db">' in page
    assert '<td class="c-deps" data-label="Depends on">cache</td>' in page


async def test_pages_and_documents_are_built_off_the_event_loop(clock: FakeClock) -> None:
    """The page and the snapshot-heavy documents are built in a worker thread, never the loop's."""
    manager, registry = await populated(clock)
    loop_thread = threading.get_ident()
    seen: list[tuple[str, int]] = []

    def wall_time_ns() -> int:
        seen.append(("wall", threading.get_ident()))
        return NOW_NS

    ring = EventRing(lambda: NOW_NS, breakers=registry)
    router = Router()
    add_status_routes(
        router,
        manager=manager,
        breakers=registry,
        events=ring,
        depends_on=dict,
        wall_time_ns=wall_time_ns,
    )
    for path in ("/", "/api/v1/health", "/api/v1/breakers"):
        seen.clear()
        response = await router.dispatch(Request("GET", path, {}, {}))
        assert response.status == 200
        assert seen, path
        assert all(thread != loop_thread for _, thread in seen), path
