"""The breaker-open errors: each is a CircuitBreakerOpenError and a gRPC error at once."""

from __future__ import annotations

import pickle

import grpc
import grpc.aio
import pytest

from engined import CircuitBreakerOpenError, CircuitState
from engined.rpc import AioBreakerOpenRpcError, BreakerOpenRpcError

MARKER = ("engined-breaker", "open")


def test_sync_error_is_breaker_error_rpc_error_call_and_future() -> None:
    """The sync refusal is caught by engined code and by gRPC code alike."""
    error = BreakerOpenRpcError("rpc:db:5432", CircuitState.OPEN, 12.5)
    assert isinstance(error, CircuitBreakerOpenError)
    assert isinstance(error, grpc.RpcError)
    assert isinstance(error, grpc.Call)
    assert isinstance(error, grpc.Future)
    assert (error.name, error.state, error.retry_after) == ("rpc:db:5432", CircuitState.OPEN, 12.5)


def test_sync_error_reads_as_a_finished_unavailable_call() -> None:
    """code() UNAVAILABLE, details() naming the breaker, trailing metadata engined-breaker: open."""
    error = BreakerOpenRpcError("rpc:db:5432", CircuitState.FORCED_OPEN)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "rpc:db:5432" in error.details()
    assert "forced_open" in error.details()
    assert MARKER in error.trailing_metadata()
    assert ("engined-breaker-name", "rpc:db:5432") in error.trailing_metadata()
    assert error.initial_metadata() == ()
    assert (error.done(), error.running(), error.cancelled(), error.is_active()) == (
        True,
        False,
        False,
        False,
    )
    assert error.cancel() is False
    assert error.time_remaining() is None
    assert error.exception() is error


def test_sync_error_raises_itself_as_result_and_when_iterated() -> None:
    """result() and iteration raise the error itself, as a failed call and stream do."""
    error = BreakerOpenRpcError("b", CircuitState.OPEN, 1.0)
    with pytest.raises(BreakerOpenRpcError) as caught:
        error.result()
    assert caught.value is error
    with pytest.raises(BreakerOpenRpcError):
        next(iter(error))
    assert error.traceback() is not None
    seen: list[object] = []
    error.add_done_callback(seen.append)
    assert seen == [error]
    assert error.add_callback(lambda: None) is False


def test_aio_error_is_an_aio_rpc_error_and_a_breaker_error() -> None:
    """The grpc.aio refusal is an AioRpcError with code, details and trailing metadata."""
    error = AioBreakerOpenRpcError("rpc:api", CircuitState.HALF_OPEN)
    assert isinstance(error, grpc.aio.AioRpcError)
    assert isinstance(error, CircuitBreakerOpenError)
    assert (error.name, error.state, error.retry_after) == ("rpc:api", CircuitState.HALF_OPEN, None)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == "circuit breaker 'rpc:api' is half_open"
    trailing = error.trailing_metadata()
    assert isinstance(trailing, grpc.aio.Metadata)
    assert trailing["engined-breaker"] == "open"
    assert trailing["engined-breaker-name"] == "rpc:api"
    assert "rpc:api" in str(error)


@pytest.mark.parametrize("kind", [BreakerOpenRpcError, AioBreakerOpenRpcError])
def test_errors_survive_pickling(kind: type[CircuitBreakerOpenError]) -> None:
    """Both errors pickle with their breaker fields (multiprocessing, logging handlers)."""
    error = kind("rpc:x", CircuitState.OPEN, 3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is kind
    assert (copy.name, copy.state, copy.retry_after) == ("rpc:x", CircuitState.OPEN, 3.0)
    assert copy.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
