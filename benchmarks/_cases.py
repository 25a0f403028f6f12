"""The single-thread cases: what is called, how its breaker is set up, and how it is measured.

Each measurement guards the case's function with a *fresh* breaker, decorated once, outside the
timed loop. An async case runs its warm-up and its timed loop in one coroutine under its own
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from _libraries import NEVER, Library
from _timing import Catch, retained_async, retained_sync, run_async, run_sync


class Boom(Exception):
    """What every failing call raises."""


def ok() -> int:
    return 1


def fail() -> None:
    raise Boom


async def aok() -> int:
    return 1


async def afail() -> None:
    raise Boom


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    label: str
    is_async: bool
    outcome: str  # "success", "failure" or "reject"


CASES = (
    Case("sync_success", "sync success", False, "success"),
    Case("sync_failure", "sync failure (recorded, stays closed)", False, "failure"),
    Case("sync_open_reject", "sync open-reject", False, "reject"),
    Case("async_success", "async success", True, "success"),
    Case("async_open_reject", "async open-reject", True, "reject"),
)


@dataclass(frozen=True, slots=True)
class Subject:
    """A guarded function, decorated once, and what each of its calls is expected to raise."""

    name: str
    fn: Callable[[], Any]
    catch: Catch
    trip: bool  # fail once, then check it rejects, before any measured call


def subject(lib: Library, case: Case) -> Subject | None:
    """Guard the case's function with a fresh breaker of ``lib``; None if ``lib`` lacks the case."""
    decorate = lib.aio if case.is_async else lib.sync
    if decorate is None or (case.outcome == "reject" and not lib.rejects):
        return None
    good, bad = (aok, afail) if case.is_async else (ok, fail)
    if case.outcome == "success":
        return Subject(lib.name, decorate(good, NEVER), None, trip=False)
    if case.outcome == "failure":
        return Subject(lib.name, decorate(bad, NEVER), Boom, trip=False)
    return Subject(lib.name, decorate(bad, 1), lib.open_error, trip=True)


def _check_rejected(sub: Subject, error: Exception | None) -> None:
    if error is None or not isinstance(error, sub.catch or ()):
        raise RuntimeError(f"{sub.name}: the breaker did not reject after it was tripped")


def trip(sub: Subject) -> None:
    """Open the breaker with one failure, then check that the next call is rejected."""
    with suppress(Exception):
        sub.fn()  # the failure that opens it (some libraries raise their open error here)
    try:
        sub.fn()
    except Exception as exc:
        _check_rejected(sub, exc)
    else:
        _check_rejected(sub, None)


async def atrip(sub: Subject) -> None:
    """:func:`trip` for a coroutine function."""
    with suppress(Exception):
        await sub.fn()
    try:
        await sub.fn()
    except Exception as exc:
        _check_rejected(sub, exc)
    else:
        _check_rejected(sub, None)


def time_case(sub: Subject, is_async: bool, calls: int, warmup: int) -> float:
    """Nanoseconds per call, after a warm-up; an async case gets its own event loop."""
    if is_async:
        return asyncio.run(_time_async(sub, calls, warmup)) / calls
    if sub.trip:
        trip(sub)
    run_sync(sub.fn, warmup, sub.catch)
    return run_sync(sub.fn, calls, sub.catch) / calls


async def _time_async(sub: Subject, calls: int, warmup: int) -> int:
    if sub.trip:
        await atrip(sub)
    await run_async(sub.fn, warmup, sub.catch)
    return await run_async(sub.fn, calls, sub.catch)


def retained_case(sub: Subject, is_async: bool, calls: int, warmup: int) -> float:
    """Bytes per call still allocated after ``calls`` calls (see :func:`_timing.retained_sync`)."""
    if is_async:
        return asyncio.run(_retained_async(sub, calls, warmup))
    if sub.trip:
        trip(sub)
    return retained_sync(sub.fn, calls, sub.catch, warmup)


async def _retained_async(sub: Subject, calls: int, warmup: int) -> float:
    if sub.trip:
        await atrip(sub)
    return await retained_async(sub.fn, calls, sub.catch, warmup)
