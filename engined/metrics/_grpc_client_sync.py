"""``grpc_client_*`` metrics from one sync client interceptor for all four arities.

Outermost on a channel (``GrpcClientMetrics.intercept_channel(channel)`` wraps a channel
that may already carry ``engined.rpc``'s interceptor), it sees each logical call once.
grpc's sync continuations return the finished call (or the error itself, grpc/grpc#25207)
or, for ``future()``, a running one: either way its end comes through
``add_done_callback``, which grpc runs at once for a finished call. A response stream is
handed back wrapped so that the messages are counted as the caller reads them; its end is
taken from the reader (the status the caller gets, after any retry), and from the call's
done-callback only where no retry can follow (see
:class:`~engined.metrics._grpc_families.Outcome`); a failed stream nobody reads is counted
when the caller drops it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from engined.metrics._grpc_families import GrpcFamilies, Outcome
from engined.metrics._grpc_requests import counted_requests

__all__ = ["MetricsClientInterceptor"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNKNOWN = grpc.StatusCode.UNKNOWN

Continuation = Callable[[grpc.ClientCallDetails, Any], Any]

if TYPE_CHECKING:
    _Future = grpc.Future[Any]  # generic in the stubs only
else:
    _Future = grpc.Future


def _code(call: Any) -> grpc.StatusCode:
    """The status of a finished sync call or error."""
    code = call.code()
    return code if isinstance(code, grpc.StatusCode) else _UNKNOWN


def _on_done(outcome: Outcome, call: Any) -> None:
    outcome.call_done(_CANCELLED if call.cancelled() else _code(call))


def _start(continuation: Continuation, details: Any, request: Any, outcome: Outcome) -> Any:
    """Run the rest of the chain; its call, or the end of the call if it raised."""
    try:
        call = continuation(details, request)
    except grpc.RpcError as error:
        outcome.finish(_code(error) if hasattr(error, "code") else _UNKNOWN)
        raise
    except BaseException:
        outcome.finish(_UNKNOWN)
        raise
    call.add_done_callback(lambda done: _on_done(outcome, done))
    return call


class MetricsClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Counts every sync call made through it; see :class:`~engined.metrics.GrpcClientMetrics`."""

    def __init__(self, families: GrpcFamilies) -> None:
        self._families = families

    def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Count the call and its request; its status and response when it ends."""
        method = self._families.method(client_call_details.method, "unary")
        outcome = Outcome(method, self._families.clock, on_ok=method.received)
        method.sent()
        return _start(continuation, client_call_details, request, outcome)

    def intercept_stream_unary(
        self, continuation: Continuation, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Count the call and each request sent; its status and response when it ends."""
        method = self._families.method(client_call_details.method, "client_stream")
        outcome = Outcome(method, self._families.clock, on_ok=method.received)
        requests = counted_requests(request_iterator, method.sent)
        return _start(continuation, client_call_details, requests, outcome)

    def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Count the call and its request; hand back its responses, counted as read."""
        method = self._families.method(client_call_details.method, "server_stream")
        outcome = Outcome(method, self._families.clock, stream=True)
        method.sent()
        call = _start(continuation, client_call_details, request, outcome)
        return CountedStream(call, outcome, method.received)

    def intercept_stream_stream(
        self, continuation: Continuation, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Count the call and each request sent; hand back its responses, counted as read."""
        method = self._families.method(client_call_details.method, "bidi_stream")
        outcome = Outcome(method, self._families.clock, stream=True)
        requests = counted_requests(request_iterator, method.sent)
        call = _start(continuation, client_call_details, requests, outcome)
        return CountedStream(call, outcome, method.received)


class CountedStream(grpc.Call, _Future, Iterator[Any]):
    """A response stream that counts the messages read and the status iteration ends with.

    Every ``grpc.Call`` and ``grpc.Future`` method is the wrapped call's.
    """

    def __init__(self, call: Any, outcome: Outcome, received: Callable[[], None]) -> None:
        self._call = call
        self._outcome = outcome
        self._received = received
        weakref.finalize(self, outcome.dropped).atexit = False  # settles a pending status

    def __iter__(self) -> CountedStream:
        return self

    def __next__(self) -> Any:
        outcome = self._outcome
        outcome.reading = True
        try:
            message = next(self._call)
        except StopIteration:
            outcome.finish(_OK)
            raise
        except grpc.RpcError as error:
            outcome.finish(_code(error) if hasattr(error, "code") else _UNKNOWN)
            raise
        except Exception:
            outcome.finish(_UNKNOWN)
            raise
        finally:
            outcome.reading = False
        outcome.delivered = True
        self._received()
        return message

    def cancel(self) -> bool:
        """Cancel the call."""
        cancelled: bool = self._call.cancel()
        return cancelled

    def cancelled(self) -> bool:
        """Whether the call was cancelled."""
        cancelled: bool = self._call.cancelled()
        return cancelled

    def running(self) -> bool:
        """Whether the call is running."""
        running: bool = self._call.running()
        return running

    def done(self) -> bool:
        """Whether the call is done."""
        done: bool = self._call.done()
        return done

    def result(self, timeout: float | None = None) -> Any:
        """The call's ``result()``."""
        return self._call.result(timeout)

    def exception(self, timeout: float | None = None) -> Any:
        """The call's ``exception()``."""
        return self._call.exception(timeout)

    def traceback(self, timeout: float | None = None) -> Any:
        """The call's ``traceback()``."""
        return self._call.traceback(timeout)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(self)`` when the call is done."""
        self._call.add_done_callback(lambda _call: fn(self))

    def code(self) -> grpc.StatusCode:
        """The call's status, waiting for it to end."""
        code: grpc.StatusCode = self._call.code()
        return code

    def details(self) -> str:
        """The call's status details."""
        details: str = self._call.details()
        return details

    def initial_metadata(self) -> Any:
        """The call's initial metadata."""
        return self._call.initial_metadata()

    def trailing_metadata(self) -> Any:
        """The call's trailing metadata."""
        return self._call.trailing_metadata()

    def is_active(self) -> bool:
        """Whether the call is still running."""
        active: bool = self._call.is_active()
        return active

    def time_remaining(self) -> Any:
        """Seconds left before the call's deadline, or ``None``."""
        return self._call.time_remaining()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` when the call terminates."""
        added: bool = self._call.add_callback(callback)
        return added
