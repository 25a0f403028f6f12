"""Running one check or one heal: a time limit from its start, and an outcome, never a raise.

A check may be sync (run in a worker thread, since a thread cannot be interrupted) or
async (run as a task). Either way the caller waits at most ``limit`` seconds on the event
loop's timer, counted from the moment the callable starts running; one that overruns is
cancelled if it can be, but never awaited, so one that swallows cancellation cannot hang
the manager. It stays marked busy and the next tick records it as stuck instead of
starting a second copy.

Whatever a callable does ends as an :class:`Outcome` value, never as an exception set on
an asyncio future: asyncio re-raises ``SystemExit`` out of the event loop from a task, and
an exception nobody retrieves is dropped with a log line. So any ``BaseException`` a check
or heal raises (``SystemExit``, a custom subclass, its own ``CancelledError``) is caught
where it is raised and recorded by type name. Only two things propagate: cancelling the
caller (the manager's own cancellation) and ``KeyboardInterrupt``, which is re-raised on
the event loop as a Ctrl-C there would be.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from engined.core._health_model import HealthCheckResult
from engined.core._health_threads import Budget, WorkerPool

__all__ = ["NO_THREAD", "Busy", "CheckFn", "HealFn", "Outcome", "Runner", "is_async"]

CheckFn = Callable[[], Any]
HealFn = Callable[[HealthCheckResult], Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of a check or heal ended.

    Attributes:
        kind: ``"value"`` (it returned), ``"raised"`` (any BaseException but the two that
            propagate), ``"timeout"`` (the limit passed first) or ``"no_thread"`` (a sync
            callable found no worker thread and never started).
        value: The returned value, or for ``"raised"`` the exception's type name.
    """

    kind: Literal["value", "raised", "timeout", "no_thread"]
    value: object = None


TIMEOUT = Outcome("timeout")
NO_THREAD = Outcome("no_thread")


class Busy:
    """Whether a check or heal of one component really still runs (threads outlive limits).

    A task's run ends with its task; a task whose loop was closed under it never ends, so
    it counts as ended too: a manager driven by successive loops must not see it as stuck.
    """

    __slots__ = ("_loop", "_running")

    def __init__(self) -> None:
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        """Whether the callable is still running."""
        return self._running and not (self._loop is not None and self._loop.is_closed())

    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Mark it running, as a task of ``loop`` or (None) in a worker thread."""
        self._loop = loop
        self._running = True

    def clear(self, *_: object) -> None:
        """Mark it ended; called from the worker thread for sync callables."""
        self._running = False


class Runner:
    """Runs checks and heals within a time limit, sync ones in the worker pool.

    Args:
        pool: The threads sync callables run in.
    """

    __slots__ = ("_pool",)

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool

    def launch(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        limit: float,
        busy: Busy,
        budget: Budget,
    ) -> asyncio.Future[Outcome]:
        """Start ``fn(*args)``; return a future of its :class:`Outcome`, which never fails.

        The future resolves when ``fn`` ends, or with a timeout ``limit`` seconds after
        ``fn`` started; then ``fn`` is cancelled if it can be (a task) but never waited
        for. ``busy`` stays set while ``fn`` really runs. Cancelling the future cancels
        ``fn`` the same way; a sync ``fn`` not yet started then never starts.
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Outcome] = loop.create_future()
        if is_async(fn):
            busy.start(loop)
            _run_task(loop, outcome, lambda: fn(*args), limit, busy)
            return outcome
        job = _Job(loop, outcome, fn, args, limit, busy)
        busy.start(None)
        if not self._pool.submit(job.run, budget):
            busy.clear()
            outcome.set_result(NO_THREAD)
            return outcome
        outcome.add_done_callback(job.stop_waiting)
        return outcome

    def close_idle(self) -> None:
        """Let idle threads go; busy ones end after their current job."""
        self._pool.close_idle()


