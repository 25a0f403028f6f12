"""Every way of calling through a guard: decorator, ``call``, ``call_async``, ``with``.

A guard (the circuit breaker, the bulkhead) only says how to admit a call and how to
record its end. This module turns that into the five calling conventions, once,
so they cannot drift apart. The contract a guard fulfils:

- ``_admit()`` returns a permit or raises, and ``_admit_async()`` is its asyncio form (by
  default the same, for guards that never wait); ``_fast`` is a permit that may be used
  without admission (the breaker's CLOSED phase), or ``None``;
- while ``_monotonic()`` is below ``_refuse_until`` (``-inf``: never; ``inf``: until told
  otherwise) every call is refused at once: ``_rejected()`` counts it (an
  :class:`~engined.core._counter.AtomicCounter`, no lock) and ``_refusal(retry_after)``
  is raised;
- ``_on_result(permit, result, start)`` and ``_on_exception(permit, exc, start)`` record
  the end of an admitted call, and give the permit back;
- ``_timed`` says whether ``start`` must be read from ``_monotonic`` before the call;
- when ``_plain`` is true, a call that returned on a permit with a ``tally`` is recorded
  by calling ``permit.tally()`` and ``_succeeded()``, two atomic C calls and no lock; the
  guard folds the permit's tally into its books at its next locked operation.

The lock-free success and the refusal are the hot paths of a guarded call (the second
is every call while a dependency is down), so they are written out in each of the four
calling conventions below rather than behind one more Python call: routing them
through a helper costs a fifth of the breaker's budget on success, and an extra
traceback entry per refusal. Keeping the lock off the success path also keeps threads
from queueing behind one that the interpreter switched out while it held the lock.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

__all__ = ["NO_RESULT", "Guard"]

P = ParamSpec("P")
T = TypeVar("T")

NO_RESULT: Any = object()
"""Passed to ``_on_result`` when a ``with`` block ends: there is no return value to judge."""


def _uncounted() -> int:
    """Stands in for a counter that a guard does not keep."""
    return 0


class Guard:
    """Base of the guards: the calling conventions over ``_admit`` and ``_on_*``."""

    __slots__ = ("_permits", "_rejected", "_succeeded")

    _fast: Any
    _timed: bool
    _plain: bool
    _refuse_until: float
    _refusal: Callable[[float], Exception]
    _monotonic: Callable[[], float]

    def __init__(self, name: str) -> None:
        self._permits: contextvars.ContextVar[tuple[tuple[Any, float], ...]] = (
            contextvars.ContextVar(f"engined.guard.{name}", default=())
        )
        # Counters of the lock-free paths; a guard without those paths keeps none.
        self._succeeded: Callable[[], int] = _uncounted
        self._rejected: Callable[[], int] = _uncounted

    def _admit(self) -> Any:
        raise NotImplementedError

    async def _admit_async(self) -> Any:
        return self._admit()

    def _on_result(self, permit: Any, result: object, start: float) -> None:
        raise NotImplementedError

    def _on_exception(self, permit: Any, exc: BaseException, start: float) -> None:
        raise NotImplementedError

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the guard and return its result."""
        permit = self._fast
        if permit is None:
            retry_after = self._refuse_until - self._monotonic()
            if retry_after > 0:
                self._rejected()
                raise self._refusal(retry_after)
            permit = self._admit()
        start = self._monotonic() if self._timed else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(permit, exc, start)
            raise
        if self._plain:
            tally = permit.tally
            if tally is not None:
                tally()
                self._succeeded()
                return result
        self._on_result(permit, result, start)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the guard and return its result."""
        permit = self._fast
        if permit is None:
            retry_after = self._refuse_until - self._monotonic()
            if retry_after > 0:
                self._rejected()
                raise self._refusal(retry_after)
            permit = await self._admit_async()
        start = self._monotonic() if self._timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._on_exception(permit, exc, start)
            raise
        if self._plain:
            tally = permit.tally
            if tally is not None:
                tally()
                self._succeeded()
                return result
        self._on_result(permit, result, start)
        return result

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]], /
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any], /) -> Callable[P, Any]:
        """Decorate a sync or async function so every call goes through the guard."""
        if not callable(fn):
            msg = f"a guard decorates a callable, got {type(fn).__name__}"
            raise TypeError(msg)
        if inspect.iscoroutinefunction(fn):
            return self._wrap_async(fn)
        return self._wrap_sync(fn)

    def _wrap_sync(self, fn: Callable[P, T]) -> Callable[P, T]:
        monotonic, succeeded = self._monotonic, self._succeeded
        rejected = self._rejected
        timed, plain = self._timed, self._plain

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            permit = self._fast
            if permit is None:
                retry_after = self._refuse_until - monotonic()
                if retry_after > 0:
                    rejected()
                    raise self._refusal(retry_after)
                permit = self._admit()
            start = monotonic() if timed else 0.0
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._on_exception(permit, exc, start)
                raise
            if plain:
                tally = permit.tally
                if tally is not None:
                    tally()
                    succeeded()
                    return result
            self._on_result(permit, result, start)
            return result

        return guarded

    def _wrap_async(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        monotonic, succeeded = self._monotonic, self._succeeded
        rejected = self._rejected
        timed, plain = self._timed, self._plain

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            permit = self._fast
            if permit is None:
                retry_after = self._refuse_until - monotonic()
                if retry_after > 0:
                    rejected()
                    raise self._refusal(retry_after)
                permit = await self._admit_async()
            start = monotonic() if timed else 0.0
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._on_exception(permit, exc, start)
                raise
            if plain:
                tally = permit.tally
                if tally is not None:
                    tally()
                    succeeded()
                    return result
            self._on_result(permit, result, start)
            return result

        return guarded

    # Context managers keep their permits on a per-context stack, so concurrent threads
    # and tasks (and nested blocks) each close the permit they opened.

    def __enter__(self) -> None:
        permit = self._fast
        if permit is None:
            retry_after = self._refuse_until - self._monotonic()
            if retry_after > 0:
                self._rejected()
                raise self._refusal(retry_after)
            permit = self._admit()
        start = self._monotonic() if self._timed else 0.0
        self._permits.set((*self._permits.get(), (permit, start)))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._permits.get()
        permit, start = stack[-1]
        self._permits.set(stack[:-1])
        if exc is None:
            self._on_result(permit, NO_RESULT, start)
        else:
            self._on_exception(permit, exc, start)

    async def __aenter__(self) -> None:
        permit = self._fast
        if permit is None:
            permit = await self._admit_async()
        start = self._monotonic() if self._timed else 0.0
        self._permits.set((*self._permits.get(), (permit, start)))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
