"""engined's gRPC layer (DESIGN.md §6): resilient client interceptors and the engined.v1 server.

Client side: :class:`RpcPolicy` says how calls to one target are guarded (breaker,
status classification, gRFC A6 retries, budget, default timeout);
:func:`intercept_channel` and :func:`aio_interceptors` put it around a sync or grpc.aio
channel, and :func:`open_channel` / :func:`open_aio_channel` open one with it. An open
breaker fails a call at once with :class:`BreakerOpenRpcError` (sync) or
:class:`AioBreakerOpenRpcError` (grpc.aio).

Server side: :func:`add_to_server` adds ``engined.v1.Engined``, ``grpc.health.v1.Health``
and reflection to a grpc.aio server and returns the :class:`EnginedServices` handle for a
graceful shutdown; :func:`server_credentials` makes TLS or mTLS credentials.

Importing ``engined`` never imports this package (it pulls in grpc); import
``engined.rpc`` where you use gRPC.
"""

from engined.rpc._channel import open_aio_channel, open_channel
from engined.rpc._client_aio import aio_interceptors
from engined.rpc._client_sync import intercept_channel
from engined.rpc._errors import AioBreakerOpenRpcError, BreakerOpenRpcError
from engined.rpc._policy import RpcPolicy, RpcRetryPolicy
from engined.rpc._server import EnginedServices, add_to_server, server_credentials

__all__ = [
    "AioBreakerOpenRpcError",
    "BreakerOpenRpcError",
    "EnginedServices",
    "RpcPolicy",
    "RpcRetryPolicy",
    "add_to_server",
    "aio_interceptors",
    "intercept_channel",
    "open_aio_channel",
    "open_channel",
    "server_credentials",
]
