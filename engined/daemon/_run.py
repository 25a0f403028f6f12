"""``engined serve`` and ``engined check-config`` from a file name to an exit status.

The daemon runs on an event loop of its own rather than ``asyncio.run``: after the
graceful stop, ``asyncio.run`` would wait without limit for every task left (a check
that swallows its cancellation) and for the default executor's threads. Here each of
those waits is bounded, and a process that still has non-daemon threads busy at the end
(a user's check stuck in a call that cannot be interrupted) exits with its status
anyway, saying so, instead of hanging past the 5 s a supervisor allows (DESIGN.md §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal

from engined.daemon._build import Registration, build
from engined.daemon._config import DaemonConfig
from engined.daemon._config_errors import ConfigError
from engined.daemon._config_load import parse_config
from engined.daemon._logging import configure, fields

__all__ = ["check_config", "load_and_build", "serve"]

_log = logging.getLogger("engined.daemon")

LEFTOVER_WAIT = 0.5  # seconds for tasks still pending after the stop, and for threads


def load_and_build(path: Path | None) -> tuple[DaemonConfig, dict[str, Registration]]:
    """The config at ``path`` (an empty one for ``None``) and its checks, built.

    Raises:
        ConfigError: The file cannot be read, or is not a valid config.
    """
    if path is None:
        return DaemonConfig(), {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(path, "", f"cannot read the config: {reason}") from None
    config = parse_config(text, path)
    return config, build(config, file=path, text=text)


def check_config(path: Path) -> int:
    """Validate ``path`` fully (checks built, nothing started); print one line; 0 or 2."""
    try:
        config, built = load_and_build(path)
    except ConfigError as exc:
        print(f"engined check-config: {exc}", file=sys.stderr)
        return 2
    names = ", ".join(built) if built else "none"
    server = config.server
    print(
        f"{path}: ok: {len(built)} check{'' if len(built) == 1 else 's'} ({names}); "
        f"gRPC on {server.host}:{server.port}, metrics on {server.host}:{server.metrics_port}"
    )
    return 0


def serve(
    path: Path | None,
    *,
    overrides: dict[str, object],
    log_format: Literal["text", "json"],
) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the exit status."""
    try:
        config, built = load_and_build(path)
    except ConfigError as exc:
        print(f"engined serve: {exc}", file=sys.stderr)
        return 2
    configure(log_format)
    if path is None:
        _log.info("no config file: serving an empty system", extra=fields(event="config_loaded"))
    else:
        _log.info(
            "config loaded from %s: %d checks",
            path,
            len(built),
            extra=fields(event="config_loaded", path=str(path), checks=",".join(built)),
        )
    from engined.daemon._serve import Daemon, StartupError

    daemon = Daemon(config, built, config_path=path, overrides=overrides)
    try:
        code = run_loop(daemon.run)
    except StartupError as exc:
        _log.error("cannot start: %s", exc, extra=fields(event="startup_failed"))
        code = exc.exit_code
    exit_despite_stragglers(code)
    return code


def run_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``main()`` on a new loop; then close the loop with every wait bounded."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        wait = asyncio.wait(tasks, timeout=LEFTOVER_WAIT)
        loop.run_until_complete(wait)
        left = [t for t in tasks if not t.done()]
        if left:
            _log.warning("%d task(s) ignored their cancellation; leaving them", len(left))
            loop.set_exception_handler(_quiet_about(left))
    with contextlib.suppress(Exception):
        shutdown = asyncio.wait_for(loop.shutdown_asyncgens(), timeout=LEFTOVER_WAIT)
        loop.run_until_complete(shutdown)
    loop.close()


def _quiet_about(
    left: list[asyncio.Task[Any]],
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An exception handler that drops "destroyed but pending" for tasks already warned of."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("task") in left:
            return
        loop.default_exception_handler(context)

    return handle


def exit_despite_stragglers(code: int) -> None:
    """Exit now with ``code`` if non-daemon threads would hold the interpreter's exit.

    Waits up to :data:`LEFTOVER_WAIT` for them first; returns when there are none.
    """
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    for thread in others:
        thread.join(timeout=LEFTOVER_WAIT / max(1, len(others)))
    busy = [t.name for t in others if t.is_alive()]
    if not busy:
        return
    _log.warning(
        "exiting with %d thread(s) still busy: %s",
        len(busy),
        ", ".join(busy),
        extra=fields(event="exit_with_busy_threads"),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
