"""Read a config file whole, or refuse it whole: nothing starts from a half-valid config.

:func:`load_config` parses the TOML (a syntax error names its line), validates it against
the models of :mod:`engined.daemon._config`, then applies the rules between checks that
a single model cannot see: names are unique, every ``depends_on`` parent exists, and the
dependencies have no cycle. Relative paths are resolved against the config file's
directory, so a config works from whatever directory the daemon was started in:

- a command's program (``command[0]``) when it contains a ``/`` (a bare name such as
  ``"pg_isready"`` is looked up on ``PATH`` as usual);
- a command's ``cwd``; a command without one runs in the config file's directory;
- ``tls_cert``, ``tls_key`` and ``tls_client_ca``, which must be readable.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engined.daemon._config import (
    CommandCheckSpec,
    CommandHealSpec,
    DaemonConfig,
    ServerSection,
)
from engined.daemon._config_errors import ConfigError, find_line, from_validation

__all__ = ["ConfigError", "load_config", "parse_config"]

_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_config(path: Path) -> DaemonConfig:
    """Read, validate and resolve the config at ``path``.

    Raises:
        ConfigError: The file cannot be read or is not a valid config; the message is one
            line naming the file, the line where known, and the key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(path, "", f"cannot read the config: {reason}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path | None = None, *, base: Path | None = None) -> DaemonConfig:
    """Validate config ``text`` (read from ``path``, for messages and relative paths).

    Args:
        text: The TOML text.
        path: The file it came from; relative paths resolve against its directory.
        base: The directory relative paths resolve against when ``path`` is ``None``
            (default: the current directory).

    Raises:
        ConfigError: The text is not a valid config.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_AT.search(message)
        line = int(found.group(1)) if found else None
        reason = _TOML_AT.sub("", message).strip()
        column = f" (column {found.group(2)})" if found else ""
        raise ConfigError(path, "", f"TOML syntax error: {reason}{column}", line) from None
    try:
        config = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, path, text) from None
    _check_graph(config, path, text)
    directory = (path.parent if path is not None else base or Path()).absolute()
    return _resolved(config, directory, path, text)


def _fail(path: Path | None, text: str, loc: Sequence[int | str], problem: str) -> ConfigError:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return ConfigError(path, where, problem, find_line(text, loc))


def _check_graph(config: DaemonConfig, path: Path | None, text: str) -> None:
    """Unique names, known parents, no cycle: what the manager would refuse half-way."""
    seen: dict[str, int] = {}
    for index, check in enumerate(config.checks):
        if check.name in seen:
            problem = f"duplicate name {check.name!r} (also checks[{seen[check.name]}])"
            raise _fail(path, text, ("checks", index, "name"), problem)
        seen[check.name] = index
    for index, check in enumerate(config.checks):
        for parent in check.depends_on:
            if parent not in seen:
                problem = f"unknown component {parent!r} (no check has that name)"
                raise _fail(path, text, ("checks", index, "depends_on"), problem)
            if parent == check.name:
                raise _fail(path, text, ("checks", index, "depends_on"), "depends on itself")
    parents = {check.name: check.depends_on for check in config.checks}
    cycle = _find_cycle(parents)
    if cycle is not None:
        index = seen[cycle[0]]
        problem = f"dependency cycle: {' -> '.join(cycle)}"
        raise _fail(path, text, ("checks", index, "depends_on"), problem)


def _find_cycle(parents: dict[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle in the ``depends_on`` graph as ``[a, b, ..., a]`` (file order decides), or None."""
    done: set[str] = set()
    for root in parents:
        if root in done:
            continue
        trail: list[str] = []
        on_trail: set[str] = set()
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, child = stack.pop()
            if child == 0:
                trail.append(name)
                on_trail.add(name)
            edges = parents.get(name, ())
            if child < len(edges):
                stack.append((name, child + 1))
                nxt = edges[child]
                if nxt in on_trail:
                    return [*trail[trail.index(nxt) :], nxt]
                if nxt not in done:
                    stack.append((nxt, 0))
                continue
            trail.pop()
            on_trail.discard(name)
            done.add(name)
    return None


def _program(argv: Sequence[str], directory: Path) -> list[str]:
    program = argv[0]
    if "/" in program and not Path(program).is_absolute():
        program = str((directory / program).resolve())
    return [program, *argv[1:]]


def _command_paths(spec: Any, directory: Path) -> dict[str, Any]:
    cwd = spec.cwd if spec.cwd is not None else Path()
    return {"command": _program(spec.command, directory), "cwd": (directory / cwd).resolve()}


def _resolved(config: DaemonConfig, directory: Path, path: Path | None, text: str) -> DaemonConfig:
    checks = []
    for check in config.checks:
        update: dict[str, Any] = {}
        if isinstance(check, CommandCheckSpec):
            update.update(_command_paths(check, directory))
        if isinstance(check.heal, CommandHealSpec):
            update["heal"] = check.heal.model_copy(update=_command_paths(check.heal, directory))
        checks.append(check.model_copy(update=update) if update else check)
    server = _resolved_server(config.server, directory, path, text)
    return config.model_copy(update={"checks": tuple(checks), "server": server})


def _resolved_server(
    server: ServerSection, directory: Path, path: Path | None, text: str
) -> ServerSection:
    update: dict[str, Path] = {}
    for key in ("tls_cert", "tls_key", "tls_client_ca"):
        value: Path | None = getattr(server, key)
        if value is None:
            continue
        full = (directory / value).resolve()
        try:
            head = full.read_bytes()[:4096]
        except OSError as exc:
            problem = f"cannot read {str(value)!r}: {exc.strerror or type(exc).__name__}"
            raise _fail(path, text, ("server", key), problem) from None
        if b"-----BEGIN " not in head:
            raise _fail(path, text, ("server", key), f"{str(value)!r} is not a PEM file")
        update[key] = full
    return server.model_copy(update=update) if update else server
