"""``engined status``: read GetSystemHealth and ListCircuitBreakers, print a table or JSON.

Exit status: 0 when both replies came (whatever the health they show: a status command
that fails on an unhealthy system cannot show it), 1 when the daemon could not be
reached or refused. ``--json`` prints both replies in the proto3 JSON mapping (the field
names of engined.proto, enums by name), the same shape grpcurl shows. ``--watch``
(:mod:`engined.daemon._watch`) reads the same two replies once per interval.
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

__all__ = ["as_dict", "as_json", "describe", "fetch", "status"]


def fetch(
    stub: engined_pb2_grpc.EnginedStub, timeout: float
) -> tuple[pb.GetSystemHealthResponse, pb.ListCircuitBreakersResponse]:
    """Both replies, one attempt each.

    Raises:
        grpc.RpcError: The daemon could not be reached or refused.
    """
    health = stub.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=timeout)
    breakers = stub.ListCircuitBreakers(pb.ListCircuitBreakersRequest(), timeout=timeout)
    return health, breakers


def describe(exc: grpc.RpcError) -> tuple[bool, str]:
    """Whether the failure means "unreachable", and ``CODE: details`` for a message."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else ""
    return code is grpc.StatusCode.UNAVAILABLE, f"{code.name}: {details}"


def as_dict(
    health: pb.GetSystemHealthResponse, breakers: pb.ListCircuitBreakersResponse
) -> dict[str, Any]:
    """Both replies as ``{"health": ..., "circuit_breakers": [...]}`` in the proto3 mapping."""
    return {
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


def as_json(health: pb.GetSystemHealthResponse, breakers: pb.ListCircuitBreakersResponse) -> str:
    """Both replies as one JSON document: ``{"health": ..., "circuit_breakers": [...]}``."""
    return json.dumps(as_dict(health, breakers), indent=2, sort_keys=False)


def status(
    dial: Dial,
    *,
    timeout: float,
    as_json_output: bool,
    color: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Fetch and print the daemon's state; return the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    channel = dial.channel()
    try:
        try:
            health, breakers = fetch(engined_pb2_grpc.EnginedStub(channel), timeout)
        except grpc.RpcError as exc:
            unreachable, text = describe(exc)
            reason = "cannot reach the daemon" if unreachable else "failed"
            print(f"engined status: {dial.target}: {reason} ({text})", file=err)
            return 1
    finally:
        channel.close()
    if as_json_output:
        print(as_json(health, breakers), file=out)
    else:
        print(render(health.health, breakers.circuit_breakers, color=color), file=out)
    return 0
