"""Terminal escapes for ``engined status``: colours, their on/off rule, widths that ignore them.

Colour is a courtesy to a person at a terminal and noise everywhere else, so it is on only
when asked for (``--color always``) or when stdout is a terminal that can show it and the
user has not opted out with ``NO_COLOR`` (https://no-color.org: any non-empty value). A
coloured cell is wider in characters than on screen, so every width here is the visible
one: :func:`visible_width` and :func:`clip` skip escape sequences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TextIO

__all__ = [
    "DIM",
    "ERASE_BELOW",
    "ERASE_LINE",
    "GREEN",
    "HIDE_CURSOR",
    "HOME",
    "RED",
    "RESET",
    "SCREEN_ALTERNATE",
    "SCREEN_NORMAL",
    "SHOW_CURSOR",
    "YELLOW",
    "clip",
    "color_wanted",
    "is_terminal",
    "paint",
    "strip",
    "visible_width",
]

RESET: Final = "\x1b[0m"
GREEN: Final = "\x1b[32m"
YELLOW: Final = "\x1b[33m"
RED: Final = "\x1b[31m"
DIM: Final = "\x1b[2m"

HOME: Final = "\x1b[H"
ERASE_LINE: Final = "\x1b[K"  # from the cursor to the end of the line
ERASE_BELOW: Final = "\x1b[J"  # from the cursor to the end of the screen
HIDE_CURSOR: Final = "\x1b[?25l"
SHOW_CURSOR: Final = "\x1b[?25h"
SCREEN_ALTERNATE: Final = "\x1b[?1049h"  # xterm's alternate screen, as less, top and watch use
SCREEN_NORMAL: Final = "\x1b[?1049l"

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def paint(style: str | None, text: str, *, color: bool) -> str:
    """``text`` in ``style`` and reset after it; unchanged without colour or style."""
    if not color or not style or not text:
        return text
    return f"{style}{text}{RESET}"


def strip(text: str) -> str:
    """``text`` without its escape sequences: what the screen shows."""
    return _ESCAPE.sub("", text)


def visible_width(text: str) -> int:
    """How many columns ``text`` takes on screen (escapes take none)."""
    return len(strip(text))


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` visible columns, escapes kept (and a reset if cut inside one).

    A frame line wider than the terminal would wrap and push the frame down a row, so
    lines are cut rather than left to the terminal.
    """
    if visible_width(text) <= width:
        return text
    out: list[str] = []
    shown = 0
    position = 0
    styled = False
    while position < len(text) and shown < width:
        match = _ESCAPE.match(text, position)
        if match:
            out.append(match.group())
            styled = match.group() != RESET
            position = match.end()
            continue
        out.append(text[position])
        shown += 1
        position += 1
    return "".join(out) + (RESET if styled else "")


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal; a closed or fake stream is not."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def color_wanted(mode: str, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether to colour output to ``stream`` for ``--color MODE`` (auto, always, never).

    ``always`` and ``never`` are the user's explicit word and win over ``NO_COLOR``, as
    no-color.org asks of command-line flags. ``auto`` colours a terminal unless
    ``NO_COLOR`` is set to anything non-empty or ``TERM`` is ``dumb``.
    """
    if mode == "always":
        return True
    if mode == "never":
        return False
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)
