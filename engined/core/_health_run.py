"""Running one check or one heal: timeouts, worker threads, and turning anything into a result.

A check may be sync (run in a bounded worker pool, since a thread cannot be interrupted)
or async (run as a task). Either way the caller waits at most ``timeout`` seconds on the
event loop's timer; a check that overruns is cancelled if it can be, but never awaited, so
one that swallows cancellation cannot hang the manager. It stays registered as in flight
and the next tick records it as stuck instead of starting a second copy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable
from typing import Any

from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = [
    "Busy",
    "CheckFn",
    "HealFn",
    "Runner",
    "failed",
    "is_async",
    "normalize",
    "raised_by_callee",
]

MAX_MESSAGE = 256  # characters of a check's message kept in its result

CheckFn = Callable[[], Any]
HealFn = Callable[[HealthCheckResult], Any]


class Runner:
    """Runs checks and heals within a time limit, sync ones in a bounded thread pool."""

    __slots__ = ("_pool",)

    def __init__(self, max_threads: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="engined-health"
        )

    def launch(
        self, fn: Callable[..., Any], args: tuple[Any, ...], limit: float, busy: Busy
    ) -> asyncio.Future[tuple[bool, Any]]:
        """Start ``fn(*args)``; return a future of ``(finished, value)`` or of its exception.

        The future resolves when ``fn`` ends or, with ``(False, None)``, after ``limit``
        seconds; then ``fn`` is cancelled if it can be (a task, or a job still queued)
        but never waited for. ``busy`` stays set while ``fn`` really runs, which can
        outlast the limit: callers never start ``fn`` again meanwhile. Cancelling the
        returned future cancels ``fn`` the same way.
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        busy.set()
        work: asyncio.Future[Any] | concurrent.futures.Future[Any]
        if is_async(fn):
            task = asyncio.ensure_future(fn(*args))
            task.add_done_callback(lambda _: busy.clear())
            task.add_done_callback(lambda done: _settle(outcome, done))
            work = task
        else:
            job = self._pool.submit(fn, *args)
            job.add_done_callback(lambda _: busy.clear())
            job.add_done_callback(
                lambda done: loop.call_soon_threadsafe(_settle_job, outcome, done)
            )
            work = job
        timer = loop.call_later(limit, _expire, outcome)

        def stop_waiting(_: object) -> None:
            timer.cancel()
            work.cancel()  # a no-op once it ended; a running thread cannot be stopped

        outcome.add_done_callback(stop_waiting)
        return outcome

    async def run(
        self, fn: Callable[..., Any], args: tuple[Any, ...], limit: float, busy: Busy
    ) -> tuple[bool, Any]:
        """Await :meth:`launch`: ``(finished, value)``, or ``fn``'s own exception."""
        return await self.launch(fn, args, limit, busy)

    def shutdown(self) -> None:
        """Stop taking work; queued jobs are dropped, running threads are left to finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _expire(outcome: asyncio.Future[tuple[bool, Any]]) -> None:
    if not outcome.done():
        outcome.set_result((False, None))


def _settle(outcome: asyncio.Future[tuple[bool, Any]], done: asyncio.Future[Any]) -> None:
    if outcome.done():
        return  # expired or cancelled first
    if done.cancelled():
        outcome.set_exception(asyncio.CancelledError())  # the callee cancelled itself
    elif (error := done.exception()) is not None:
        outcome.set_exception(error)
    else:
        _deliver(outcome, done.result())


def _settle_job(
    outcome: asyncio.Future[tuple[bool, Any]], done: concurrent.futures.Future[Any]
) -> None:
    if outcome.done() or done.cancelled():
        return  # expired (a queued job is then cancelled) or cancelled first
    if (error := done.exception()) is not None:
        outcome.set_exception(error)
    else:
        _deliver(outcome, done.result())


def _deliver(outcome: asyncio.Future[tuple[bool, Any]], value: object) -> None:
    if inspect.isawaitable(value):  # a sync-looking callable that returned a coroutine
        chained = asyncio.ensure_future(value)
        chained.add_done_callback(lambda again: _settle(outcome, again))
        outcome.add_done_callback(lambda _: chained.cancel())
        return
    outcome.set_result((True, value))


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine: an ``async def``, or an object with one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  # the method itself, not callable()
    )


def raised_by_callee(exc: BaseException) -> bool:
    """Whether a ``CancelledError`` came from the callee rather than from cancelling us."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and (task is None or not task.cancelling())


class Busy:
    """Whether a check or heal of one component is really still running."""

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = False

    def set(self) -> None:
        """Mark it running."""
        self.running = True

    def clear(self) -> None:
        """Mark it ended; called from the worker thread for sync callables."""
        self.running = False


def normalize(
    raw: object,
    *,
    name: str,
    component_type: ComponentType,
    duration: float,
    timestamp: float,
    degraded_latency: float | None,
) -> HealthCheckResult:
    """Turn what a check returned into a result for ``name``.

    A ``HealthCheckResult`` keeps its status, message (cut to ``MAX_MESSAGE`` characters)
    and details; a ``HealthStatus`` or a bool becomes a result; anything else is UNHEALTHY
    with ``error`` naming the type. A passing check slower than ``degraded_latency`` is
    DEGRADED.
    """
    if isinstance(raw, HealthCheckResult):
        status, message, details, error = raw.status, raw.message, raw.details, raw.error
    elif isinstance(raw, HealthStatus):
        status, message, details, error = raw, "", {}, None
    elif isinstance(raw, bool):
        status = HealthStatus.HEALTHY if raw else HealthStatus.UNHEALTHY
        message, details, error = "", {}, None
    else:
        status, message, details = HealthStatus.UNHEALTHY, "check returned no verdict", {}
        error = f"invalid result ({type(raw).__name__})"
    if len(message) > MAX_MESSAGE:  # public output carries short messages only (§9)
        message = message[: MAX_MESSAGE - 1] + "…"
    if (
        status is HealthStatus.HEALTHY
        and degraded_latency is not None
        and duration > degraded_latency
    ):
        status = HealthStatus.DEGRADED
        message = message or f"slower than {degraded_latency:g}s"
    # Every field here is already typed and checked (a check's own result was validated
    # when it was made), so skip validation: this runs for every check of every component.
    return HealthCheckResult.model_construct(
        component=name,
        component_type=component_type,
        status=status,
        message=message,
        details=details,
        duration=max(duration, 0.0),
        timestamp=timestamp,
        error=error,
    )


def failed(
    name: str, component_type: ComponentType, error: str, *, duration: float, timestamp: float
) -> HealthCheckResult:
    """An UNHEALTHY result carrying only ``error`` (a type name, "timeout" or "stuck")."""
    return HealthCheckResult.model_construct(
        component=name,
        component_type=component_type,
        status=HealthStatus.UNHEALTHY,
        message="",
        details={},
        duration=max(duration, 0.0),
        timestamp=timestamp,
        error=error,
    )
