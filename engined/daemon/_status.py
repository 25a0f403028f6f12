"""``engined status``: read GetSystemHealth and ListCircuitBreakers, print a table or JSON.

Exit status: 0 when both replies came (whatever the health they show: a status command
that fails on an unhealthy system cannot show it), 1 when the daemon could not be
reached or refused. ``--json`` prints both replies in the proto3 JSON mapping (the field
names of engined.proto, enums by name), the same shape grpcurl shows.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import grpc
from google.protobuf import json_format

from engined.daemon._dial import Dial
from engined.daemon._status_table import render
from engined.v1 import engined_pb2 as pb
from engined.v1 import engined_pb2_grpc

__all__ = ["as_json", "status"]


def as_json(health: pb.GetSystemHealthResponse, breakers: pb.ListCircuitBreakersResponse) -> str:
    """Both replies as one JSON document: ``{"health": ..., "circuit_breakers": [...]}``."""
    data: dict[str, Any] = {
        "health": json_format.MessageToDict(
            health.health,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        ),
        "circuit_breakers": [
            json_format.MessageToDict(
                b, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
            for b in breakers.circuit_breakers
        ],
    }
    return json.dumps(data, indent=2, sort_keys=False)


def status(
    dial: Dial,
    *,
    timeout: float,
    as_json_output: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Fetch and print the daemon's state; return the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    channel = dial.channel()
    try:
        stub = engined_pb2_grpc.EnginedStub(channel)
        try:
            health = stub.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=timeout)
            breakers = stub.ListCircuitBreakers(pb.ListCircuitBreakersRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = exc.details() if isinstance(exc, grpc.Call) else ""
            reason = "cannot reach the daemon" if code is grpc.StatusCode.UNAVAILABLE else "failed"
            print(f"engined status: {dial.target}: {reason} ({code.name}: {details})", file=err)
            return 1
    finally:
        channel.close()
    if as_json_output:
        print(as_json(health, breakers), file=out)
    else:
        print(render(health.health, breakers.circuit_breakers), file=out)
    return 0
