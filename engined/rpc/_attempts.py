"""The logic both client stacks share: breakers per target or method, and each call's attempts.

:class:`ClientCore` is built once per interceptor (set) from an
:class:`~engined.rpc.RpcPolicy`: it looks breakers up in the default registry once and
caches them, so the hot path never builds one, and it classifies finished attempts.
:class:`Attempts` is one logical call: its single deadline, its attempt count and the
decision, after a failed attempt, whether and when to try again (gRFC A6). Time is read
from the injected clock only, and only when a deadline or a backoff needs it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from typing import Any

import grpc

from engined._clock import Clock
from engined.core import _validate as check
from engined.core._breaker import CircuitBreaker
from engined.core._permit import Permit
from engined.core._registry import default_registry
from engined.core.retry import Backoff
from engined.rpc._policy import RpcPolicy
from engined.rpc._status import STOP, effective_timeout, pushback_delay

__all__ = ["MIN_ATTEMPT_TIMEOUT", "Attempts", "ClientCore", "StreamAttempt"]

MIN_ATTEMPT_TIMEOUT = 0.001
"""Seconds a retry must have left before the deadline, or it is not started.

An attempt with less cannot make even a loopback round trip; it would only fail with
DEADLINE_EXCEEDED and count a failure against a breaker whose dependency did nothing wrong.
"""

_OK = grpc.StatusCode.OK


class ClientCore:
    """What every call through one interceptor (set) shares.

    Args:
        policy: The :class:`~engined.rpc.RpcPolicy` to apply.
        target: Names the endpoint in breaker names; channels do not expose their target.
        clock: Time for deadlines and backoff sleeps, and for the breakers it creates.

    Raises:
        TypeError: ``policy`` is not an ``RpcPolicy``, ``target`` not a string, ``clock``
            not a clock; the message names the argument.
        ValueError: ``target`` is empty, or the registry holds a breaker of that name with
            a different configuration.
    """

    __slots__ = (
        "_breaker",
        "_by_method",
        "_config",
        "_failure",
        "_ignored",
        "backoff",
        "budget",
        "clock",
        "default_timeout",
        "max_attempts",
        "monotonic",
        "retryable",
        "rng",
        "target",
    )

    def __init__(self, policy: RpcPolicy, target: str, clock: Clock) -> None:
        if not isinstance(policy, RpcPolicy):
            msg = f"policy must be an engined.rpc.RpcPolicy, got {type(policy).__name__}"
            raise TypeError(msg)
        self.target = check.check_name("target", target)
        self.clock: Clock = check.check_clock("clock", clock)
        self.monotonic = clock.monotonic
        self._failure = frozenset(policy.failure_codes)
        self._ignored = frozenset(policy.ignored_codes)
        retry = policy.retry
        self.max_attempts = 1 if retry is None else retry.max_attempts
        self.retryable = frozenset(() if retry is None else retry.retryable_status_codes)
        self.backoff = (
            None
            if retry is None
            else Backoff(
                initial=retry.initial_backoff,
                multiplier=retry.backoff_multiplier,
                max=retry.max_backoff,
            )
        )
        self.budget = policy.budget
        self.default_timeout = policy.default_timeout
        self.rng = random.Random()
        self._config = {**policy.breaker, "clock": clock}
        self._by_method: dict[str | bytes, CircuitBreaker] = {}
        self._breaker = (
            default_registry().get_or_create(f"rpc:{target}", **self._config)
            if policy.breaker_scope == "target"
            else None
        )

    def breaker(self, method: str | bytes) -> CircuitBreaker:
        """The breaker guarding ``method`` (``/package.Service/Method``), from the cache."""
        if self._breaker is not None:
            return self._breaker
        breaker = self._by_method.get(method)
        if breaker is None:
            path = method.decode("utf-8", "replace") if isinstance(method, bytes) else method
            name = f"rpc:{self.target}{path if path.startswith('/') else '/' + path}"
            breaker = default_registry().get_or_create(name, **self._config)
            self._by_method[method] = breaker
        return breaker

    def settle(self, permit: Permit, code: grpc.StatusCode | None) -> None:
        """Settle ``permit`` from one attempt's status, and charge or refill the budget.

        ``None`` means no server answered (the call broke on the client side): the permit
        is given back and the budget is left alone.
        """
        if code is _OK:
            permit.record_success()
        elif code is None or code in self._ignored:
            permit.release()
        elif code in self._failure:
            permit.record_failure()
        else:
            permit.record_success()  # the dependency answered: the caller's mistake
        budget = self.budget
        if budget is not None and code is not None:
            if code is _OK:
                budget.record_success()
            elif code in self.retryable:
                budget.record_failure()  # gRFC A6: only retryable failures cost a token

    def start(self, timeout: float | None) -> Attempts:
        """The attempts of one call whose caller asked for ``timeout`` seconds."""
        return Attempts(self, timeout)


class Attempts:
    """One logical call's attempts under one deadline.

    Attributes:
        number: The current attempt, 1 for the first.
        timeout: The current attempt's timeout in seconds: the time left before the
            call's deadline, or ``None`` without a deadline.
        deadline: The call's deadline on the core's clock, or ``None``.
    """

    __slots__ = ("_core", "_since_pushback", "deadline", "number", "timeout")

    def __init__(self, core: ClientCore, timeout: float | None) -> None:
        self._core = core
        self.number = 1
        self._since_pushback = 0
        self.timeout = timeout = effective_timeout(timeout, core.default_timeout)
        self.deadline = None if timeout is None else core.monotonic() + timeout

    def retry_delay(
        self,
        code: grpc.StatusCode | None,
        trailing_metadata: Iterable[Any] | None,
    ) -> float | None:
        """Seconds to wait before retrying after the current attempt failed, or ``None``.

        No retry when: the code is not retryable; the attempts are used up; the retry
        budget is down to half; the server pushed back with a negative or malformed
        delay; or the wait would leave less than :data:`MIN_ATTEMPT_TIMEOUT` before the
        deadline. A valid pushback is waited exactly, and the backoff that follows
        starts again from ``initial_backoff`` (gRFC A6).
        """
        core = self._core
        if code not in core.retryable or self.number >= core.max_attempts:
            return None
        if core.budget is not None and not core.budget.retry_allowed:
            return None
        pushback = pushback_delay(trailing_metadata)
        if pushback is None:
            self._since_pushback += 1
            assert core.backoff is not None  # retryable codes exist only with a retry policy
            delay = core.backoff.delay(self._since_pushback, core.rng)
        elif pushback == STOP:
            return None
        else:
            delay = pushback
            self._since_pushback = 0
        if self.deadline is not None and (
            self.deadline - core.monotonic() - delay < MIN_ATTEMPT_TIMEOUT
        ):
            return None
        return delay

    def next_attempt(self) -> bool:
        """Begin the next attempt after the backoff: False if its deadline has passed."""
        self.number += 1
        if self.deadline is not None:
            self.timeout = self.deadline - self._core.monotonic()
            if self.timeout < MIN_ATTEMPT_TIMEOUT:
                return False
        return True


class StreamAttempt:
    """One attempt of a streaming call: its permit, settled once whoever sees the end first.

    A stream's end may be seen by the task or thread iterating it, by ``cancel()`` or by
    a read of its status; only the first settles the permit and touches the budget.
    """

    __slots__ = ("_claim", "_core", "permit")

    def __init__(self, core: ClientCore, permit: Permit) -> None:
        self._core = core
        self.permit = permit
        self._claim = itertools.count().__next__  # one atomic C call: 0 for the first taker

    def settle(self, code: grpc.StatusCode | None) -> None:
        """Settle the attempt from its status; later calls do nothing."""
        if not self._claim():
            self._core.settle(self.permit, code)
