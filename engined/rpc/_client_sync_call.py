"""A sync call in flight whose breaker permit is settled once, by whoever sees its end first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from engined.core._breaker import CircuitBreaker
from engined.core._breaker_types import CircuitBreakerOpenError
from engined.rpc._attempts import Attempts, ClientCore, StreamAttempt
from engined.rpc._errors import _Future
from engined.rpc._status import code_of

__all__ = ["SettlingCall"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED


class SettlingCall(grpc.Call, _Future, Iterator[Any]):
    """A running call whose permit is settled by whoever sees its end first.

    A response stream settles when iteration ends or fails; a ``future()`` when its
    done-callback runs; either when ``cancel()`` succeeds (at once: grpc runs the callbacks
    of a cancelled call later, in its own thread) or its status is read. Before a stream
    has delivered a message, a retryable failure starts a new attempt in the thread that
    iterates (gRFC A6: a call is committed once its response has begun). Every
    ``grpc.Call`` and ``grpc.Future`` method reads the current attempt's call.
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

    def __iter__(self) -> SettlingCall:
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
