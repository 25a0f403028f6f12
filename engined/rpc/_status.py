"""Reading a finished attempt: what its status means to the breaker, and what its server asked.

Pure functions of a status code and metadata, shared by the sync and the grpc.aio stacks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import grpc

__all__ = [
    "NO_DEADLINE_ABOVE",
    "PREVIOUS_ATTEMPTS_KEY",
    "PUSHBACK_KEY",
    "STOP",
    "code_of",
    "effective_timeout",
    "pushback_delay",
]

PUSHBACK_KEY: Final = "grpc-retry-pushback-ms"
"""Trailing metadata in which a server tells when to retry, or not to (gRFC A6)."""

PREVIOUS_ATTEMPTS_KEY: Final = "grpc-previous-rpc-attempts"
"""Request metadata telling the server how many attempts came before this one (gRFC A6)."""

NO_DEADLINE_ABOVE: Final = 1e6
"""Seconds above which a timeout means "no deadline".

A server's ``context.time_remaining()`` is about 9.2e18 when its caller set no deadline
(grpc/grpc#9423); passed on as an outgoing ``timeout=`` it makes the call fail at once with
DEADLINE_EXCEEDED (grpc/grpc#26236). No real deadline is eleven days away.
"""

STOP: Final = -1.0
"""What :func:`pushback_delay` returns when the server asks for no retry at all."""

_INT32_MAX = 2**31 - 1


def effective_timeout(timeout: float | None, default: float | None) -> float | None:
    """The timeout a call runs under: the caller's, unless it means none, else ``default``."""
    if timeout is None or timeout > NO_DEADLINE_ABOVE:
        return default
    return timeout


def pushback_delay(trailing_metadata: Iterable[Any] | None) -> float | None:
    """Seconds the server asked the client to wait before retrying, from trailing metadata.

    gRFC A6: the value is a signed 32-bit integer of milliseconds; a negative or unparsable
    one asks the client not to retry. Two values disagree with each other, so they are
    unparsable too.

    Returns:
        ``None`` when the server sent no pushback; :data:`STOP` when it asked for no retry
        (negative, malformed or repeated); otherwise the delay in seconds, >= 0.
    """
    if not trailing_metadata:
        return None
    values = [value for key, value in trailing_metadata if key == PUSHBACK_KEY]
    if not values:
        return None
    if len(values) > 1:
        return STOP
    value = values[0]
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()) or text.startswith("-"):
        return STOP  # malformed or negative: both mean "do not retry"
    millis = int(digits)
    return millis / 1000.0 if millis <= _INT32_MAX else STOP


def code_of(outcome: Any) -> grpc.StatusCode | None:
    """The status code of a finished sync outcome, or ``None`` when nothing was answered.

    grpc turns an exception raised on the client side (a request serializer that raised,
    a bug in another interceptor) into an INTERNAL outcome whose ``exception()`` is that
    exception: no server answered it, so it is neither a failure nor a success.
    """
    code: grpc.StatusCode | None = outcome.code()
    if code is grpc.StatusCode.INTERNAL:
        cause = outcome.exception()
        if cause is not None and not isinstance(cause, grpc.RpcError):
            return None
    return code
