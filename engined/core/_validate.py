"""Argument checks shared by engined's constructors.

Each check names the parameter it refuses, so a wrong value in a config file or a
keyword argument says exactly what to fix. ``bool`` is refused where a number is
expected: ``failure_threshold=True`` is a mistake, not a 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "check_callable",
    "check_clock",
    "check_exception_types",
    "check_int",
    "check_matcher",
    "check_name",
    "check_positive",
    "check_rate",
]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_name(param: str, value: object) -> str:
    """Return ``value`` if it is a non-empty string."""
    if not isinstance(value, str):
        msg = f"{param} must be a str, got {type(value).__name__}"
        raise TypeError(msg)
    if not value.strip():
        msg = f"{param} must not be empty"
        raise ValueError(msg)
    return value


def check_int(param: str, value: object, *, minimum: int) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{param} must be an int, got {type(value).__name__}"
        raise TypeError(msg)
    if value < minimum:
        msg = f"{param} must be >= {minimum}, got {value}"
        raise ValueError(msg)
    return value


def check_positive(
    param: str, value: object, *, minimum: float = 0.0, inclusive: bool = False
) -> float:
    """Return ``value`` as a float if it is a finite number above ``minimum``.

    With ``inclusive`` the minimum itself is allowed.
    """
    if not _is_number(value):
        msg = f"{param} must be a number, got {type(value).__name__}"
        raise TypeError(msg)
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number < minimum or (number == minimum and not inclusive):
        bound = ">=" if inclusive else ">"
        msg = f"{param} must be a finite number {bound} {minimum:g}, got {value!r}"
        raise ValueError(msg)
    return number


def check_rate(param: str, value: object) -> float:
    """Return ``value`` if it is a ratio in (0, 1]; percentages are refused with a hint."""
    if not _is_number(value):
        msg = f"{param} must be a number in (0, 1], got {type(value).__name__}"
        raise TypeError(msg)
    number = float(value)  # type: ignore[arg-type]
    if not 0.0 < number <= 1.0:
        hint = f" (a ratio, not a percentage: use {number / 100:g})" if 1 < number <= 100 else ""
        msg = f"{param} must be in (0, 1], got {value!r}{hint}"
        raise ValueError(msg)
    return number


def check_exception_types(param: str, value: object) -> tuple[type[BaseException], ...]:
    """Return ``value`` as a tuple of exception classes; a single class is accepted too."""
    entries = (value,) if isinstance(value, type) else value
    if not isinstance(entries, tuple | list | frozenset | set):
        msg = f"{param} must be an exception class or a tuple of them, got {type(value).__name__}"
        raise TypeError(msg)
    for entry in entries:
        if not (isinstance(entry, type) and issubclass(entry, BaseException)):
            msg = f"{param} entries must be exception classes, got {entry!r}"
            raise TypeError(msg)
    return tuple(entries)


def check_callable(param: str, value: object) -> Callable[..., Any]:
    """Return ``value`` if it is callable."""
    if not callable(value):
        msg = f"{param} must be callable, got {type(value).__name__}"
        raise TypeError(msg)
    return value


def check_clock(param: str, value: object) -> Any:
    """Return ``value`` if it looks like a :class:`engined.Clock`.

    Checked at construction so that ``clock=None`` fails there, naming the parameter,
    rather than as an ``AttributeError`` on the first call that reads the time.
    """
    missing = [
        method
        for method in ("monotonic", "sleep", "sleep_async")
        if not callable(getattr(value, method, None))
    ]
    if missing or isinstance(value, type):  # a class has the methods, unbound
        got = f"the class {value.__name__}" if isinstance(value, type) else type(value).__name__
        msg = (
            f"{param} must be an engined.Clock instance (monotonic(), sleep(), "
            f"sleep_async()), got {got}"
        )
        raise TypeError(msg)
    return value


def check_matcher(param: str, value: object) -> Callable[[BaseException], bool]:
    """Return a predicate for ``on=``: an exception class, a tuple of them, or a predicate.

    Whatever it says, a ``BaseException`` that is not an ``Exception`` never matches:
    cancellation and interpreter exits are not failures to retry or to paper over.
    """
    if isinstance(value, type | tuple):
        types = check_exception_types(param, value)
        if not types:
            msg = f"{param} must name at least one exception class"
            raise ValueError(msg)
        return lambda exc: isinstance(exc, Exception) and isinstance(exc, types)
    if callable(value):
        predicate: Callable[[BaseException], object] = value
        return lambda exc: isinstance(exc, Exception) and bool(predicate(exc))
    msg = (
        f"{param} must be an exception class, a tuple of them or a predicate, "
        f"got {type(value).__name__}"
    )
    raise TypeError(msg)
