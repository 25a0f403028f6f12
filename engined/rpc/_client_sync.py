"""The sync client stack: one interceptor for all four arities, from :func:`intercept_channel`.

grpc's sync continuations *return* a finished call or the ``RpcError`` itself rather than
raise it (grpc/grpc#25207), so the outcome is read from ``outcome.code()``, and an open
breaker is *returned* as a :class:`~engined.rpc.BreakerOpenRpcError` too. A ``future()``
call comes back still running: it is not retried (waiting out a backoff would block the
caller that asked not to block), and is returned wrapped, its permit settled by a
done-callback or at once by ``cancel()``. Response streams are wrapped too, so that the
permit is settled when iteration ends, fails or the call is cancelled, in whichever thread
that happens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core._breaker_types import CircuitBreakerOpenError
from engined.rpc._attempts import Attempts, ClientCore, StreamAttempt
from engined.rpc._client_sync_call import SettlingCall
from engined.rpc._errors import sync_refusal
from engined.rpc._policy import RpcPolicy
from engined.rpc._status import PREVIOUS_ATTEMPTS_KEY, code_of

__all__ = ["EnginedClientInterceptor", "intercept_channel"]

_OK = grpc.StatusCode.OK

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


def _settle_when_done(attempt: StreamAttempt, future: Any) -> None:
    attempt.settle(code_of(future))


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
                attempt = StreamAttempt(core, permit)
                outcome.add_done_callback(functools.partial(_settle_when_done, attempt))
                return SettlingCall(core, breaker, attempts, attempt, outcome, None)
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
    return SettlingCall(core, breaker, attempts, StreamAttempt(core, permit), call, restart)


def _restart(
    continuation: Continuation,
    details: grpc.ClientCallDetails,
    again: Callable[[], Any],
    attempts: Attempts,
) -> Any:
    return continuation(_details_for(details, attempts), again())
