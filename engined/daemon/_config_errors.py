"""Config errors as one line an operator can act on: the file, the line, the key path, the fix.

pydantic reports a location such as ``('checks', 2, 'tcp', 'interval')`` and a sentence
written for programmers; :func:`from_validation` turns the first error into
``checks[2].interval: must be > 0; got 0`` (the union's tag, ``tcp``, is not a key of the
file, so it is dropped from the path) and :func:`find_line` looks the key up in the raw
text. TOML parsers keep no positions for values, so that lookup is best effort: the n-th
``[[checks]]`` header, then the first line of its block that assigns the key (or the
header itself for a key that is missing). Arrays of inline tables (``checks = [{...}]``)
get no line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engined.daemon._config import (
    CALLABLE_RE,
    CHECK_TYPES,
    ENV_RE,
    NAME_RE,
    URL_RE,
    CommandCheckSpec,
    CommandHealSpec,
    DaemonConfig,
    GrpcCheckSpec,
    HttpCheckSpec,
    PythonCheckSpec,
    PythonHealSpec,
    ReconnectHealSpec,
    RedisCheckSpec,
    ServerSection,
    TcpCheckSpec,
)

__all__ = ["ConfigError", "find_line", "from_validation", "key_path"]

Loc = Sequence[int | str]

_CHECK_MODELS: dict[str, type[BaseModel]] = {
    "tcp": TcpCheckSpec,
    "http": HttpCheckSpec,
    "grpc": GrpcCheckSpec,
    "command": CommandCheckSpec,
    "python": PythonCheckSpec,
    "redis": RedisCheckSpec,
}
_HEAL_MODELS: dict[str, type[BaseModel]] = {
    "command": CommandHealSpec,
    "python": PythonHealSpec,
    "reconnect": ReconnectHealSpec,
}
_PATTERNS = {
    NAME_RE.pattern: "must be 1-128 letters, digits or _ . : / - (first a letter or digit)",
    CALLABLE_RE.pattern: "must be 'package.module:function'",
    URL_RE.pattern: "must be an http:// or https:// URL",
    ENV_RE.pattern: "must be an environment variable name (letters, digits, _)",
}
_KINDS = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "tuple_type": "must be an array",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "finite_number": "must be a finite number",
    "path_type": "must be a path (a string)",
    "missing": "is required",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


class ConfigError(Exception):
    """A config refused: where (file, line, key path) and why, printed as one line.

    Attributes:
        file: The config file, or ``None`` when the text came from elsewhere.
        path: The key path, ``checks[2].interval``; empty for the file as a whole.
        problem: What is wrong and, where it helps, what was found.
        line: The 1-based line in the file, when known.
    """

    def __init__(self, file: Path | None, path: str, problem: str, line: int | None = None):
        self.file = file
        self.path = path
        self.problem = problem
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = "" if self.file is None else str(self.file)
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        what = f"{self.path}: {self.problem}" if self.path else self.problem
        return f"{where}: {what}" if where else what


def key_path(loc: Loc) -> str:
    """``('checks', 2, 'interval')`` as ``checks[2].interval``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _file_loc(loc: Loc) -> list[int | str]:
    """Pydantic's location without the union tags (``tcp``, ``command``) it inserts."""
    parts = list(loc)
    out: list[int | str] = []
    for index, part in enumerate(parts):
        before = parts[index - 1] if index else None
        after_check = index >= 2 and parts[index - 2] == "checks" and isinstance(before, int)
        if (after_check and part in _CHECK_MODELS) or (before == "heal" and part in _HEAL_MODELS):
            continue
        out.append(part)
    return out


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model whose keys are valid at ``loc`` (pydantic's location, tags included)."""
    parts = list(loc)
    if not parts:
        return DaemonConfig
    if parts == ["server"]:
        return ServerSection
    if len(parts) >= 3 and parts[0] == "checks":
        if len(parts) == 3:
            return _CHECK_MODELS.get(str(parts[2]))
        if parts[3] == "heal" and len(parts) == 5:
            return _HEAL_MODELS.get(str(parts[4]))
    return None


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return "unknown key"
    if model in _CHECK_MODELS.values():
        owners = [kind for kind, other in _CHECK_MODELS.items() if key in other.model_fields]
        if owners:
            kind = str(loc[-2])
            return f"not a key of a {kind} check (only of: {', '.join(owners)})"
    close = difflib.get_close_matches(key, list(model.model_fields), n=1)
    return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


def _shown(value: object) -> str:
    if value is None or isinstance(value, bool | int | float):
        return repr(value).replace("True", "true").replace("False", "false")
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:39] + "…")
    return f"a {type(value).__name__}"


