"""How a circuit breaker classifies a call that raised, and how it compares configurations.

``record_exceptions`` and ``ignore_exceptions`` are exception classes or predicates; a
predicate lets a service carve a subclass out of a recorded base (``LookupError`` out of
``Exception``) without listing every other class. The classifier built here is ``None``
for the default configuration, so the usual failure path spends no call on it.

Configurations are compared by effect (``registry.get_or_create``): numbers by value,
exception classes as a set, and functions by what they would do: two functions made by
the same ``def`` or ``lambda`` with equal defaults and equal captured values are the
same predicate, so a factory that builds the same decorator twice gets the same breaker.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

from engined.core import _validate as check

__all__ = [
    "FAILURE",
    "IGNORED",
    "SUCCESS",
    "Matcher",
    "callable_key",
    "exception_classifier",
    "matcher_key",
]

_log = logging.getLogger("engined.circuit_breaker")

SUCCESS, FAILURE, IGNORED = 0, 1, 2  # outcomes of a finished call, as a breaker counts them

Matcher = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
"""What ``record_exceptions`` and ``ignore_exceptions`` accept."""


def _as_matcher(param: str, value: object) -> tuple[type[BaseException], ...] | Callable[..., Any]:
    """Validate ``value``: a tuple of exception classes, or a predicate."""
    if isinstance(value, type | tuple | list | frozenset | set):
        return check.check_exception_types(param, value)
    if callable(value):
        return value
    msg = (
        f"{param} must be an exception class, a tuple of them or a predicate, "
        f"got {type(value).__name__}"
    )
    raise TypeError(msg)


def _matches(
    matcher: tuple[type[BaseException], ...] | Callable[..., Any],
    exc: Exception,
    param: str,
    name: str,
    *,
    on_error: bool,
) -> bool:
    if isinstance(matcher, tuple):
        return isinstance(exc, matcher)
    try:
        return bool(matcher(exc))
    except Exception:
        _log.exception("%s of circuit breaker %r failed on %r", param, name, type(exc))
        return on_error


def exception_classifier(
    name: str, record: object, ignore: object
) -> tuple[Callable[[Exception], int] | None, Any, Any]:
    """Validate the two matchers and build the classifier of raised ``Exception``s.

    Returns:
        ``(classify, record, ignore)``: ``classify(exc)`` gives SUCCESS, FAILURE or
        IGNORED, or is ``None`` when every ``Exception`` is a failure (the default); the
        other two are the validated matchers, kept for comparing configurations.
        A predicate that raises is logged; the call then counts as recorded (a failure)
        and as not ignored, which is what the default classes would say.
    """
    recorded = _as_matcher("record_exceptions", record)
    ignored = _as_matcher("ignore_exceptions", ignore)
    if (
        ignored == ()
        and isinstance(recorded, tuple)
        and any(issubclass(Exception, kind) for kind in recorded)
    ):
        return None, recorded, ignored

    def classify(exc: Exception) -> int:
        if ignored != () and _matches(ignored, exc, "ignore_exceptions", name, on_error=False):
            return IGNORED
        if _matches(recorded, exc, "record_exceptions", name, on_error=True):
            return FAILURE
        return SUCCESS

    return classify, recorded, ignored


_EMPTY = object()  # stands in for a closure cell that holds nothing yet


def callable_key(fn: object) -> object:
    """What makes two callables the same predicate: see the module docstring."""
    if not isinstance(fn, types.FunctionType):
        return fn  # bound methods compare by their object and function; others by identity
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(_EMPTY)
    kwdefaults = tuple(sorted((fn.__kwdefaults__ or {}).items()))
    return (fn.__code__, fn.__defaults__, kwdefaults, tuple(cells))


def matcher_key(matcher: object) -> object:
    """A matcher's effect: classes as a set (their order does not matter), or the predicate."""
    if isinstance(matcher, tuple):
        return frozenset(matcher)
    return callable_key(matcher)
