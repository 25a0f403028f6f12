"""engined's gRPC layer (DESIGN.md §6): resilient client interceptors and the engined.v1 server.

Importing ``engined`` never imports this package (it pulls in grpc); import
``engined.rpc`` where you use gRPC.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names and the private module each lives in. Resolved on first use while the layer
# is being built; replaced by plain imports once every module exists.
_EXPORTS = {
    "AioBreakerOpenRpcError": "engined.rpc._errors",
    "BreakerOpenRpcError": "engined.rpc._errors",
    "RpcPolicy": "engined.rpc._policy",
    "RpcRetryPolicy": "engined.rpc._policy",
    "add_to_server": "engined.rpc._server",
    "aio_interceptors": "engined.rpc._client_aio",
    "intercept_channel": "engined.rpc._client_sync",
    "open_aio_channel": "engined.rpc._channel",
    "open_channel": "engined.rpc._channel",
    "server_credentials": "engined.rpc._server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'engined.rpc' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)
