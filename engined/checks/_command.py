"""The ``command`` check and heal: run an argv, judge its exit status.

Both run through :func:`engined.checks._process.run_command`: argv only (never a shell),
in a process group of their own that is killed when the run ends or is cancelled, output
capped and redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final

from engined.checks._common import Identity
from engined.checks._process import (
    Completed,
    check_argv,
    check_cwd,
    check_env,
    check_max_output,
    run_command,
)
from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = ["CommandCheck", "CommandHeal", "SUMMARY_LENGTH"]

_log = logging.getLogger("engined.checks")

SUMMARY_LENGTH: Final = 200
"""Characters of output quoted in a message (the whole capped output is in ``details``)."""

_EXIT_STATUS: Final = {0: HealthStatus.HEALTHY, 1: HealthStatus.DEGRADED}


def summarize(output: str, limit: int = SUMMARY_LENGTH) -> str:
    """Output on one line (whitespace runs become one space), cut to ``limit`` characters."""
    text = " ".join(output.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _start_failure(exc: OSError, argv0: str, cwd: str | None) -> str:
    """Why a command could not start, in a few words."""
    if isinstance(exc, FileNotFoundError) and cwd is not None and exc.filename == cwd:
        return f"working directory not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {argv0}"
    if isinstance(exc, PermissionError):
        return f"command not executable: {argv0}"
    return f"command failed to start: {argv0} ({type(exc).__name__})"


class _Command:
    """What a command check and a command heal share: the validated argv and settings."""

    __slots__ = ("argv", "cwd", "env", "max_output")

    def __init__(
        self,
        argv: object,
        cwd: object,
        env: object,
        max_output: object,
    ) -> None:
        self.argv = check_argv(argv)
        self.cwd = check_cwd(cwd)
        self.env = check_env(env)
        self.max_output = check_max_output(max_output)

    async def run(self, extra_env: Mapping[str, str] | None = None) -> Completed:
        env = {**self.env, **extra_env} if extra_env else self.env
        return await run_command(self.argv, cwd=self.cwd, env=env, max_output=self.max_output)


class CommandCheck:
    """Run a command: exit 0 is HEALTHY, 1 DEGRADED, anything else (or a signal) UNHEALTHY.

    The exit-code convention is the Nagios plugin one (0 OK, 1 WARNING, 2 CRITICAL), so
    existing probes (``pg_isready``, ``redis-cli ping`` wrappers, Nagios plugins) work as
    they are. The message is the outcome and the output on one line, shortened
    (``"exit 2: connection refused"``); ``details`` has ``exit_code``, ``output`` (the
    first ``max_output`` bytes, redacted) and ``output_truncated``.

    On the manager's timeout the call is cancelled and the command's whole process group
    is terminated (SIGTERM, a second of grace, SIGKILL), grandchildren included.

    Args:
        argv: The program and its arguments, as a list; a string is refused, since it
            would need a shell to split it.
        cwd: The working directory, or ``None`` for the daemon's.
        env: Variables added to (overriding) the inherited environment.
        max_output: Bytes of combined stdout and stderr kept.
        name: The component name put on results (the manager uses the registered one).
        component_type: The component type put on results.

    Raises:
        TypeError: An argument has the wrong type (a str ``argv`` included).
        ValueError: An argument has a bad value (the message names it).
    """

    __slots__ = ("_command", "_id")

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        max_output: int = 4096,
        name: str = "command",
        component_type: ComponentType | str = ComponentType.CUSTOM,
    ) -> None:
        self._command = _Command(argv, cwd, env, max_output)
        self._id = Identity(name, component_type)

    @property
    def argv(self) -> tuple[str, ...]:
        """The program and its arguments."""
        return self._command.argv

    async def __call__(self) -> HealthCheckResult:
        """Run the command to its end and judge its exit status."""
        try:
            done = await self._command.run()
        except OSError as exc:
            message = _start_failure(exc, self._command.argv[0], self._command.cwd)
            return self._id.result(HealthStatus.UNHEALTHY, message)
        status = _EXIT_STATUS.get(done.returncode, HealthStatus.UNHEALTHY)
        summary = summarize(done.output)
        message = f"{done.outcome}: {summary}" if summary else done.outcome
        details = {
            "exit_code": done.returncode,
            "output": done.output,
            "output_truncated": done.truncated,
        }
        return self._id.result(status, message, details)

    def __repr__(self) -> str:
        return f"CommandCheck({list(self._command.argv)!r})"


class CommandHeal:
    """Run a command to heal a component; it succeeded when it exits 0.

    The command learns what it heals from its environment:

    * ``ENGINED_COMPONENT``: the component's name;
    * ``ENGINED_COMPONENT_STATUS``: the triggering result's status (``unhealthy``);
    * ``ENGINED_COMPONENT_MESSAGE``: its message (already redacted by the manager).

    Its outcome and shortened output are logged on the ``engined.checks`` logger (INFO on
    success, WARNING otherwise). A command that cannot be started raises (its type,
    ``FileNotFoundError`` say, becomes the component's ``last_heal_error``); one that
    runs and fails returns ``False``. Process group and kill rules are those of
    :class:`CommandCheck`, under the manager's ``heal_timeout``.

    Args:
        argv: The program and its arguments, as a list, never a shell string.
        cwd: The working directory, or ``None`` for the daemon's.
        env: Variables added to (overriding) the inherited environment.
        max_output: Bytes of combined stdout and stderr kept for the log.

    Raises:
        TypeError: An argument has the wrong type (a str ``argv`` included).
        ValueError: An argument has a bad value (the message names it).
    """

    __slots__ = ("_command",)

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        max_output: int = 4096,
    ) -> None:
        self._command = _Command(argv, cwd, env, max_output)

    @property
    def argv(self) -> tuple[str, ...]:
        """The program and its arguments."""
        return self._command.argv

    async def __call__(self, trigger: HealthCheckResult) -> bool:
        """Run the command with the trigger in its environment; ``True`` when it exits 0.

        Raises:
            OSError: The command could not be started (missing, not executable).
        """
        extra = {
            "ENGINED_COMPONENT": _env_safe(trigger.component),
            "ENGINED_COMPONENT_STATUS": trigger.status.value,
            "ENGINED_COMPONENT_MESSAGE": _env_safe(trigger.message),
        }
        program = self._command.argv[0]
        try:
            done = await self._command.run(extra)
        except OSError as exc:
            reason = _start_failure(exc, program, self._command.cwd)
            _log.warning("heal of %s: %s", trigger.component, reason)
            raise
        summary = summarize(done.output)
        level = logging.INFO if done.returncode == 0 else logging.WARNING
        _log.log(level, "heal of %s: %s %s: %s", trigger.component, program, done.outcome, summary)
        return done.returncode == 0

    def __repr__(self) -> str:
        return f"CommandHeal({list(self._command.argv)!r})"


def _env_safe(text: str) -> str:
    """``text`` without NUL characters, which no environment variable can hold."""
    return text.replace("\0", "")
