"""The gRPC metrics' parts: label values, bound children, one-shot outcomes, counted requests."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from metrics_support import registry_of, scrape

from engined.metrics import BUCKETS, GrpcClientMetrics, GrpcServerMetrics
from engined.metrics._grpc_families import (
    Outcome,
    cancelled_code,
    code_label,
    split_method,
    status_code,
)
from engined.metrics._grpc_requests import counted_requests
from engined.testing import FakeClock

GO_NAMES = {
    "OK": "OK",
    "CANCELLED": "Canceled",
    "UNKNOWN": "Unknown",
    "INVALID_ARGUMENT": "InvalidArgument",
    "DEADLINE_EXCEEDED": "DeadlineExceeded",
    "NOT_FOUND": "NotFound",
    "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied",
    "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition",
    "ABORTED": "Aborted",
    "OUT_OF_RANGE": "OutOfRange",
    "UNIMPLEMENTED": "Unimplemented",
    "INTERNAL": "Internal",
    "UNAVAILABLE": "Unavailable",
    "DATA_LOSS": "DataLoss",
    "UNAUTHENTICATED": "Unauthenticated",
}


def test_every_status_code_has_go_grpc_prometheus_name() -> None:
    """grpc_code values are Go's codes.Code strings, so existing dashboards match them."""
    assert {code.name: code_label(code) for code in grpc.StatusCode} == GO_NAMES


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/engined.v1.Engined/GetSystemHealth", ("engined.v1.Engined", "GetSystemHealth")),
        (b"/grpc.health.v1.Health/Watch", ("grpc.health.v1.Health", "Watch")),
        ("engined.v1.Engined/Get", ("unknown", "unknown")),
        ("/only-service", ("unknown", "unknown")),
        ("/a/b/c", ("unknown", "unknown")),
        ("//Method", ("unknown", "unknown")),
        ("", ("unknown", "unknown")),
    ],
)
def test_method_paths_split_into_service_and_method_or_unknown(
    path: str | bytes, expected: tuple[str, str]
) -> None:
    """A well-formed path gives package.Service and Method; anything else is unknown/unknown."""
    assert split_method(path) == expected


def test_status_codes_read_from_members_numbers_or_nothing() -> None:
    """A context's code may be a member, grpc's number for it, or None (nothing set)."""
    assert status_code(grpc.StatusCode.NOT_FOUND) is grpc.StatusCode.NOT_FOUND
    assert status_code(5) is grpc.StatusCode.NOT_FOUND
    assert status_code(999) is grpc.StatusCode.UNKNOWN
    assert status_code(None) is None


class _Context:
    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining


def test_a_cut_short_call_is_a_deadline_once_its_time_is_up() -> None:
    """Cancelled with its deadline passed is DEADLINE_EXCEEDED; otherwise CANCELLED."""
    assert cancelled_code(_Context(0.0)) is grpc.StatusCode.DEADLINE_EXCEEDED
    assert cancelled_code(_Context(3.0)) is grpc.StatusCode.CANCELLED
    assert cancelled_code(_Context(None)) is grpc.StatusCode.CANCELLED
    assert cancelled_code(object()) is grpc.StatusCode.CANCELLED


def test_first_call_binds_the_method_children_with_zeros() -> None:
    """A method's series exist from its first call: started, OK handled, messages, histogram."""
    server = GrpcServerMetrics(clock=FakeClock())
    server.method("/pkg.Svc/Get", "unary")
    result = scrape(registry_of(server))
    labels = {"grpc_type": "unary", "grpc_service": "pkg.Svc", "grpc_method": "Get"}
    assert result.value("grpc_server_started_total", **labels) == 0.0
    assert result.value("grpc_server_handled_total", **labels, grpc_code="OK") == 0.0
    assert result.value("grpc_server_msg_received_total", **labels) == 0.0
    assert result.value("grpc_server_handling_seconds_count", **labels) == 0.0
    assert server.method("/pkg.Svc/Get", "unary") is server.method("/pkg.Svc/Get", "unary")


