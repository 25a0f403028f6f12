"""The error tree of DESIGN.md §3: EnginedError > RejectedError and CallTimeoutError."""

from __future__ import annotations

import asyncio

import pytest

import engined
from engined import (
    Bulkhead,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerOpenError,
    EnginedError,
    RejectedError,
)
from engined.testing import FakeClock


def test_the_error_tree_is_the_one_the_design_draws() -> None:
    """Refusals are RejectedErrors, a timeout is an EnginedError and a TimeoutError."""
    assert issubclass(EnginedError, Exception)
    assert issubclass(RejectedError, EnginedError)
    assert issubclass(CircuitBreakerOpenError, RejectedError)
    assert issubclass(BulkheadFullError, RejectedError)
    assert issubclass(CallTimeoutError, EnginedError)
    assert issubclass(CallTimeoutError, TimeoutError)
    assert not issubclass(CallTimeoutError, RejectedError)  # it ran, then was cut short
    assert engined.EnginedError is EnginedError
    assert engined.RejectedError is RejectedError


def test_one_except_clause_catches_an_open_breaker_and_a_full_bulkhead() -> None:
    """``except RejectedError`` sees both refusals, each still carrying its own attributes."""
    breaker = CircuitBreaker("dep", failure_threshold=1, clock=FakeClock())
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    bulkhead = Bulkhead("dep", max_concurrent=1)
    refused: list[RejectedError] = []
    with bulkhead:
        for guard in (breaker, bulkhead):
            try:
                guard.call(lambda: "never runs")
            except RejectedError as exc:
                refused.append(exc)
    assert [type(exc) for exc in refused] == [CircuitBreakerOpenError, BulkheadFullError]
    open_error, full_error = refused
    assert isinstance(open_error, CircuitBreakerOpenError)
    assert isinstance(full_error, BulkheadFullError)
    assert (open_error.name, open_error.retry_after) == ("dep", 30.0)
    assert (full_error.name, full_error.max_concurrent) == ("dep", 1)


def test_errors_of_the_protected_function_are_not_engined_errors() -> None:
    """What the dependency raises propagates as it is, never wrapped in the tree."""
    breaker = CircuitBreaker("dep", clock=FakeClock())
    with pytest.raises(ValueError, match="bad input") as info:
        breaker.call(lambda: int("bad input"))
    assert not isinstance(info.value, EnginedError)


async def test_a_timed_out_call_is_caught_as_an_engined_error() -> None:
    """``@timeout`` raises a CallTimeoutError that ``except EnginedError`` catches."""

    @engined.timeout(0.01)
    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(EnginedError) as info:
        await hang()
    assert isinstance(info.value, CallTimeoutError)
    assert isinstance(info.value, TimeoutError)
    assert info.value.seconds == 0.01


def test_the_grpc_breaker_refusals_are_rejected_errors_too() -> None:
    """The sync and aio refusals of the gRPC layer are caught by ``except RejectedError``."""
    from engined.rpc._errors import AioBreakerOpenRpcError, BreakerOpenRpcError

    assert issubclass(BreakerOpenRpcError, RejectedError)
    assert issubclass(AioBreakerOpenRpcError, RejectedError)
