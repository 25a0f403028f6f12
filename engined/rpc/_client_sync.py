"""The sync client stack: one interceptor for all four arities, from :func:`intercept_channel`.

grpc's sync continuations *return* a finished call or the ``RpcError`` itself rather than
raise it (grpc/grpc#25207), so the outcome is read from ``outcome.code()``, and an open
breaker is *returned* as a :class:`~engined.rpc.BreakerOpenRpcError` too. A ``future()``
call comes back still running: its permit is settled by a done-callback, and it is not
retried (waiting out a backoff would block the caller that asked not to block). Response
streams are wrapped so that the permit is settled when iteration ends, fails or the call is
cancelled, in whichever thread that happens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import grpc

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core._breaker import CircuitBreaker
from engined.core._breaker_types import CircuitBreakerOpenError
from engined.core._permit import Permit
from engined.rpc._attempts import Attempts, ClientCore, StreamAttempt
from engined.rpc._errors import _Future, sync_refusal
from engined.rpc._policy import RpcPolicy
from engined.rpc._status import PREVIOUS_ATTEMPTS_KEY, code_of

__all__ = ["EnginedClientInterceptor", "intercept_channel"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED

Continuation = Callable[[grpc.ClientCallDetails, Any], Any]


def intercept_channel(
    channel: grpc.Channel, policy: RpcPolicy, *, target: str, clock: Clock = SYSTEM_CLOCK
) -> grpc.Channel:
    """Return ``channel`` with engined's breaker, retries and deadline around every call.

    Args:
        channel: A sync channel, e.g. from ``grpc.insecure_channel``. Open it with
            ``("grpc.enable_retries", 0)`` (as :func:`~engined.rpc.open_channel` does) so
            that grpc does not retry underneath engined's retries.
        policy: What to do with each call.
        target: Names the endpoint in the breakers' names (``rpc:<target>``); channels
            do not expose their target.
        clock: Time for deadlines and backoff sleeps, and the breakers' clock.

    Raises:
        TypeError: An argument has the wrong type; the message names it.
        ValueError: ``target`` is empty, or a breaker of the same name exists with
            another configuration.
    """
    if not isinstance(channel, grpc.Channel):
        msg = f"channel must be a grpc.Channel, got {type(channel).__name__}"
        raise TypeError(msg)
    return grpc.intercept_channel(
        channel, EnginedClientInterceptor(ClientCore(policy, target, clock))
    )


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _ClientCallDetails(_CallDetails, grpc.ClientCallDetails):
    """An attempt's call details: the caller's, with this attempt's timeout and metadata."""


