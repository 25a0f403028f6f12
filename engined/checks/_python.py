"""The ``python`` check and heal: call a function named ``"package.module:function"``.

The function is imported at construction, so a typo fails with the config, not at the
first check. Async functions are awaited; sync ones run in a thread of their own.

Why not ``asyncio.to_thread``: the default executor's threads are joined when the event
loop shuts down (``asyncio.run``) and when the interpreter exits, so one hung health
function would hang the daemon's shutdown, and a few would use up the executor that
``getaddrinfo`` (every tcp and http check) also needs. A daemon thread per call is
neither joined nor shared. A call whose thread still runs from an earlier, timed-out
call is not started again (the manager's "stuck" rule, kept for the thread the manager
cannot see): the check reports UNHEALTHY with ``error="stuck"``, the heal returns
``False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from engined.checks._common import Identity
from engined.core._callables import is_async_callable
from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = ["PythonCheck", "PythonHeal", "load_callable"]

_log = logging.getLogger("engined.checks")


def load_callable(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` and return the callable it names.

    The part after the colon may be a dotted path (``"pkg.mod:Class.method"``). Importing
    runs the module, so this is done once, at construction.

    Raises:
        TypeError: ``target`` is not a str, or what it names is not callable.
        ValueError: ``target`` is not ``module:attribute``, or the module cannot be
            imported (``ImportError`` or any error raised while importing it), or has no
            such attribute; the message names ``target``.
    """
    if not isinstance(target, str):
        msg = f"target must be a str 'package.module:function', got {type(target).__name__}"
        raise TypeError(msg)
    module_name, colon, attribute = target.strip().partition(":")
    if (
        not colon
        or not all(part.isidentifier() for part in module_name.split("."))
        or not all(part.isidentifier() for part in attribute.split("."))
    ):
        msg = f"target must be 'package.module:function', got {target!r}"
        raise ValueError(msg)
    try:
        found: object = importlib.import_module(module_name)
    except Exception as exc:
        msg = f"target {target!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        raise ValueError(msg) from exc
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            msg = f"target {target!r}: {module_name!r} has no attribute {attribute!r}"
            raise ValueError(msg) from None
    if not callable(found):
        msg = f"target {target!r} is not callable (a {type(found).__name__})"
        raise TypeError(msg)
    return found


class _Caller:
    """Calls one function: awaited if async, else in a daemon thread, one thread at a time."""

    __slots__ = ("fn", "is_async", "target", "thread_busy")

    def __init__(self, target: str) -> None:
        self.fn = load_callable(target)
        self.target = target
        self.is_async = is_async_callable(self.fn)
        self.thread_busy = False

    async def call(self, *args: Any) -> Any:
        """Call the function; a sync one's awaitable return is awaited too.

        Raises:
            _StillRunning: A sync call from before is still running in its thread.
            Exception: Whatever the function raised.
        """
        if self.is_async:
            value = self.fn(*args)
        else:
            if self.thread_busy:
                raise _StillRunning
            value = await self._in_thread(args)
        while inspect.isawaitable(value):
            value = await value
        return value

    async def _in_thread(self, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()

        def settle(value: Any, error: BaseException | None) -> None:
            if future.done():
                return  # the caller was cancelled; nobody waits
            if error is None:
                future.set_result(value)
            elif isinstance(error, StopIteration):  # a future refuses to hold one
                future.set_exception(RuntimeError("the function raised StopIteration"))
            else:
                future.set_exception(error)

        def work() -> None:
            value: Any = None
            error: BaseException | None = None
            try:
                value = context.run(self.fn, *args)
            except BaseException as exc:  # delivered to the caller, whatever it is
                error = exc
            finally:
                self.thread_busy = False
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
                loop.call_soon_threadsafe(settle, value, error)

        self.thread_busy = True
        thread = threading.Thread(target=work, name=f"engined-python:{self.target}", daemon=True)
        try:
            thread.start()
        except BaseException:
            self.thread_busy = False
            raise
        return await future


class _StillRunning(Exception):
    """A sync function's earlier call has not returned yet."""


class PythonCheck:
    """Call ``"package.module:function"`` as a check.

    What the function returns is passed on unchanged when it is a
    :class:`HealthCheckResult`, a :class:`HealthStatus` or a bool, which the manager
    turns into a result; anything else is UNHEALTHY with ``error="invalid result
    (<type>)"``, as the manager would record it. Exceptions propagate: the manager
    records their type name, never their text.

    Args:
        target: ``"package.module:function"``, imported now.
        name: The component name put on results (the manager uses the registered one).
        component_type: The component type put on results.

    Raises:
        TypeError: ``target`` is not a str or names something not callable.
        ValueError: ``target`` cannot be imported or resolved (the message names it).
    """

    __slots__ = ("_caller", "_id")

    def __init__(
        self,
        target: str,
        *,
        name: str = "python",
        component_type: ComponentType | str = ComponentType.CUSTOM,
    ) -> None:
        self._caller = _Caller(target)
        self._id = Identity(name, component_type)

    @property
    def target(self) -> str:
        """The ``"package.module:function"`` this check calls."""
        return self._caller.target

    async def __call__(self) -> HealthCheckResult | HealthStatus | bool:
        """Call the function and pass its verdict on."""
        try:
            value = await self._caller.call()
        except _StillRunning:
            message = "the previous call is still running"
            return self._id.result(HealthStatus.UNHEALTHY, message, error="stuck")
        if isinstance(value, HealthCheckResult | HealthStatus | bool):
            return value
        return self._id.result(
            HealthStatus.UNHEALTHY,
            "check returned no verdict",
            error=f"invalid result ({type(value).__name__})",
        )

    def __repr__(self) -> str:
        return f"PythonCheck({self.target!r})"


class PythonHeal:
    """Call ``"package.module:function"`` with the triggering result as a heal.

    It returning ``False`` means the heal failed; anything else is success. Exceptions
    propagate (the manager counts and logs them by type name).

    Args:
        target: ``"package.module:function"`` taking one argument, imported now.

    Raises:
        TypeError: ``target`` is not a str or names something not callable.
        ValueError: ``target`` cannot be imported or resolved (the message names it).
    """

    __slots__ = ("_caller",)

    def __init__(self, target: str) -> None:
        self._caller = _Caller(target)

    @property
    def target(self) -> str:
        """The ``"package.module:function"`` this heal calls."""
        return self._caller.target

    async def __call__(self, trigger: HealthCheckResult) -> bool:
        """Call the function with ``trigger``; ``False`` only when it returned ``False``."""
        try:
            value = await self._caller.call(trigger)
        except _StillRunning:
            _log.warning(
                "heal %s of %s: its previous call still runs", self.target, trigger.component
            )
            return False
        return value is not False

    def __repr__(self) -> str:
        return f"PythonHeal({self.target!r})"
