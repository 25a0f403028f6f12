"""Worker threads for sync checks and heals: the pool grows past stuck threads, up to a cap.

A thread running a sync check cannot be interrupted, so a hung check keeps its thread
until it returns. A fixed pool lets a few hung checks queue every other sync check behind
them, and time spent queued counts against those checks' timeouts: healthy components
then time out without ever running. So this pool never queues. A job goes to an idle
thread, or to a new one; when the job's :class:`Budget` (checks, or heals) already holds
its limit of threads, :meth:`WorkerPool.submit` refuses at once and the caller reports
it. Checks and heals have budgets of their own, so hung checks never starve heals and
hung heals never starve checks.

Threads are daemons: a hung check must not keep the process alive at exit. Idle threads
wait for their next job without any timeout (nothing here reads the time) and are kept
for reuse until :meth:`WorkerPool.close_idle`; a thread busy then ends after its job.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Budget", "WorkerPool"]

_log = logging.getLogger("engined.health")

# A job returns what to do once its thread is back in the pool (post its outcome), so a
# caller that reacts to that outcome at once finds the thread free again.
Work = Callable[[], Callable[[], None] | None]


class Budget:
    """How many threads one kind of work may hold at once, and how many it holds now.

    Args:
        limit: The most threads this kind of work may hold.
        parameter: The setting that fixes ``limit``, named in the log line when it is hit.
        what: The kind of work, for that log line ("sync check", "sync heal").
    """

    __slots__ = ("limit", "parameter", "running", "saturated", "what")

    def __init__(self, limit: int, *, parameter: str, what: str) -> None:
        self.limit = limit
        self.parameter = parameter
        self.what = what
        self.running = 0
        self.saturated = False  # told in the log since a thread last came free


class _Worker:
    __slots__ = ("generation", "inbox")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.inbox: queue.SimpleQueue[tuple[Work, Budget] | None] = queue.SimpleQueue()


class WorkerPool:
    """Daemon threads that run one job each at a time; no job ever waits in a queue.

    Args:
        prefix: Start of every thread's name.
    """

    __slots__ = ("_generation", "_idle", "_lock", "_prefix", "_serial", "_threads")

    def __init__(self, prefix: str = "engined-health") -> None:
        self._prefix = prefix
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the most recently used thread goes first
        self._threads = 0
        self._generation = 0
        self._serial = 0

    @property
    def threads(self) -> int:
        """Worker threads alive now, idle or busy."""
        return self._threads

    def submit(self, work: Work, budget: Budget) -> bool:
        """Run ``work()`` in a thread now; return False if ``budget`` holds no thread more.

        ``work`` must not raise: it reports its own outcome, best in the callable it
        returns, which runs after the thread is given back. A refusal is logged once at
        WARNING, naming the setting, until a thread of that budget comes free again.
        """
        with self._lock:
            if budget.running >= budget.limit:
                tell, budget.saturated = not budget.saturated, True
                worker = None
            else:
                tell = False
                budget.running += 1
                worker = self._idle.pop() if self._idle else None
                fresh = worker is None
                if worker is None:
                    worker = _Worker(self._generation)
                    self._threads += 1
                    self._serial += 1
                    name = f"{self._prefix}-{self._serial}"
        if worker is None:
            if tell:
                _log.warning(
                    "no worker thread for a %s: all %d allowed by %s are busy (hung?); "
                    "such runs get error 'no worker thread' until one of them returns",
                    budget.what,
                    budget.limit,
                    budget.parameter,
                )
            return False
        worker.inbox.put((work, budget))
        if fresh:
            thread = threading.Thread(target=self._serve, args=(worker,), name=name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the system has no thread left to give
                with self._lock:
                    self._threads -= 1
                    budget.running -= 1
                _log.warning("no worker thread for a %s: the system refused a thread", budget.what)
                return False
        return True

    def close_idle(self) -> None:
        """End the idle threads now and every busy one once its job returns."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
            self._threads -= len(idle)
        for worker in idle:
            worker.inbox.put(None)

    def _serve(self, worker: _Worker) -> None:
        while True:
            job = worker.inbox.get()
            if job is None:
                return
            work, budget = job
            after = None
            try:
                after = work()
            except BaseException:  # work reports its own outcome; this is a bug of ours
                _log.exception("health worker job failed")
            stays = self._done(worker, budget)
            if after is not None:
                after()
            if not stays:
                return

    def _done(self, worker: _Worker, budget: Budget) -> bool:
        """Give the thread back; return whether it stays for another job."""
        with self._lock:
            budget.running -= 1
            budget.saturated = False
            if worker.generation != self._generation:
                self._threads -= 1
                return False
            self._idle.append(worker)
            return True
