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

__all__ = ["CheckFn", "HealFn", "Runner", "failed", "normalize"]

CheckFn = Callable[[], Any]
HealFn = Callable[[HealthCheckResult], Any]


class Runner:
    """Starts sync callables in a bounded thread pool and async ones as tasks."""

    __slots__ = ("_pool",)

    def __init__(self, max_threads: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="engined-health"
        )

    def start(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Start ``fn(*args)``: a coroutine function as a task, anything else in a thread."""
        running: asyncio.Future[Any]
        if inspect.iscoroutinefunction(fn):
            running = asyncio.ensure_future(fn(*args))
        else:
            running = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        return running

    async def wait(self, future: asyncio.Future[Any], limit: float) -> tuple[bool, Any]:
        """Wait up to ``limit`` seconds; return ``(finished, result)``; re-raise its exception.

        On a timeout the work is cancelled if it can be (a task, or a job still queued for a
        thread) but not awaited.
        """
        done, _ = await asyncio.wait({future}, timeout=limit)
        if not done:
            future.cancel()
            return False, None
        return True, future.result()

    def shutdown(self) -> None:
        """Stop taking work; queued jobs are dropped, running threads are left to finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)


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

    A ``HealthCheckResult`` keeps its status, message and details; a ``HealthStatus`` or a
    bool becomes a result; anything else is UNHEALTHY with ``error`` naming the type. A
    passing check slower than ``degraded_latency`` is DEGRADED.
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
    if (
        status is HealthStatus.HEALTHY
        and degraded_latency is not None
        and duration > degraded_latency
    ):
        status = HealthStatus.DEGRADED
        message = message or f"slower than {degraded_latency:g}s"
    return HealthCheckResult(
        name,
        component_type,
        status,
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
    return HealthCheckResult(
        name,
        component_type,
        HealthStatus.UNHEALTHY,
        duration=max(duration, 0.0),
        timestamp=timestamp,
        error=error,
    )
