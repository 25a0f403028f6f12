"""Open a channel with engined's interceptors installed and grpc's own retries off.

grpc retries by default (since 1.40, transparent retries included); with engined retrying
in its interceptor, both would retry and the attempts would multiply, so these channels set
``("grpc.enable_retries", 0)`` (gRFC A6, "Disabling retries"). An explicit
``grpc.enable_retries`` in ``options`` is replaced: engined's attempts, budget and breaker
counts are only right when engined makes every attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from engined._clock import SYSTEM_CLOCK, Clock
from engined.rpc._client_aio import aio_interceptors
from engined.rpc._client_sync import intercept_channel
from engined.rpc._policy import RpcPolicy

__all__ = ["open_aio_channel", "open_channel"]

_NO_GRPC_RETRIES = ("grpc.enable_retries", 0)

Options = Sequence[tuple[str, Any]]


def _options(options: Options | None) -> list[tuple[str, Any]]:
    kept = [option for option in options or () if option[0] != _NO_GRPC_RETRIES[0]]
    return [*kept, _NO_GRPC_RETRIES]


def open_channel(
    target: str,
    policy: RpcPolicy | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Options | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> grpc.Channel:
    """Open a sync channel to ``target`` with engined's breaker, retries and deadline.

    Args:
        target: The address (``host:port``, ``dns:///...``); also names the breakers
            (``rpc:<target>``).
        policy: What to do with each call; ``RpcPolicy()`` (the defaults) when ``None``.
        credentials: TLS credentials; ``None`` opens an insecure channel.
        options: Channel options; ``("grpc.enable_retries", 0)`` is added.
        clock: Time for deadlines and backoff sleeps, and the breakers' clock.

    Returns:
        The intercepted channel; closing it closes the underlying one.
    """
    policy = RpcPolicy() if policy is None else policy
    if credentials is None:
        channel = grpc.insecure_channel(target, options=_options(options))
    else:
        channel = grpc.secure_channel(target, credentials, options=_options(options))
    try:
        return intercept_channel(channel, policy, target=target, clock=clock)
    except BaseException:
        channel.close()  # a bad policy or target must not leave a channel open behind it
        raise


def open_aio_channel(
    target: str,
    policy: RpcPolicy | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Options | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> grpc.aio.Channel:
    """Open a grpc.aio channel to ``target`` with engined's breaker, retries and deadline.

    Call it inside the running event loop that will use the channel (grpc/grpc#32480).

    Args:
        target: The address (``host:port``, ``dns:///...``); also names the breakers
            (``rpc:<target>``).
        policy: What to do with each call; ``RpcPolicy()`` (the defaults) when ``None``.
        credentials: TLS credentials; ``None`` opens an insecure channel.
        options: Channel options; ``("grpc.enable_retries", 0)`` is added.
        clock: Time for deadlines and backoff sleeps, and the breakers' clock.
    """
    policy = RpcPolicy() if policy is None else policy
    interceptors = aio_interceptors(policy, target=target, clock=clock)
    if credentials is None:
        return grpc.aio.insecure_channel(
            target, options=_options(options), interceptors=interceptors
        )
    return grpc.aio.secure_channel(
        target, credentials, options=_options(options), interceptors=interceptors
    )
