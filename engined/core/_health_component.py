"""What the manager holds for one component: its callables, its state, and what runs now.

A type of its own so that the scheduler, the heal coordinator and the manager can each
name it without importing one another. It holds no logic: thresholds and heal bookkeeping
live in :class:`~engined.core._health_state.ComponentState`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from engined.core._health_run import Busy, CheckFn, HealFn
from engined.core._health_state import ComponentState

__all__ = ["Component", "alive", "cancel"]


@dataclass(eq=False)
class Component:
    """One registered component.

    Attributes:
        check: The check callable.
        state: Thresholds and heal bookkeeping.
        heal: The heal callable, if any.
        next_at: When its next scheduled check is due (manager clock).
        due_at: When the current round's check was due (tick lag = start - due_at).
        checking: Whether its check really still runs (a thread outlives its timeout).
        heal_busy: The same for its heal.
        tick: The current round's scheduled check (a task, or an outcome future).
        healing: The task of the heal run in progress; None when none is. A heal run
            changes the state only while it is still this task, so a run that outlives
            ``stop()`` cannot undo what ``stop()`` settled.
        exhaustion_told: The heal_exhausted event went out for this exhaustion.
    """

    check: CheckFn
    state: ComponentState
    heal: HealFn | None
    next_at: float = 0.0
    due_at: float = 0.0
    checking: Busy = field(default_factory=Busy)
    heal_busy: Busy = field(default_factory=Busy)
    tick: asyncio.Future[Any] | None = None
    healing: asyncio.Future[None] | None = None
    exhaustion_told: bool = False

    @property
    def name(self) -> str:
        """The component's name."""
        return self.state.name


def alive(future: asyncio.Future[Any] | None) -> bool:
    """Whether ``future`` can still end: pending, on a loop that is not closed.

    A task of a loop closed under it never ends; the manager must not wait on it nor
    take it for a heal still running.
    """
    return future is not None and not future.done() and not future.get_loop().is_closed()


def cancel(future: asyncio.Future[Any] | None) -> bool:
    """Cancel ``future`` from any thread or loop; return whether the caller may await it."""
    if future is None or not alive(future):
        return False
    loop = future.get_loop()
    try:
        here = asyncio.get_running_loop() is loop
    except RuntimeError:
        here = False
    if here:
        future.cancel()
        return True
    with contextlib.suppress(RuntimeError):  # closed meanwhile
        loop.call_soon_threadsafe(future.cancel)
    return False