def _problem(error: Any) -> tuple[str, bool]:
    """The problem in words, and whether the found value should be shown after it."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _KINDS:
        return _KINDS[kind], kind != "missing"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {bound:g}", True
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return "must not be empty", False
    if kind == "too_long" or kind == "too_short":
        return "must be an array [low, high]", False
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(ctx.get("pattern", ""), "has the wrong form"), True
    if kind == "enum":
        return f"must be one of {ctx.get('expected', '')}", True
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '')}", True
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, "), False
    return str(error["msg"]), True


def from_validation(error: ValidationError, file: Path | None, text: str) -> ConfigError:
    """The first of pydantic's errors as a :class:`ConfigError`; a count says if more."""
    errors = error.errors(include_url=False)
    first = errors[0]
    loc = first["loc"]
    kind = first["type"]
    found = first.get("input")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        where = [*_file_loc(loc), "type"]
        types = list(_HEAL_MODELS) if loc and loc[-1] == "heal" else CHECK_TYPES
        problem = f"must be one of {', '.join(types)}"
        if kind == "union_tag_invalid":
            problem += f"; got {_shown(found.get('type') if isinstance(found, dict) else found)}"
        else:
            problem = f"is required ({problem.removeprefix('must be ')})"
    elif kind == "extra_forbidden":
        where, problem = _file_loc(loc), _unknown_key(loc)
    else:
        where = _file_loc(loc)
        problem, show = _problem(first)
        if show:
            problem += f"; got {_shown(found)}"
    if len(errors) > 1:
        problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    line_of = where
    if kind == "value_error" and (named := re.match(r"[a-z_]+", problem)):
        line_of = [*where, named.group(0)]  # a rule between keys: the line of the first named
    return ConfigError(file, key_path(where), problem, find_line(text, line_of))


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(?:#.*)?$")


def _assigns(line: str, key: str) -> bool:
    return re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line) is not None


def find_line(text: str, loc: Loc) -> int | None:
    """The 1-based line of the key at ``loc`` (a file location, no tags); best effort."""
    lines = text.splitlines()
    headers = [
        (n, m.group(1).replace(" ", ""))
        for n, line in enumerate(lines)
        if (m := _HEADER.match(line))
    ]
    keys = [str(p) for p in loc if isinstance(p, str)]
    if not keys:
        return None
    if keys[0] == "checks" and len(loc) >= 2 and isinstance(loc[1], int):
        starts = [n for n, name in headers if name == "checks" and lines[n].lstrip()[:2] == "[["]
        if loc[1] >= len(starts):
            return None
        start = starts[loc[1]]
        later = [n for n, name in headers if n > start and not name.startswith("checks.")]
        return _key_in(lines, start, later[0] if later else len(lines), keys[1:3], "checks")
    if keys[0] == "server":
        found = [n for n, name in headers if name == "server"]
        if not found:
            return _key_in(lines, -1, headers[0][0] if headers else len(lines), ["server"], "")
        later = [n for n, _ in headers if n > found[0]]
        return _key_in(lines, found[0], later[0] if later else len(lines), keys[1:2], "server")
    return _key_in(lines, -1, headers[0][0] if headers else len(lines), keys[:1], "")


def _key_in(lines: list[str], start: int, end: int, keys: list[str], table: str) -> int | None:
    """The line of ``keys`` (a key, then a key inside it) between ``start`` and ``end``.

    Falls back to the deepest line found: the table's header for a key that is missing.
    """
    best = start + 1 if start >= 0 else None
    if not keys:
        return best
    for n in range(start + 1, end):
        if _assigns(lines[n], keys[0]):
            return n + 1  # an inline table or a value: its line
        if lines[n].strip().replace(" ", "") == f"[{table}.{keys[0]}]":
            later = [m for m in range(n + 1, end) if lines[m].lstrip().startswith("[")]
            return _key_in(lines, n, later[0] if later else end, keys[1:], f"{table}.{keys[0]}")
    return best
