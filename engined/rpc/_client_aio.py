"""The grpc.aio client stack: four interceptors sharing one core, from :func:`aio_interceptors`.

``await continuation(...)`` hands back a call that has not finished yet, so a unary
response's status is awaited (``await call.code()``) before the permit is settled and a
retry is considered. A response stream is returned wrapped: its permit is settled when
iteration ends, fails or is cancelled, or when its status is read, in whichever task that
happens (the permit is its own object). A client-streaming call whose requests come from
``call.write()`` cannot be awaited inside the interceptor (the writes wait for it), so it
is settled by a done-callback and never retried. An open breaker raises
:class:`~engined.rpc.AioBreakerOpenRpcError`, which grpc.aio hands to the caller as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core._breaker_types import CircuitBreakerOpenError
from engined.core._permit import Permit
from engined.rpc._attempts import Attempts, ClientCore, StreamAttempt
from engined.rpc._client_aio_stream import (
    AioStreamStreamCall,
    AioUnaryStreamCall,
    finished_code,
    watch,
)
from engined.rpc._errors import aio_refusal
from engined.rpc._policy import RpcPolicy
from engined.rpc._status import PREVIOUS_ATTEMPTS_KEY

__all__ = ["aio_interceptors", "details_for"]

_OK = grpc.StatusCode.OK

Continuation = Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]]


def aio_interceptors(
    policy: RpcPolicy, *, target: str, clock: Clock = SYSTEM_CLOCK
) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that put engined's breaker, retries and deadline around grpc.aio calls.

    Pass them as ``grpc.aio.insecure_channel(addr, interceptors=...)`` (or use
    :func:`~engined.rpc.open_aio_channel`, which also turns grpc's own retries off). One
    interceptor per arity, as grpc.aio files each under the first arity it implements; they
    share one breaker cache.

    Args:
        policy: What to do with each call.
        target: Names the endpoint in the breakers' names (``rpc:<target>``); channels
            do not expose their target.
        clock: Time for deadlines and backoff sleeps, and the breakers' clock.

    Raises:
        TypeError: An argument has the wrong type; the message names it.
        ValueError: ``target`` is empty, or a breaker of the same name exists with
            another configuration.
    """
    core = ClientCore(policy, target, clock)
    return [_UnaryUnary(core), _UnaryStream(core), _StreamUnary(core), _StreamStream(core)]


def details_for(
    details: grpc.aio.ClientCallDetails, attempts: Attempts
) -> grpc.aio.ClientCallDetails:
    """The call details of the current attempt: its timeout, and on a retry its number."""
    if attempts.number == 1 and attempts.timeout == details.timeout:
        return details
    metadata = details.metadata
    if attempts.number > 1:
        metadata = grpc.aio.Metadata(
            *(item for item in metadata or () if item[0] != PREVIOUS_ATTEMPTS_KEY)
        )
        metadata.add(PREVIOUS_ATTEMPTS_KEY, str(attempts.number - 1))
    return grpc.aio.ClientCallDetails(
        details.method, attempts.timeout, metadata, details.credentials, details.wait_for_ready
    )


def _resendable(requests: object) -> bool:
    """Whether a request stream can be sent again: a list or tuple, not an iterator."""
    return isinstance(requests, Sequence) and not isinstance(requests, str | bytes | bytearray)


async def _unary_response(
    core: ClientCore, continuation: Continuation, details: Any, request: Any, retry: bool
) -> Any:
    """Run attempts until one succeeds or may not be retried; return its call."""
    breaker = core.breaker(details.method)
    attempts = core.start(details.timeout)
    last = None
    while True:
        try:
            permit = breaker.acquire()
        except CircuitBreakerOpenError as exc:
            if last is None:
                raise aio_refusal(exc) from None
            return last  # the failure the caller sees is the server's, not the refusal
        call = None
        try:
            call = await continuation(details_for(details, attempts), request)
            code = await call.code()
        except BaseException:
            permit.release()  # cancelled or broken on this side: nothing to count
            if call is not None:
                call.cancel()
            raise
        core.settle(permit, code)
        last = call
        if code is _OK or not retry:
            return call
        delay = attempts.retry_delay(code, await call.trailing_metadata())
        if delay is None:
            return call
        await core.clock.sleep_async(delay)
        if not attempts.next_attempt():
            return call


def _settle_when_done(core: ClientCore, permit: Permit, call: Any) -> None:
    core.settle(permit, finished_code(call))


async def _start_stream(
    core: ClientCore,
    continuation: Continuation,
    details: Any,
    request: Any,
    resendable: bool,
    kind: type[AioUnaryStreamCall],
) -> AioUnaryStreamCall:
    """Start a streaming-response call, or raise the breaker's refusal."""
    breaker = core.breaker(details.method)
    attempts = core.start(details.timeout)
    try:
        permit = breaker.acquire()
    except CircuitBreakerOpenError as exc:
        raise aio_refusal(exc) from None
    try:
        call = await continuation(details_for(details, attempts), request)
    except BaseException:
        permit.release()
        raise
    restart = None
    if resendable and core.max_attempts > 1:
        restart = functools.partial(_restart, continuation, details, request)
    return kind(core, breaker, attempts, watch(StreamAttempt(core, permit), call), call, restart)


async def _restart(
    continuation: Continuation, details: Any, request: Any, attempts: Attempts
) -> Any:
    return await continuation(details_for(details, attempts), request)


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    """Unary calls: every attempt awaited to its status, retried while the policy allows."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core
        self._retry = core.max_attempts > 1

    async def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Run the call's attempts; return the last attempt's call."""
        return await _unary_response(
            self._core, continuation, client_call_details, request, self._retry
        )


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    """Client-streaming calls: retried when the requests are a list or tuple."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def intercept_stream_unary(
        self, continuation: Continuation, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Run a resendable call like a unary one; settle any other when it is done."""
        core = self._core
        if core.max_attempts > 1 and _resendable(request_iterator):
            return await _unary_response(
                core, continuation, client_call_details, request_iterator, True
            )
        try:
            permit = core.breaker(client_call_details.method).acquire()
        except CircuitBreakerOpenError as exc:
            raise aio_refusal(exc) from None
        attempts = core.start(client_call_details.timeout)
        try:
            call = await continuation(details_for(client_call_details, attempts), request_iterator)
        except BaseException:
            permit.release()
            raise
        call.add_done_callback(functools.partial(_settle_when_done, core, permit))
        return call


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    """Server-streaming calls: retried only before the first message is delivered."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Start the call; its response stream settles the permit."""
        return await _start_stream(
            self._core, continuation, client_call_details, request, True, AioUnaryStreamCall
        )


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    """Bidi calls: retried before the first message only if the requests can be resent."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def intercept_stream_stream(
        self, continuation: Continuation, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Start the call; its response stream settles the permit."""
        return await _start_stream(
            self._core,
            continuation,
            client_call_details,
            request_iterator,
            _resendable(request_iterator),
            AioStreamStreamCall,
        )
