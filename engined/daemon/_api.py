"""The status page's JSON documents: health and breakers as the gRPC API has them.

``/api/v1/health`` and ``/api/v1/breakers`` are the ``GetSystemHealthResponse`` and
``ListCircuitBreakersResponse`` that the Engined service would answer now, in the proto3
JSON mapping with the options ``engined status --json`` uses (the proto's field names,
enums by name, int64 as strings, fields without presence always printed): one model, so
a script can move between gRPC, the CLI and HTTP without translating. They are built by
the same converters as the servicer's replies (:mod:`engined.rpc._convert`) from the
same snapshots, so no request ever runs a check.

``/api/v1/dependencies`` carries what the engined.v1 messages do not: each configured
component's ``depends_on`` parents, read from the running config (a reload changes it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from engined import CircuitBreakerRegistry, HealthCheckManager
from engined.rpc import _convert as convert
from engined.v1 import engined_pb2 as pb

__all__ = [
    "JSON_CONTENT_TYPE",
    "breakers_document",
    "dependencies_document",
    "encode",
    "health_document",
    "message_json",
]

JSON_CONTENT_TYPE = "application/json"


def message_json(message: Message) -> dict[str, Any]:
    """``message`` in the proto3 JSON mapping, as ``engined status --json`` prints it."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def health_response(manager: HealthCheckManager, wall_time_ns: int) -> pb.GetSystemHealthResponse:
    """What GetSystemHealth would answer now."""
    return pb.GetSystemHealthResponse(
        health=convert.system_message(manager.snapshot(), wall_time_ns)
    )


def breakers_response(
    registry: CircuitBreakerRegistry, wall_time_ns: int
) -> pb.ListCircuitBreakersResponse:
    """What ListCircuitBreakers would answer now: every breaker, sorted by name."""
    metrics = sorted((b.metrics for b in registry), key=lambda m: m.name)
    return pb.ListCircuitBreakersResponse(
        circuit_breakers=[convert.breaker_message(m) for m in metrics],
        observed_at=convert.timestamp(wall_time_ns),
    )


def health_document(manager: HealthCheckManager, wall_time_ns: int) -> dict[str, Any]:
    """``/api/v1/health``: ``{"health": {"overall_status": ..., "components": [...], ...}}``."""
    return message_json(health_response(manager, wall_time_ns))


def breakers_document(registry: CircuitBreakerRegistry, wall_time_ns: int) -> dict[str, Any]:
    """``/api/v1/breakers``: ``{"circuit_breakers": [...], "observed_at": ...}``."""
    return message_json(breakers_response(registry, wall_time_ns))


def dependencies_document(
    depends_on: Callable[[], Mapping[str, Sequence[str]]],
) -> dict[str, Any]:
    """``/api/v1/dependencies``: ``{"depends_on": {"web": ["db"], "db": []}}``, sorted."""
    graph = depends_on()
    return {"depends_on": {name: list(graph[name]) for name in sorted(graph)}}


def encode(document: Mapping[str, Any]) -> bytes:
    r"""A document as compact UTF-8 JSON (non-ASCII kept, ``<`` escaped for HTML safety).

    The JSON is served as ``application/json`` with ``nosniff``, so no browser runs it
    as HTML; escaping ``<``, ``>`` and ``&`` as JSON ``\u`` escapes costs nothing and keeps it
    inert even when pasted somewhere that would.
    """
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("utf-8")
