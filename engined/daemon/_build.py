"""From a validated config to what the manager registers: the built-in checks and heals.

Everything is built before anything is registered, and building is where the last
errors can show (a ``python`` target that does not import, a value a check's constructor
refuses): :func:`build` turns those into a :class:`ConfigError` naming the check, so
``check-config``, ``serve`` and a SIGHUP reload all refuse such a config whole.

``python`` targets are imported with the config file's directory first on ``sys.path``,
so a module next to the config can be named without installing it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engined import HealthCheckConfig, HealthCheckManager
from engined.checks import (
    CommandCheck,
    CommandHeal,
    GrpcCheck,
    HttpCheck,
    PythonCheck,
    PythonHeal,
    RedisCheck,
    RedisReconnectHeal,
    TcpCheck,
)
from engined.daemon._config import (
    CommandCheckSpec,
    CommandHealSpec,
    DaemonConfig,
    GrpcCheckSpec,
    HttpCheckSpec,
    PythonCheckSpec,
    PythonHealSpec,
    ReconnectHealSpec,
    RedisCheckSpec,
    TcpCheckSpec,
)
from engined.daemon._config_errors import ConfigError, find_line

__all__ = ["AnyCheck", "Registration", "build", "close", "register"]

_log = logging.getLogger("engined.daemon")

CLOSE_TIMEOUT = 1.0
"""Seconds one retired check or heal gets to release what it holds."""

AnyCheck = (
    TcpCheckSpec
    | HttpCheckSpec
    | GrpcCheckSpec
    | CommandCheckSpec
    | PythonCheckSpec
    | RedisCheckSpec
)
AnyHeal = CommandHealSpec | PythonHealSpec | ReconnectHealSpec


@dataclass(frozen=True, slots=True)
class Registration:
    """One component as the manager takes it, and the spec it was built from.

    Attributes:
        spec: The ``[[checks]]`` entry (compared on reload: unchanged means kept).
        check: The check callable.
        heal: The heal callable, or ``None``.
        settings: The HealthCheckConfig of the entry.
    """

    spec: AnyCheck
    check: Any
    heal: Any
    settings: HealthCheckConfig

    @property
    def name(self) -> str:
        """The component's name."""
        return self.spec.name


def _check(spec: AnyCheck) -> Any:
    name, kind = spec.name, spec.component_type
    if isinstance(spec, TcpCheckSpec):
        return TcpCheck(spec.target, name=name, component_type=kind)
    if isinstance(spec, HttpCheckSpec):
        return HttpCheck(
            spec.target,
            expect_status=spec.expect_status,
            body_contains=spec.body_contains,
            name=name,
            component_type=kind,
        )
    if isinstance(spec, GrpcCheckSpec):
        return GrpcCheck(
            spec.target, service=spec.service, tls=spec.tls, name=name, component_type=kind
        )
    if isinstance(spec, CommandCheckSpec):
        cwd = None if spec.cwd is None else str(spec.cwd)
        return CommandCheck(spec.command, cwd=cwd, env=spec.env, name=name, component_type=kind)
    if isinstance(spec, RedisCheckSpec):
        return RedisCheck(
            spec.target,
            password_env=spec.password_env,
            username=spec.username,
            key=spec.key,
            degraded_latency=0.05 if spec.degraded_latency is None else spec.degraded_latency,
            unhealthy_latency=spec.unhealthy_latency,
            # With a reconnect heal, reconnecting is the heal's job, paced by its backoff.
            reconnect="heal" if isinstance(spec.heal, ReconnectHealSpec) else "auto",
            name=name,
            component_type=kind,
        )
    return PythonCheck(spec.target, name=name, component_type=kind)


def _heal(spec: AnyHeal, check: Any) -> Any:
    if isinstance(spec, CommandHealSpec):
        cwd = None if spec.cwd is None else str(spec.cwd)
        return CommandHeal(spec.command, cwd=cwd, env=spec.env)
    if isinstance(spec, ReconnectHealSpec):
        return RedisReconnectHeal(check)  # the config allows it on redis checks only
    return PythonHeal(spec.target)


def _failed(
    exc: Exception,
    loc: Sequence[int | str],
    file: Path | None,
    text: str,
    keys: Iterable[str] = (),
) -> ConfigError:
    """``exc`` as a config error at ``loc``, or at the key of ``keys`` its message starts with.

    A check's constructor names the parameter first (``password_env: the environment
    variable 'X' is not set``); parameters share the config's key names, so that key is
    the place to point at.
    """
    problem = str(exc).splitlines()[0]
    key, colon, rest = problem.partition(": ")
    if colon and len(loc) == 3 and key in keys and key not in ("target", "type", "heal"):
        loc, problem = (*loc[:2], key), rest
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return ConfigError(file, path, problem, find_line(text, loc))


def build(
    config: DaemonConfig, *, file: Path | None = None, text: str = ""
) -> dict[str, Registration]:
    """Build every check and heal of ``config``, by name, in file order.

    Args:
        config: A validated config (paths resolved).
        file: The config file, for messages and the ``python`` import path.
        text: The config's text, to find the line of a refused check.

    Raises:
        ConfigError: A check or heal cannot be built (e.g. a ``python`` target does not
            import); the message names ``checks[i]`` and the key.
    """
    if file is not None and any(
        isinstance(spec, PythonCheckSpec) or isinstance(spec.heal, PythonHealSpec)
        for spec in config.checks
    ):
        directory = str(file.parent.absolute())
        if directory not in sys.path:
            sys.path.insert(0, directory)
    built: dict[str, Registration] = {}
    for index, spec in enumerate(config.checks):
        key = "target" if isinstance(spec, PythonCheckSpec) else "type"
        try:
            check = _check(spec)
        except (TypeError, ValueError) as exc:
            fields = type(spec).model_fields
            raise _failed(exc, ("checks", index, key), file, text, fields) from None
        heal = None
        if spec.heal is not None:
            try:
                heal = _heal(spec.heal, check)
            except (TypeError, ValueError) as exc:
                raise _failed(exc, ("checks", index, "heal"), file, text) from None
        built[spec.name] = Registration(spec, check, heal, spec.settings())
    return built


def register(manager: HealthCheckManager, registrations: Mapping[str, Registration]) -> None:
    """Register each of ``registrations`` with ``manager``."""
    for item in registrations.values():
        manager.register(
            item.name,
            item.check,
            component_type=item.spec.component_type,
            config=item.settings,
            heal=item.heal,
        )


async def close(registrations: Iterable[Registration]) -> None:
    """Release what retired checks and heals hold (a ``grpc`` check's channel); never raises.

    Called for the entries a reload removed or changed, for the unused copies of kept
    ones, and for every entry at shutdown: without it each reload of a ``grpc`` check
    would leave a channel, with its connection and its poller, behind.
    """
    for item in registrations:
        for part in (item.check, item.heal):
            closer = getattr(part, "close", None)
            if not callable(closer):
                continue
            try:
                outcome = closer()
                if inspect.isawaitable(outcome):
                    await asyncio.wait_for(outcome, timeout=CLOSE_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a retired check must not fail the reload or the stop
                _log.warning("%s: closing its check failed: %s", item.name, type(exc).__name__)
