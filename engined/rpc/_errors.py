"""What a call refused by an open breaker fails with: a breaker error that is also a gRPC error.

Code written for gRPC catches ``grpc.RpcError`` and reads ``code()``; code written for
engined catches ``engined.CircuitBreakerOpenError``. A refused call must satisfy both, so
each stack gets one class that is both:

* sync: :class:`BreakerOpenRpcError` is ``grpc.RpcError`` + ``grpc.Call`` + ``grpc.Future``.
  The interceptor *returns* it, as grpc's own continuations return their errors
  (grpc/grpc#25207): ``__call__`` and ``with_call`` raise it from ``result()``, ``future()``
  hands it over as a finished future, and a response stream raises it when iterated. An
  exception *raised* in a sync interceptor would reach ``future()`` callers as INTERNAL.
* aio: :class:`AioBreakerOpenRpcError` is a ``grpc.aio.AioRpcError``, raised from the
  interceptor; grpc.aio passes an ``AioRpcError`` through untouched, with its code, details
  and trailing metadata, where any other exception would leak raw.

Both carry code UNAVAILABLE, details naming the breaker, and trailing metadata
``engined-breaker: open`` plus the breaker's name and state. Nothing was sent.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import grpc.aio

from engined.core._breaker_types import CircuitBreakerOpenError, CircuitState

__all__ = ["AioBreakerOpenRpcError", "BreakerOpenRpcError", "OPEN_MARKER"]

OPEN_MARKER = ("engined-breaker", "open")
"""The trailing metadata entry that tells a refusal by an engined breaker from a server's error."""


if TYPE_CHECKING:
    _Future = grpc.Future[Any]  # generic in the stubs only
else:
    _Future = grpc.Future


def _trailers(name: str, state: CircuitState) -> tuple[tuple[str, str], ...]:
    return (OPEN_MARKER, ("engined-breaker-name", name), ("engined-breaker-state", state.value))


class BreakerOpenRpcError(CircuitBreakerOpenError, grpc.RpcError, grpc.Call, _Future):
    """A sync call refused by an open breaker: a finished call with status UNAVAILABLE.

    It is a :class:`engined.CircuitBreakerOpenError` (``name``, ``state``,
    ``retry_after``) and a ``grpc.RpcError`` that is also the finished call and future:
    ``result()`` raises it, iterating it raises it.

    Args:
        name: The breaker's name.
        state: The state that refused the call.
        retry_after: Seconds until the breaker admits a probe, or ``None``.
    """

    # The arguments stay in ``args`` (BaseException's C initializer stores them), as the
    # base class reads them from there.

    def code(self) -> grpc.StatusCode:
        """UNAVAILABLE: the dependency is taken to be down."""
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        """Which breaker refused the call, in what state, and when to try again."""
        return str(self)

    def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        """Nothing: no server answered."""
        return ()

    def trailing_metadata(self) -> Any:  # the stubs of RpcError and Call disagree on its type
        """``engined-breaker: open``, the breaker's name and its state."""
        return _trailers(self.name, self.state)

    def is_active(self) -> bool:
        """False: the call is over before it began."""
        return False

    def time_remaining(self) -> None:  # type: ignore[override]  # grpc returns None here too
        """None: no deadline runs."""

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """False: the call has already terminated, so ``callback`` is not kept."""
        return False

    def cancel(self) -> bool:
        """False: a finished call cannot be cancelled."""
        return False

    def cancelled(self) -> bool:
        """False: the call was refused, not cancelled."""
        return False

    def running(self) -> bool:
        """False: the call is finished."""
        return False

    def done(self) -> bool:
        """True: the call is finished."""
        return True

    def result(self, timeout: float | None = None) -> NoReturn:
        """Raise this error: a refused call has no response."""
        raise self

    def exception(self, timeout: float | None = None) -> BreakerOpenRpcError:
        """This error."""
        return self

    def traceback(self, timeout: float | None = None) -> types.TracebackType | None:
        """The traceback of this error, if it has been raised."""
        return self.__traceback__

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(self)`` at once: the future is already done."""
        fn(self)

    def __iter__(self) -> BreakerOpenRpcError:
        return self

    def __next__(self) -> NoReturn:
        raise self


class AioBreakerOpenRpcError(grpc.aio.AioRpcError, CircuitBreakerOpenError):
    """A grpc.aio call refused by an open breaker: an ``AioRpcError`` with status UNAVAILABLE.

    It is a :class:`engined.CircuitBreakerOpenError` too (``name``, ``state``,
    ``retry_after``).

    Args:
        name: The breaker's name.
        state: The state that refused the call.
        retry_after: Seconds until the breaker admits a probe, or ``None``.
    """

    # A refusal is the outage path, raised for every call while a dependency is down, so
    # nothing is built up front: BaseException's C initializer keeps the three arguments in
    # ``args`` (where the breaker error reads them), the details and metadata are made
    # when asked for, and AioRpcError's initializer, which would clear ``args``, is skipped.
    _code = grpc.StatusCode.UNAVAILABLE
    _debug_error_string = None

    def __init__(self, name: str, state: CircuitState, retry_after: float | None = None) -> None:
        pass

    @property
    def _details(self) -> str:  # AioRpcError reads it for str()
        return CircuitBreakerOpenError.__str__(self)

    def details(self) -> str:
        """Which breaker refused the call, in what state, and when to try again."""
        return self._details

    def initial_metadata(self) -> grpc.aio.Metadata:
        """Nothing: no server answered."""
        return grpc.aio.Metadata()

    def trailing_metadata(self) -> grpc.aio.Metadata:  # type: ignore[override]  # as AioRpcError
        """``engined-breaker: open``, the breaker's name and its state."""
        return grpc.aio.Metadata(*_trailers(self.name, self.state))

    def __reduce__(self) -> tuple[type[AioBreakerOpenRpcError], tuple[Any, ...]]:
        return type(self), self.args


def sync_refusal(exc: CircuitBreakerOpenError) -> BreakerOpenRpcError:
    """The sync call's error for the breaker refusal ``exc``."""
    return BreakerOpenRpcError(*exc.args)


def aio_refusal(exc: CircuitBreakerOpenError) -> AioBreakerOpenRpcError:
    """The grpc.aio call's error for the breaker refusal ``exc``."""
    return AioBreakerOpenRpcError(*exc.args)