def _run_task(
    loop: asyncio.AbstractEventLoop,
    outcome: asyncio.Future[Outcome],
    start: Callable[[], object],
    limit: float,
    busy: Busy | None,
) -> None:
    """Run ``start()`` and await what it returns in a task; settle ``outcome`` from it."""
    task = loop.create_task(_guarded(start))
    if busy is not None:
        task.add_done_callback(busy.clear)
    task.add_done_callback(lambda done: _settle(outcome, done))
    timer = loop.call_later(limit, _expire, outcome)

    def stop_waiting(_: object) -> None:
        timer.cancel()
        task.cancel()  # a no-op once it ended

    outcome.add_done_callback(stop_waiting)


async def _guarded(start: Callable[[], object]) -> Outcome:
    """Call ``start`` and await its value; any BaseException but ours becomes an Outcome."""
    try:
        value = start()
        while inspect.isawaitable(value):  # an awaitable of an awaitable is awaited too
            value = await value
    except (KeyboardInterrupt, GeneratorExit):
        raise  # Ctrl-C; or the coroutine is being closed and must not return
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the limit passed, or the caller was cancelled
        return Outcome("raised", "CancelledError")  # the callable cancelled itself
    except BaseException as exc:  # SystemExit, custom subclasses: recorded
        return Outcome("raised", type(exc).__name__)
    return Outcome("value", value)


def _settle(outcome: asyncio.Future[Outcome], done: asyncio.Future[Outcome]) -> None:
    if outcome.done():
        return  # expired or cancelled first
    if done.cancelled():  # cancelled by someone else (a loop shutting down)
        outcome.set_result(Outcome("raised", "CancelledError"))
    elif (error := done.exception()) is None:
        outcome.set_result(done.result())
    elif not isinstance(error, KeyboardInterrupt):  # that one is on its way out of the loop
        outcome.set_result(Outcome("raised", type(error).__name__))  # a GeneratorExit raised


def _expire(outcome: asyncio.Future[Outcome]) -> None:
    if not outcome.done():
        outcome.set_result(TIMEOUT)


class _Job:
    """One sync callable handed to a worker thread, and the way back to its loop."""

    __slots__ = ("abandoned", "args", "busy", "fn", "limit", "loop", "outcome", "timer")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        outcome: asyncio.Future[Outcome],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        limit: float,
        busy: Busy,
    ) -> None:
        self.loop = loop
        self.outcome = outcome
        self.fn = fn
        self.args = args
        self.limit = limit
        self.busy = busy
        self.timer: asyncio.TimerHandle | None = None
        self.abandoned = False

    def run(self) -> Callable[[], None] | None:
        """In the worker thread: arm the limit, call ``fn``; return how to post the outcome."""
        if self.abandoned:  # nobody waits any more (stopped or cancelled before it started)
            self.busy.clear()
            return None
        try:
            self.loop.call_soon_threadsafe(self._arm)  # the limit counts from now
        except RuntimeError:  # its loop is closed: nobody is left to record it
            self.busy.clear()
            return None
        result: Outcome | KeyboardInterrupt
        try:
            result = Outcome("value", self.fn(*self.args))
        except KeyboardInterrupt as exc:
            result = exc
        except BaseException as exc:
            result = Outcome("raised", type(exc).__name__)
        finally:
            self.busy.clear()
        return lambda: self._post(result)

    def _post(self, result: Outcome | KeyboardInterrupt) -> None:
        try:
            self.loop.call_soon_threadsafe(self._finish, result)
        except RuntimeError:  # the loop closed while it ran: it ends quietly
            return

    def _arm(self) -> None:
        if not self.outcome.done():
            self.timer = self.loop.call_later(self.limit, _expire, self.outcome)

    def _finish(self, result: Outcome | KeyboardInterrupt) -> None:
        if isinstance(result, KeyboardInterrupt):
            raise result  # out of the event loop, as a Ctrl-C in it would
        if self.outcome.done():
            return  # expired or cancelled first
        if result.kind == "value" and inspect.isawaitable(result.value):
            awaitable = result.value  # a sync-looking callable that returned a coroutine
            _run_task(self.loop, self.outcome, lambda: awaitable, self.limit, None)
            return
        self.outcome.set_result(result)

    def stop_waiting(self, _: object) -> None:
        """The outcome is settled: stop the timer; a job not yet started never starts."""
        self.abandoned = True
        if self.timer is not None:
            self.timer.cancel()


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine: an ``async def``, or an object with one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  # the method itself, not callable()
    )
