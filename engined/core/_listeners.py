"""Listeners that hear events without ever being able to hurt whoever raised them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from engined.core import _validate as check

__all__ = ["Listeners"]

E = TypeVar("E")

_log = logging.getLogger("engined")


class Listeners(Generic[E]):
    """A copy-on-write list of callbacks; ``emit`` logs and swallows their exceptions.

    Emitting reads one tuple and takes no lock, so it is safe from any thread while
    listeners are added or removed. Call it after releasing your own lock.

    Args:
        owner: Names the emitter in the log line of a failing listener.
    """

    __slots__ = ("_listeners", "_lock", "_owner")

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._listeners: tuple[Callable[[E], object], ...] = ()

    def add(self, listener: Callable[[E], object]) -> None:
        """Call ``listener(event)`` on every event from now on."""
        check.check_callable("listener", listener)
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove(self, listener: Callable[[E], object]) -> None:
        """Stop calling ``listener``; an unknown listener is ignored."""
        with self._lock:
            self._listeners = tuple(fn for fn in self._listeners if fn != listener)

    def emit(self, event: E) -> None:
        """Call every listener with ``event``; one that raises is logged, never propagated.

        That holds for any ``BaseException`` (a listener that calls ``sys.exit()`` must not
        end the caller's call, or the health manager's loop), except ``KeyboardInterrupt``,
        which is the user's to deliver.
        """
        for listener in self._listeners:
            try:
                listener(event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                _log.exception("listener %r of %s failed on %r", listener, self._owner, event)
