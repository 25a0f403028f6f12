"""``engined status`` colours: statuses by meaning, alignment kept, off unless wanted."""

from __future__ import annotations

import io

import pytest

from engined.daemon._ansi import (
    DIM,
    GREEN,
    RED,
    RESET,
    YELLOW,
    clip,
    color_wanted,
    strip,
    visible_width,
)
from engined.daemon._status_table import render, status_word
from engined.v1 import engined_pb2 as pb


class _Terminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _system() -> tuple[pb.SystemHealth, list[pb.CircuitBreakerMetrics]]:
    components = [
        pb.ComponentHealth(name=name, status=status, critical=critical)
        for name, status, critical in [
            ("a", pb.HEALTH_STATUS_HEALTHY, True),
            ("bb", pb.HEALTH_STATUS_DEGRADED, True),
            ("ccc-long", pb.HEALTH_STATUS_UNHEALTHY, False),
            ("d", pb.HEALTH_STATUS_UNKNOWN, True),
        ]
    ]
    breakers = [
        pb.CircuitBreakerMetrics(name=name, state=state, total_calls=calls)
        for name, state, calls in [
            ("pay", pb.CIRCUIT_STATE_CLOSED, 5),
            ("mail", pb.CIRCUIT_STATE_OPEN, 12345),
            ("sms", pb.CIRCUIT_STATE_HALF_OPEN, 0),
            ("fax", pb.CIRCUIT_STATE_FORCED_OPEN, 7),
            ("log", pb.CIRCUIT_STATE_DISABLED, 1),
        ]
    ]
    health = pb.SystemHealth(overall_status=pb.HEALTH_STATUS_UNHEALTHY, components=components)
    return health, breakers


def test_colour_does_not_change_what_the_screen_shows() -> None:
    """A coloured report without its escapes is the plain report, character for character."""
    health, breakers = _system()
    plain = render(health, breakers)
    coloured = render(health, breakers, color=True)
    assert coloured != plain
    assert strip(coloured) == plain
    assert [visible_width(line) for line in coloured.splitlines()] == [
        len(line) for line in plain.splitlines()
    ]


def test_statuses_and_states_get_the_colour_of_their_meaning() -> None:
    """Healthy/closed green, degraded/half_open yellow, unhealthy/open red, unknown/disabled dim."""
    expected = {
        (pb.HealthStatus, pb.HEALTH_STATUS_HEALTHY): GREEN,
        (pb.HealthStatus, pb.HEALTH_STATUS_DEGRADED): YELLOW,
        (pb.HealthStatus, pb.HEALTH_STATUS_UNHEALTHY): RED,
        (pb.HealthStatus, pb.HEALTH_STATUS_UNKNOWN): DIM,
        (pb.CircuitState, pb.CIRCUIT_STATE_CLOSED): GREEN,
        (pb.CircuitState, pb.CIRCUIT_STATE_HALF_OPEN): YELLOW,
        (pb.CircuitState, pb.CIRCUIT_STATE_OPEN): RED,
        (pb.CircuitState, pb.CIRCUIT_STATE_FORCED_OPEN): RED,
        (pb.CircuitState, pb.CIRCUIT_STATE_DISABLED): DIM,
    }
    for (enum_type, value), style in expected.items():
        word = status_word(enum_type, value, color=True)
        assert word.startswith(style), (enum_type, value, word)
        assert word.endswith(RESET)
    assert status_word(pb.HealthStatus, pb.HEALTH_STATUS_UNHEALTHY) == "unhealthy"


def test_coloured_rows_colour_only_the_status_word() -> None:
    """The non-critical note and the breaker's other cells stay uncoloured."""
    health, breakers = _system()
    lines = render(health, breakers, color=True).splitlines()
    row = next(line for line in lines if line.startswith("ccc-long"))
    assert f"{RED}unhealthy{RESET} (non-critical)" in row
    assert lines[0] == f"overall: {RED}unhealthy{RESET} (4 components)"


@pytest.mark.parametrize(
    ("mode", "terminal", "environ", "wanted"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": "anything"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),
        ("auto", True, {"TERM": "dumb"}, False),
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
    ],
)
def test_colour_is_for_terminals_unless_no_color_or_a_flag_says_otherwise(
    mode: str, terminal: bool, environ: dict[str, str], wanted: bool
) -> None:
    """`--color auto` colours a terminal unless NO_COLOR is non-empty; always/never win over it."""
    stream = _Terminal() if terminal else io.StringIO()
    assert color_wanted(mode, stream, environ) is wanted


def test_a_closed_stream_is_not_a_terminal() -> None:
    """A stream whose isatty raises (closed) gets no colour instead of an error."""
    stream = io.StringIO()
    stream.close()
    assert color_wanted("auto", stream, {}) is False


def test_clip_counts_visible_columns_and_resets_a_cut_colour() -> None:
    """Clipping ignores escapes when counting, keeps them, and resets a colour it cut into."""
    text = f"ab {GREEN}healthy{RESET} cd"
    assert clip(text, 100) == text
    assert clip(text, 6) == f"ab {GREEN}hea{RESET}"
    assert clip(text, 2) == "ab"
    assert visible_width(clip(text, 11)) == 11