def test_outcome_records_once_with_its_duration_and_the_unary_message() -> None:
    """finish() counts handled, time and (if OK) the unary message once; later calls do nothing."""
    clock = FakeClock()
    client = GrpcClientMetrics(clock=clock)
    method = client.method("/pkg.Svc/Get", "unary")
    outcome = Outcome(method, clock, on_ok=method.received)
    clock.advance(0.003)
    outcome.finish(grpc.StatusCode.OK)
    clock.advance(5.0)
    outcome.finish(grpc.StatusCode.UNAVAILABLE)
    result = scrape(registry_of(client))
    labels = {"grpc_type": "unary", "grpc_service": "pkg.Svc", "grpc_method": "Get"}
    assert result.value("grpc_client_started_total", **labels) == 1.0
    assert result.value("grpc_client_handled_total", **labels, grpc_code="OK") == 1.0
    assert ("grpc_code", "Unavailable") not in {
        pair for key in result.values("grpc_client_handled_total") for pair in key
    }
    assert result.value("grpc_client_msg_received_total", **labels) == 1.0
    assert result.value("grpc_client_handling_seconds_sum", **labels) == pytest.approx(0.003)
    assert result.value("grpc_client_handling_seconds_bucket", **labels, le="0.0025") == 0.0
    assert result.value("grpc_client_handling_seconds_bucket", **labels, le="0.005") == 1.0


def test_outcome_finished_from_many_threads_counts_once(fast_thread_switching: None) -> None:
    """Threads racing to finish one call (reader, done-callback) count it exactly once."""
    client = GrpcClientMetrics(clock=FakeClock())
    method = client.method("/pkg.Svc/Race", "server_stream")
    outcomes = [Outcome(method, FakeClock()) for _ in range(200)]
    barrier = threading.Barrier(4)

    def finish_all() -> None:
        barrier.wait()
        for outcome in outcomes:
            outcome.finish(grpc.StatusCode.OK)

    threads = [threading.Thread(target=finish_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = {"grpc_type": "server_stream", "grpc_service": "pkg.Svc", "grpc_method": "Race"}
    result = scrape(registry_of(client))
    assert result.value("grpc_client_handled_total", **labels, grpc_code="OK") == 200.0


def test_buckets_start_below_a_millisecond_and_reach_ten_seconds() -> None:
    """Handling-time buckets resolve loopback calls (~0.5 ms) and still cover slow ones."""
    assert BUCKETS[0] == 0.0001
    assert BUCKETS[-1] == 10.0
    assert list(BUCKETS) == sorted(BUCKETS)
    assert sum(bucket < 0.001 for bucket in BUCKETS) >= 3


def test_a_request_list_stays_a_sequence_and_counts_every_pass() -> None:
    """A list stays resendable (engined.rpc retries only sequences); each pass counts its sends."""
    sent = []
    requests = counted_requests([1, 2, 3], lambda: sent.append(1))
    assert isinstance(requests, Sequence)
    assert (len(requests), requests[1]) == (3, 2)
    assert list(requests) == [1, 2, 3]
    assert list(requests) == [1, 2, 3]  # a retry sends them again
    assert len(sent) == 6


def test_a_one_shot_iterator_is_counted_as_it_is_consumed() -> None:
    """A generator of requests is counted message by message, lazily."""
    sent = []
    requests = counted_requests(iter("ab"), lambda: sent.append(1))
    assert not isinstance(requests, Sequence)
    assert sent == []
    assert list(requests) == ["a", "b"]
    assert len(sent) == 2


async def test_an_async_request_stream_stays_async() -> None:
    """Async iterables (grpc.aio's write() proxy among them) stay async and are counted."""
    sent = []

    async def source() -> AsyncIterator[int]:
        for item in (1, 2):
            yield item

    requests: Any = counted_requests(source(), lambda: sent.append(1))
    assert hasattr(requests, "__aiter__")
    assert [item async for item in requests] == [1, 2]
    assert len(sent) == 2


async def test_client_metrics_refuse_an_aio_channel_for_intercept_channel() -> None:
    """intercept_channel is for sync channels; an aio channel is refused, pointing elsewhere."""
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    try:
        with pytest.raises(TypeError, match="aio_interceptors"):
            GrpcClientMetrics().intercept_channel(channel)  # type: ignore[arg-type]
    finally:
        await channel.close()