def _details_for(details: grpc.ClientCallDetails, attempts: Attempts) -> grpc.ClientCallDetails:
    if attempts.number == 1 and attempts.timeout == details.timeout:
        return details
    metadata = details.metadata
    if attempts.number > 1:
        kept = tuple(item for item in metadata or () if item[0] != PREVIOUS_ATTEMPTS_KEY)
        metadata = (*kept, (PREVIOUS_ATTEMPTS_KEY, str(attempts.number - 1)))
    return _ClientCallDetails(
        details.method,
        attempts.timeout,
        metadata,
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


def _resendable(requests: object) -> bool:
    """Whether a request stream can be sent again: a list or tuple, not a one-shot iterator."""
    return isinstance(requests, Sequence) and not isinstance(requests, str | bytes | bytearray)


def _settle_when_done(core: ClientCore, permit: Permit, future: Any) -> None:
    core.settle(permit, code_of(future))


class EnginedClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Breaker, retries and one deadline around every sync call; see :func:`intercept_channel`."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        """Run a unary call, retrying it while the policy allows."""
        return self._unary_response(continuation, client_call_details, request, lambda: request)

    def intercept_stream_unary(
        self,
        continuation: Continuation,
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        """Run a client-streaming call; retried only when the requests are a list or tuple."""
        first, again = _requests(request_iterator)
        return self._unary_response(continuation, client_call_details, first, again)

    def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        """Start a server-streaming call; retried only before it delivers a message."""
        return _start_stream(
            self._core, continuation, client_call_details, request, lambda: request
        )

    def intercept_stream_stream(
        self,
        continuation: Continuation,
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        """Start a bidi call; retried before its first message, if its requests can be resent."""
        first, again = _requests(request_iterator)
        return _start_stream(self._core, continuation, client_call_details, first, again)

    def _unary_response(
        self,
        continuation: Continuation,
        details: grpc.ClientCallDetails,
        first: Any,
        again: Callable[[], Any] | None,
    ) -> Any:
        core = self._core
        breaker = core.breaker(details.method)
        attempts = core.start(details.timeout)
        # grpc's future() continuation returns a running call; with_call's a finished one.
        pending = ".future." in getattr(continuation, "__qualname__", "")
        retry = again is not None and not pending and core.max_attempts > 1
        outcome = None
        while True:
            try:
                permit = breaker.acquire()
            except CircuitBreakerOpenError as exc:
                return sync_refusal(exc) if outcome is None else outcome  # never retried
            try:
                request = first if outcome is None or again is None else again()
                outcome = continuation(_details_for(details, attempts), request)
            except BaseException:
                permit.release()
                raise
            if pending or not outcome.done():
                outcome.add_done_callback(functools.partial(_settle_when_done, core, permit))
                return outcome
            code = code_of(outcome)
            core.settle(permit, code)
            if code is _OK or not retry:
                return outcome
            delay = attempts.retry_delay(code, outcome.trailing_metadata())
            if delay is None:
                return outcome
            core.clock.sleep(delay)
            if not attempts.next_attempt():
                return outcome


def _requests(request_iterator: Any) -> tuple[Any, Callable[[], Any] | None]:
    """What the first attempt sends, and how a retry sends the requests again (if it can).

    A list or tuple is sent again from its start (sync grpc wants an iterator, so each
    attempt gets a fresh one); a one-shot iterator cannot be, so the call is not retried.
    """
    if _resendable(request_iterator):
        return iter(request_iterator), functools.partial(iter, request_iterator)
    return request_iterator, None


def _start_stream(
    core: ClientCore,
    continuation: Continuation,
    details: grpc.ClientCallDetails,
    first: Any,
    again: Callable[[], Any] | None,
) -> Any:
    """Start a streaming-response call, or return the breaker's refusal."""
    breaker = core.breaker(details.method)
    attempts = core.start(details.timeout)
    try:
        permit = breaker.acquire()
    except CircuitBreakerOpenError as exc:
        return sync_refusal(exc)
    try:
        call = continuation(_details_for(details, attempts), first)
    except BaseException:
        permit.release()
        raise
    restart = None
    if again is not None and core.max_attempts > 1:
        restart = functools.partial(_restart, continuation, details, again)
    return _SyncStream(core, breaker, attempts, StreamAttempt(core, permit), call, restart)


def _restart(
    continuation: Continuation,
    details: grpc.ClientCallDetails,
    again: Callable[[], Any],
    attempts: Attempts,
) -> Any:
    return continuation(_details_for(details, attempts), again())


class _SyncStream(grpc.Call, _Future, Iterator[Any]):
    """A response stream whose permit is settled when it ends, fails or is cancelled.

    Before it has delivered a message, a retryable failure starts a new attempt in the
    thread that iterates (gRFC A6: a call is committed once the response has begun).
    Every ``grpc.Call`` and ``grpc.Future`` method reads the current attempt's call.
    """

    def __init__(
        self,
        core: ClientCore,
        breaker: CircuitBreaker,
        attempts: Attempts,
        attempt: StreamAttempt,
        call: Any,
        restart: Callable[[Attempts], Any] | None,
    ) -> None:
        self._core = core
        self._breaker = breaker
        self._attempts = attempts
        self._attempt = attempt
        self._call = call
        self._restart = restart
        self._delivered = False

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> Any:
        while True:
            call = self._call
            try:
                message = next(call)
            except StopIteration:
                self._attempt.settle(_OK)
                raise
            except grpc.RpcError as exc:
                code = code_of(exc)
                self._attempt.settle(code)
                if not self._retry(code, exc):
                    raise
                continue
            except BaseException:
                self._attempt.settle(None)  # broke on this side: nothing to count
                raise
            self._delivered = True
            return message

    def _retry(self, code: grpc.StatusCode | None, error: grpc.RpcError) -> bool:
        """Start the next attempt if the stream may still be retried; report whether it did."""
        if self._delivered or self._restart is None:
            return False
        attempts = self._attempts
        delay = attempts.retry_delay(code, error.trailing_metadata())
        if delay is None:
            return False
        self._core.clock.sleep(delay)
        if not attempts.next_attempt():
            return False
        try:
            permit = self._breaker.acquire()
        except CircuitBreakerOpenError:
            return False  # the failure the caller sees is the server's, not the refusal
        try:
            self._call = self._restart(attempts)
        except BaseException:
            permit.release()
            raise
        self._attempt = StreamAttempt(self._core, permit)
        return True

    def cancel(self) -> bool:
        """Cancel the call and give its permit back: the caller gave up, nothing failed."""
        cancelled: bool = self._call.cancel()
        self._attempt.settle(_CANCELLED if cancelled else code_of(self._call))
        return cancelled

    def code(self) -> grpc.StatusCode:
        """The status of the current attempt, waiting for it to end; it settles the permit."""
        code: grpc.StatusCode = self._call.code()
        self._attempt.settle(code)
        return code

    def details(self) -> str:
        """The current attempt's status details."""
        details: str = self._call.details()
        return details

    def initial_metadata(self) -> Any:
        """The current attempt's initial metadata."""
        return self._call.initial_metadata()

    def trailing_metadata(self) -> Any:
        """The current attempt's trailing metadata."""
        return self._call.trailing_metadata()

    def is_active(self) -> bool:
        """Whether the current attempt is still running."""
        active: bool = self._call.is_active()
        return active

    def time_remaining(self) -> Any:
        """Seconds left before the current attempt's deadline, or ``None``."""
        return self._call.time_remaining()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` when the current attempt terminates."""
        added: bool = self._call.add_callback(callback)
        return added

    def cancelled(self) -> bool:
        """Whether the current attempt was cancelled."""
        cancelled: bool = self._call.cancelled()
        return cancelled

    def running(self) -> bool:
        """Whether the current attempt is running."""
        running: bool = self._call.running()
        return running

    def done(self) -> bool:
        """Whether the current attempt is done."""
        done: bool = self._call.done()
        return done

    def result(self, timeout: float | None = None) -> Any:
        """The current attempt's ``result()``."""
        return self._call.result(timeout)

    def exception(self, timeout: float | None = None) -> Any:
        """The current attempt's ``exception()``."""
        return self._call.exception(timeout)

    def traceback(self, timeout: float | None = None) -> Any:
        """The current attempt's ``traceback()``."""
        return self._call.traceback(timeout)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(self)`` when the current attempt is done."""
        self._call.add_done_callback(lambda _call: fn(self))
