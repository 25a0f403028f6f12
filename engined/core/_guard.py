"""Every way of calling through a guard: decorator, ``call`` and ``call_async``.

A guard (the circuit breaker, the bulkhead) only says how to admit a call and how to
record its end. This module turns that into the calling conventions, once, so they
cannot drift apart. The contract a guard fulfils:

- ``_admit()`` returns a permit or raises, and ``_admit_async()`` is its asyncio form (by
  default the same, for guards that never wait); ``_fast`` is a permit that may be used
  without admission (the breaker's CLOSED phase), or ``None``;
- while ``_monotonic()`` is below ``_refuse_until`` (``-inf``: never; ``inf``: until told
  otherwise) every call is refused at once: ``_rejected()`` counts it (an
  :class:`~engined.core._counter.AtomicCounter`, no lock) and ``_refusal(retry_after)``
  is raised;
- ``_on_result(permit, result, start)`` and ``_on_exception(permit, exc, start)`` record
  the end of an admitted call and give the permit back; ``_give_back(permit)`` gives it
  back without recording anything (the call never really ran);
- ``_timed`` says whether ``start`` must be read from ``_monotonic`` before the call;
- when ``_plain`` is true, a call that returned on a permit with a ``tally`` is recorded
  by calling ``permit.tally()`` and ``_succeeded()``, two atomic C calls and no lock;
  when ``_plain_failures`` is true too, an ``Exception`` raised on a permit with ``fails``
  is always a failure, recorded by ``_fail_plain(permit)`` without the lock.

Which path a decorated callable takes is decided once, at decoration, by
:func:`~engined.core._callables.is_async_callable`; generator functions are refused. A
sync path whose callable returns an awaitable anyway (a lambda around a coroutine
function) refuses it loudly instead of counting a success that never happened.

The lock-free success and the refusal are the hot paths of a guarded call (the second
is every call while a dependency is down), so they are written out in each calling
convention below rather than behind one more Python call: routing them through a
helper costs a fifth of the breaker's budget on success, and an extra traceback entry
per refusal. Keeping the lock off the success path also keeps threads from queueing
behind one that the interpreter switched out while it held the lock.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import Any, ParamSpec, TypeVar, cast, overload

from engined.core._callables import (
    PLAIN_RESULTS,
    is_async_callable,
    refuse_awaitable,
    refuse_unguardable,
    returns_awaitable,
)

__all__ = ["NO_RESULT", "Guard"]

P = ParamSpec("P")
T = TypeVar("T")

NO_RESULT: Any = object()
"""Passed to ``_on_result`` when a block ends: there is no return value to judge."""


def _uncounted() -> int:
    """Stands in for a counter that a guard does not keep."""
    return 0


class Guard:
    """Base of the guards: the calling conventions over ``_admit`` and ``_on_*``."""

    __slots__ = ("_rejected", "_succeeded", "_what")

    _fast: Any
    _timed: bool
    _plain: bool
    _plain_failures: bool
    _refuse_until: float
    _refusal: Callable[[float], Exception]
    _monotonic: Callable[[], float]

    def __init__(self, what: str) -> None:
        self._what = what  # names the guard in errors: "circuit breaker 'db'"
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

    def _give_back(self, permit: Any) -> None:
        raise NotImplementedError

    def _fail_plain(self, permit: Any) -> None:
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
            if self._plain_failures and permit.fails is not None and isinstance(exc, Exception):
                self._fail_plain(permit)
            else:
                self._on_exception(permit, exc, start)
            raise
        if type(result) not in PLAIN_RESULTS and returns_awaitable(result):
            self._give_back(permit)
            refuse_awaitable(fn, result, self._what)
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
        """Call ``fn(*args, **kwargs)`` through the guard, await what it returns if awaitable.

        Any callable goes: an ``async def``, an object with an async ``__call__``, a gRPC
        stub method, or a lambda around a coroutine function (a plain value is returned).
        """
        permit = self._fast
        if permit is None:
            retry_after = self._refuse_until - self._monotonic()
            if retry_after > 0:
                self._rejected()
                raise self._refusal(retry_after)
            permit = await self._admit_async()
        start = self._monotonic() if self._timed else 0.0
        try:
            result: Any = fn(*args, **kwargs)
            kind = type(result)
            if kind is CoroutineType or (kind not in PLAIN_RESULTS and returns_awaitable(result)):
                result = await result
        except BaseException as exc:
            if self._plain_failures and permit.fails is not None and isinstance(exc, Exception):
                self._fail_plain(permit)
            else:
                self._on_exception(permit, exc, start)
            raise
        if self._plain:
            tally = permit.tally
            if tally is not None:
                tally()
                self._succeeded()
                return cast(T, result)
        self._on_result(permit, result, start)
        return cast(T, result)

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]], /
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any], /) -> Callable[P, Any]:
        """Decorate a sync or async callable so every call goes through the guard.

        Raises:
            TypeError: ``fn`` is not callable, or is a generator function (or a streaming
                gRPC stub), whose work happens after the call returns.
        """
        if not callable(fn):
            msg = f"a guard decorates a callable, got {type(fn).__name__}"
            raise TypeError(msg)
        refuse_unguardable(fn, f"{self._what} (a decorator)")
        if is_async_callable(fn):
            return self._wrap_async(fn)
        return self._wrap_sync(fn)

    def _wrap_sync(self, fn: Callable[P, T]) -> Callable[P, T]:
        monotonic, succeeded = self._monotonic, self._succeeded
        rejected = self._rejected
        timed, plain, plain_failures = self._timed, self._plain, self._plain_failures

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
                if plain_failures and permit.fails is not None and isinstance(exc, Exception):
                    self._fail_plain(permit)
                else:
                    self._on_exception(permit, exc, start)
                raise
            if type(result) not in PLAIN_RESULTS and returns_awaitable(result):
                self._give_back(permit)
                refuse_awaitable(fn, result, self._what)
            if plain:
                tally = permit.tally
                if tally is not None:
                    tally()
                    succeeded()
                    return result
            self._on_result(permit, result, start)
            return result

        return guarded

    def _wrap_async(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        monotonic, succeeded = self._monotonic, self._succeeded
        rejected = self._rejected
        timed, plain, plain_failures = self._timed, self._plain, self._plain_failures

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
                if plain_failures and permit.fails is not None and isinstance(exc, Exception):
                    self._fail_plain(permit)
                else:
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
