"""What the built-in checks share: argument checks, results, addresses and connecting.

A check builds a well-formed :class:`HealthCheckResult` itself (the manager then puts the
registered name and type on it), so each check carries a ``name`` and a
``component_type``; both are checked at construction like every other argument, so a bad
config fails before anything starts.

Connecting tries each address ``host`` resolves to, in order, and reports why the first
one failed in a few words. ``asyncio.open_connection`` would do the trying itself, but on
Python 3.11 a host with two addresses (``localhost``: ``::1`` and ``127.0.0.1``) that both
refuse fails with one ``OSError("Multiple exceptions: ...")`` that has no errno, and the
message would be a paragraph instead of "connection refused".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import math
import os
import re
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Final

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core._health_model import (
    HealthCheckResult,
    HealthStatus,
    parse_component_type,
)
from engined.core._validate import check_clock, check_name

__all__ = [
    "ConnectError",
    "Identity",
    "STREAM_LIMIT",
    "close_quietly",
    "connect",
    "describe_os_error",
    "format_host_port",
    "millis",
    "optional_seconds",
    "optional_text",
    "parse_host_port",
    "secret_from_env",
]

STREAM_LIMIT: Final = 64 * 1024
"""Longest line a check's stream reader accepts (a status line or a header)."""

_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_ERRNO_WORDS: Final = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "connect timed out",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EADDRNOTAVAIL: "address not available",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


class Identity:
    """The name and component type a check puts on its results, checked at construction.

    Args:
        name: The component name for results; the manager replaces it with the registered one.
        component_type: A :class:`ComponentType` or its name in any case.
        clock: What latencies are measured with.
    """

    __slots__ = ("clock", "component_type", "name")

    def __init__(self, name: object, component_type: object, clock: object = SYSTEM_CLOCK) -> None:
        self.name = check_name("name", name)
        self.component_type = parse_component_type("component_type", component_type)
        self.clock: Clock = check_clock("clock", clock)

    def result(
        self,
        status: HealthStatus,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        error: str | None = None,
    ) -> HealthCheckResult:
        """A result of this check with ``status``, a short ``message`` and ``details``."""
        return HealthCheckResult(
            self.name,
            self.component_type,
            status,
            message=message,
            details=dict(details or {}),
            error=error,
        )


def millis(seconds: float) -> float:
    """Seconds as milliseconds rounded to a microsecond, for ``details``."""
    return round(max(seconds, 0.0) * 1000.0, 3)


def parse_host_port(param: str, value: object) -> tuple[str, int]:
    """Split ``"host:port"`` or ``"[v6]:port"`` into its host and a port in 1..65535.

    A bare IPv6 address with a port (``::1:80``) is refused: it cannot be split for sure.

    Raises:
        TypeError: ``value`` is not a str.
        ValueError: It is not host:port; the message names ``param``.
    """
    if not isinstance(value, str):
        msg = f"{param} must be a str 'host:port', got {type(value).__name__}"
        raise TypeError(msg)
    shape = f"{param} must be 'host:port' ('[v6addr]:port' for IPv6)"
    text = value.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            msg = f"{shape}, got {value!r}"
            raise ValueError(msg)
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            msg = f"{param}: {host!r} in brackets is not an IPv6 address"
            raise ValueError(msg) from None
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or not host or ":" in host:
            msg = f"{shape}, got {value!r}"
            raise ValueError(msg)
        try:
            host.encode("idna")  # what resolving it does; empty or overlong labels fail
        except UnicodeError:
            bad = True
        else:
            bad = any(char.isspace() or char in "/@?#" for char in host)
        if bad:
            msg = f"{param}: {host!r} is not a host name or address"
            raise ValueError(msg)
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        msg = f"{param}: the port must be a number in 1..65535, got {port_text!r}"
        raise ValueError(msg)
    return host, int(port_text)


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ConnectError(Exception):
    """Connecting failed; ``reason`` says why in a few words (no addresses, no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe_os_error(exc: OSError) -> str:
    """A few words for why a connection failed: "connection refused", "host unreachable"..."""
    if isinstance(exc, socket.gaierror):
        return "cannot resolve host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or "verify failed"
        return f"TLS certificate not trusted ({detail})"
    if isinstance(exc, ssl.SSLError):  # made by hand, it may lack its attributes
        return f"TLS error ({getattr(exc, 'reason', None) or type(exc).__name__})"
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    if exc.errno is not None:
        return _ERRNO_WORDS.get(exc.errno) or os.strerror(exc.errno).lower()
    return type(exc).__name__


async def connect(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a stream to the first address of ``host`` that accepts, trying them in order.

    Raises:
        ConnectError: Nothing accepted; ``reason`` describes the first address's failure
            (or a failure to resolve ``host``).
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(describe_os_error(exc)) from None
    except UnicodeError:  # a name IDNA cannot encode (an empty label, one too long)
        msg = "cannot resolve host"
        raise ConnectError(msg) from None
    if not infos:
        msg = "cannot resolve host"
        raise ConnectError(msg)
    first: OSError | None = None
    for family, _, _, _, address in infos:
        try:
            return await asyncio.open_connection(
                str(address[0]),
                port,
                family=family,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context is not None else None,
                limit=STREAM_LIMIT,
            )
        except OSError as exc:
            first = first or exc
    assert first is not None  # infos is not empty, so something failed
    raise ConnectError(describe_os_error(first)) from None


async def close_quietly(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    """Close a stream and wait for it; a peer that already reset it is no failure of ours.

    With ``abort`` the connection is dropped at once (unread data discarded, no TLS
    close_notify): a graceful TLS shutdown waits up to 30 s for a peer that may still be
    sending a body nobody reads, or may hang, which a cancelled check must not do.
    """
    if abort:
        writer.transport.abort()
    else:
        writer.close()
    with contextlib.suppress(OSError):  # ssl.SSLError included
        await writer.wait_closed()


def optional_seconds(param: str, value: object) -> float | None:
    """``value`` as seconds: ``None``, or a finite number > 0 (a bool is refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{param} must be a number of seconds or None, got {type(value).__name__}"
        raise TypeError(msg)
    if not math.isfinite(value) or value <= 0:
        msg = f"{param} must be a finite number > 0, got {value!r}"
        raise ValueError(msg)
    return float(value)


def optional_text(param: str, value: object, *, limit: int) -> str | None:
    """``value`` if ``None`` or 1-``limit`` characters without NUL or surrounding spaces."""
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{param} must be a str or None, got {type(value).__name__}"
        raise TypeError(msg)
    if not 0 < len(value) <= limit or "\0" in value or value != value.strip():
        msg = f"{param} must be 1-{limit} characters, no NUL, no surrounding spaces"
        raise ValueError(msg)
    return value


def secret_from_env(param: str, env: object) -> str | None:
    """The secret in the environment variable ``env`` names (``None`` for no name).

    Read once, at construction, so a missing secret fails with the config. The value is
    never put in a message: only the variable's name is.
    """
    if env is None:
        return None
    if not isinstance(env, str):
        msg = f"{param} must be a str naming an environment variable, got {type(env).__name__}"
        raise TypeError(msg)
    if not _ENV_NAME.fullmatch(env):
        msg = f"{param} must be an environment variable name, got {env!r}"
        raise ValueError(msg)
    value = os.environ.get(env)
    if not value:
        msg = f"{param}: the environment variable {env!r} is not set or empty"
        raise ValueError(msg)
    return value
