r"""RESP2, the Redis protocol, as much of it as a health check needs: commands out, replies in.

A command is an array of bulk strings (``*1\r\n$4\r\nPING\r\n``), which is binary
safe, so a key or a password is never split or escaped. A reply is one of five types,
read by :func:`read_reply`:

* ``+OK`` (simple string) -> :class:`str`;
* ``-ERR message`` (error) -> :class:`RespError`, returned rather than raised, so a
  pipeline's replies can be matched to its commands one by one;
* ``:42`` (integer) -> :class:`int`;
* ``$5\r\nhello\r\n`` (bulk string) -> :class:`bytes`, ``$-1`` -> ``None`` (nil);
* ``*2 ...`` (array) -> :class:`list`, ``*-1`` -> ``None``.

The peer is not trusted: a port may be something other than Redis, or hostile. Every
length is checked before anything is allocated (:data:`MAX_BULK`, :data:`MAX_ITEMS`,
:data:`MAX_DEPTH`; a line is capped by the stream reader's limit), and anything that is not
RESP2 raises :class:`ProtocolError` with a few words, never the bytes received.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "MAX_BULK",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "ProtocolError",
    "Reply",
    "RespError",
    "encode_command",
    "read_reply",
]

MAX_BULK: Final = 1024 * 1024
"""The longest bulk string accepted (a check reads back a value of a few dozen bytes)."""

MAX_ITEMS: Final = 1024
"""The most items an array reply may announce."""

MAX_DEPTH: Final = 8
"""How deeply arrays may nest."""

_CRLF: Final = b"\r\n"


@dataclass(frozen=True, slots=True)
class RespError:
    """An error reply: ``-WRONGPASS invalid username-password pair`` is code ``WRONGPASS``.

    Attributes:
        code: The first word, upper case by Redis's convention (``ERR``, ``NOAUTH``,
            ``WRONGPASS``, ``LOADING``, ``READONLY``...); the part safe to show.
        text: The rest of the line, as the server wrote it; never put in a message.
    """

    code: str
    text: str


Reply = str | bytes | int | RespError | list["Reply"] | None
"""A decoded reply; arrays hold replies."""


class ProtocolError(Exception):
    """The peer did not speak RESP2; the message says how, in a few words."""


class Source(Protocol):
    """What a reply is read from: :class:`asyncio.StreamReader` is one."""

    async def readuntil(self, separator: bytes = ...) -> bytes:
        """Bytes up to and including ``separator``."""
        ...

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes."""
        ...


def encode_command(*args: str | bytes | int) -> bytes:
    """``args`` as a RESP array of bulk strings; str as UTF-8, int in decimal.

    Raises:
        TypeError: An argument is none of str, bytes or int (a bool is refused too).
        ValueError: There are no arguments.
    """
    if not args:
        msg = "a command needs at least its name"
        raise ValueError(msg)
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, str | bytes | int):
            msg = f"a command argument must be str, bytes or int, got {type(arg).__name__}"
            raise TypeError(msg)
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts += [b"$%d\r\n" % len(data), data, _CRLF]
    return b"".join(parts)


async def read_reply(source: Source) -> Reply:
    """Read one whole reply from ``source``.

    Raises:
        ProtocolError: What arrived is not a RESP2 reply, or is larger than the caps.
        asyncio.IncompleteReadError: The connection ended in the middle of a reply (or
            before it began).
    """
    return await _read(source, 0)


async def _line(source: Source) -> bytes:
    try:
        line = await source.readuntil(_CRLF)
    except asyncio.LimitOverrunError:
        msg = "reply line too long"
        raise ProtocolError(msg) from None
    except ValueError:  # StreamReader reports an overrun this way once the limit is hit
        msg = "reply line too long"
        raise ProtocolError(msg) from None
    return line[:-2]


def _number(raw: bytes, what: str) -> int:
    text = raw[1:] if raw[:1] == b"-" else raw
    if not text or not text.isdigit() or len(text) > 19:
        msg = f"bad {what}"
        raise ProtocolError(msg)
    return int(raw)


async def _read(source: Source, depth: int) -> Reply:
    line = await _line(source)
    if not line:
        msg = "empty reply line"
        raise ProtocolError(msg)
    kind, body = line[:1], line[1:]
    if kind == b"+":
        return body.decode("utf-8", errors="replace")
    if kind == b"-":
        code, _, text = body.decode("utf-8", errors="replace").partition(" ")
        return RespError(code or "ERR", text)
    if kind == b":":
        return _number(body, "integer")
    if kind == b"$":
        size = _number(body, "bulk length")
        if size == -1:
            return None
        if size < 0:
            msg = "bad bulk length"
            raise ProtocolError(msg)
        if size > MAX_BULK:
            msg = f"bulk reply too large ({size} bytes, at most {MAX_BULK})"
            raise ProtocolError(msg)
        data = await source.readexactly(size + 2)
        if data[-2:] != _CRLF:
            msg = "bulk reply not terminated by CRLF"
            raise ProtocolError(msg)
        return data[:-2]
    if kind == b"*":
        count = _number(body, "array length")
        if count == -1:
            return None
        if count < 0:
            msg = "bad array length"
            raise ProtocolError(msg)
        if count > MAX_ITEMS:
            msg = f"array reply too large ({count} items, at most {MAX_ITEMS})"
            raise ProtocolError(msg)
        if depth >= MAX_DEPTH:
            msg = f"arrays nested deeper than {MAX_DEPTH}"
            raise ProtocolError(msg)
        return [await _read(source, depth + 1) for _ in range(count)]
    msg = "not a RESP2 reply"
    raise ProtocolError(msg)
