"""``engined probe``: grpc_health_probe's behaviour and exit codes, without the Go binary.

Exit codes, as grpc_health_probe's (research T17; kubelet and Docker HEALTHCHECK read them):

====  ===================================================================
0     the service is SERVING
1     bad arguments (flags, TLS files)
2     could not connect within ``--connect-timeout``
3     the health RPC failed: an error status (NOT_FOUND for an unknown service
      included), UNIMPLEMENTED, or no answer within ``--rpc-timeout``
4     the service answered, but not SERVING
====  ===================================================================

The connection is awaited first (``channel_ready_future``), as grpc_health_probe dials
with ``WithBlock``, so "cannot connect" (2) and "connected but the RPC failed" (3) stay
apart. One line goes to stdout on success and to stderr otherwise.
"""

from __future__ import annotations

import sys
from typing import Final, TextIO

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from engined.daemon._dial import Dial

__all__ = ["CONNECT_FAILED", "NOT_SERVING", "RPC_FAILED", "SERVING", "probe"]

SERVING: Final = 0
CONNECT_FAILED: Final = 2
RPC_FAILED: Final = 3
NOT_SERVING: Final = 4


def probe(
    dial: Dial,
    service: str,
    *,
    connect_timeout: float,
    rpc_timeout: float,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Check ``service`` at ``dial.target``; print one line; return the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    channel = dial.channel()
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            print(
                f"timeout: failed to connect service {dial.target!r} within {connect_timeout:g}s",
                file=err,
            )
            return CONNECT_FAILED
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            reply = stub.Check(request, timeout=rpc_timeout)
        except grpc.RpcError as exc:
            print(_rpc_failure(exc, rpc_timeout), file=err)
            return RPC_FAILED
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            print(f"service unhealthy (responded with {status!r})", file=err)
            return NOT_SERVING
        print(f"status: {status}", file=out)
        return SERVING
    finally:
        channel.close()


def _rpc_failure(exc: grpc.RpcError, rpc_timeout: float) -> str:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else ""
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return (
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health)"
        )
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"timeout: health rpc did not complete within {rpc_timeout:g}s"
    return f"error: health rpc failed: {code.name}: {details or '(no details)'}"
