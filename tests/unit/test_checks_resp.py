"""RESP2 commands and replies (engined.checks._resp), and RedisCheck's argument checks.

Replies are fed to a real asyncio.StreamReader, whole or cut short, so no socket and no
sleeping is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engined.checks import RedisCheck, RedisReconnectHeal
from engined.checks._resp import (
    MAX_BULK,
    MAX_DEPTH,
    MAX_ITEMS,
    ProtocolError,
    Reply,
    RespError,
    encode_command,
    read_reply,
)
from engined.testing import FakeClock


def _reader(data: bytes, *, eof: bool = True, limit: int = 64 * 1024) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def _parse(data: bytes) -> Reply:
    return await read_reply(_reader(data))


def test_a_command_is_an_array_of_bulk_strings() -> None:
    """PING, and SET with a str, bytes and an int, encode as RESP arrays of bulk strings."""
    assert encode_command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert encode_command("SET", "k", b"v\r\n", "PX", 100) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\nPX\r\n$3\r\n100\r\n"
    )


def test_a_command_argument_is_length_prefixed_in_utf8_bytes() -> None:
    """A non-ASCII argument's length counts its UTF-8 bytes, not its characters."""
    assert encode_command("GET", "ключ") == b"*2\r\n$3\r\nGET\r\n$8\r\n" + "ключ".encode() + b"\r\n"


@pytest.mark.parametrize("bad", [None, 1.5, True, ["x"]])
def test_a_command_refuses_arguments_it_cannot_encode(bad: Any) -> None:
    """Anything but str, bytes or int (a bool included) is a TypeError naming the type."""
    with pytest.raises(TypeError, match=type(bad).__name__):
        encode_command("SET", bad)


def test_an_empty_command_is_refused() -> None:
    """A command needs at least its name."""
    with pytest.raises(ValueError, match="at least its name"):
        encode_command()


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"+PONG\r\n", "PONG"),
        (b"+\r\n", ""),
        (b":42\r\n", 42),
        (b":-7\r\n", -7),
        (b"$5\r\nhello\r\n", b"hello"),
        (b"$0\r\n\r\n", b""),
        (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"*0\r\n", []),
        (b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n+OK\r\n", [1, b"x", ["OK"]]),
        (b"-ERR unknown command 'FOO'\r\n", RespError("ERR", "unknown command 'FOO'")),
        (
            b"-WRONGPASS invalid username-password pair\r\n",
            RespError("WRONGPASS", "invalid username-password pair"),
        ),
        (b"-NOAUTH\r\n", RespError("NOAUTH", "")),
        (b"-\r\n", RespError("ERR", "")),
    ],
)
async def test_each_reply_type_decodes(data: bytes, reply: Reply) -> None:
    """Simple strings, integers, bulk strings (binary-safe), nil, arrays and errors decode."""
    assert await _parse(data) == reply


async def test_pipelined_replies_are_read_one_at_a_time() -> None:
    """Three replies in one buffer are three reads, in order, nothing left over."""
    reader = _reader(b"+PONG\r\n+OK\r\n$3\r\nabc\r\n")
    assert [await read_reply(reader) for _ in range(3)] == ["PONG", "OK", b"abc"]
    assert reader.at_eof()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n", "not a RESP2 reply"),
        (b"\r\n", "empty reply line"),
        (b":12x\r\n", "bad integer"),
        (b":\r\n", "bad integer"),
        (b":99999999999999999999\r\n", "bad integer"),
        (b"$abc\r\n", "bad bulk length"),
        (b"$-2\r\n", "bad bulk length"),
        (b"$3\r\nabcde", "not terminated by CRLF"),
        (b"*-5\r\n", "bad array length"),
        (b"*x\r\n", "bad array length"),
        (b"$%d\r\n" % (MAX_BULK + 1), "bulk reply too large"),
        (b"*%d\r\n" % (MAX_ITEMS + 1), "array reply too large"),
        (b"*1\r\n" * (MAX_DEPTH + 1) + b":1\r\n", "nested deeper"),
        (b"%2\r\n", "not a RESP2 reply"),  # a RESP3 map: never asked for
    ],
)
async def test_garbage_is_a_short_protocol_error(data: bytes, words: str) -> None:
    """What is not RESP2, or is over a cap, raises ProtocolError in words, not the bytes."""
    with pytest.raises(ProtocolError, match=words) as caught:
        await _parse(data)
    assert len(str(caught.value)) < 80


async def test_a_bulk_length_over_the_cap_allocates_nothing() -> None:
    """A reply announcing 2 GiB is refused from its header, before any body is read."""
    reader = _reader(b"$2147483648\r\n", eof=False)
    with pytest.raises(ProtocolError, match="too large"):
        await read_reply(reader)


async def test_an_endless_line_is_refused_at_the_readers_limit() -> None:
    """A line longer than the stream's limit is "reply line too long", not a hang."""
    reader = _reader(b"+" + b"x" * 200, eof=False, limit=64)
    with pytest.raises(ProtocolError, match="reply line too long"):
        await read_reply(reader)


@pytest.mark.parametrize(
    "data", [b"", b"+PON", b"$5\r\nhel", b"*2\r\n:1\r\n", b"$5\r\nhello", b"-ERR"]
)
async def test_a_reply_cut_short_is_an_incomplete_read(data: bytes) -> None:
    """A connection ending mid-reply raises IncompleteReadError (the check's "connection lost")."""
    with pytest.raises(asyncio.IncompleteReadError):
        await _parse(data)


@given(st.binary(max_size=200))
async def test_any_bytes_parse_or_fail_cleanly(data: bytes) -> None:
    """Arbitrary bytes give a reply, a ProtocolError or an IncompleteReadError; nothing else."""
    with contextlib.suppress(ProtocolError, asyncio.IncompleteReadError):
        await _parse(data)


@given(st.lists(st.binary(max_size=50), min_size=1, max_size=5))
async def test_an_encoded_command_reads_back_as_the_same_bulk_strings(args: list[bytes]) -> None:
    """A command is itself a RESP array: reading it back gives the arguments unchanged."""
    assert await _parse(encode_command(*args)) == args


# -- RedisCheck's arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"target": "redis"}, ValueError, "target must be 'host:port'"),
        ({"target": 6379}, TypeError, "target must be a str"),
        ({"password_env": "NO_SUCH_VARIABLE_XYZ"}, ValueError, "password_env: the environment"),
        ({"password_env": "bad name"}, ValueError, "password_env must be an environment"),
        ({"password_env": 1}, TypeError, "password_env must be a str"),
        ({"username": "bob"}, ValueError, "username needs password_env"),
        ({"key": ""}, ValueError, "key must be 1-512 characters"),
        ({"key": 5}, TypeError, "key must be a str"),
        ({"degraded_latency": 0}, ValueError, "degraded_latency must be a finite number > 0"),
        ({"unhealthy_latency": float("inf")}, ValueError, "unhealthy_latency must be a finite"),
        ({"unhealthy_latency": True}, TypeError, "unhealthy_latency must be a number"),
        ({"degraded_latency": 0.5}, ValueError, "degraded_latency must be <= unhealthy_latency"),
        ({"timeout": -1}, ValueError, "timeout must be a finite number > 0"),
        ({"reconnect": "never"}, ValueError, "reconnect must be 'auto' or 'heal'"),
        ({"component_type": "kettle"}, ValueError, "component_type"),
        ({"clock": object()}, TypeError, "clock"),
    ],
)
def test_a_bad_argument_is_refused_naming_it(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    """Each bad argument raises at construction, its name in the message."""
    arguments = {"target": "127.0.0.1:6379", **kwargs}
    with pytest.raises(error, match=words):
        RedisCheck(**arguments)


def test_the_password_is_read_at_construction_and_shown_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """password_env is read once; repr names the variable, never its value."""
    monkeypatch.setenv("REDIS_PW", "hunter2-secret")
    check = RedisCheck("127.0.0.1:6379", password_env="REDIS_PW", username="app")
    monkeypatch.delenv("REDIS_PW")
    assert repr(check) == "RedisCheck('127.0.0.1:6379', password_env='REDIS_PW')"
    assert "hunter2" not in repr(check)


def test_the_defaults_are_a_cache_with_50_and_200_ms_bounds() -> None:
    """Defaults: component type cache, DEGRADED above 50 ms, UNHEALTHY above 200 ms, auto."""
    check = RedisCheck("localhost:6379", clock=FakeClock())
    assert (check.degraded_latency, check.unhealthy_latency) == (0.05, 0.2)
    assert check.reconnect_mode == "auto"
    assert check.timeout is None


def test_either_latency_bound_may_be_turned_off() -> None:
    """None for a bound turns it off, so the other needs no ordering against it."""
    assert RedisCheck("h:1", degraded_latency=None, unhealthy_latency=0.01).degraded_latency is None
    assert RedisCheck("h:1", degraded_latency=1.0, unhealthy_latency=None).unhealthy_latency is None


def test_the_reconnect_heal_needs_a_redis_check() -> None:
    """RedisReconnectHeal refuses anything but a RedisCheck, naming what it got."""
    with pytest.raises(TypeError, match="check must be a RedisCheck, got str"):
        RedisReconnectHeal("127.0.0.1:6379")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("latency_ms", "status", "message"),
    [
        (50.0, "healthy", "PONG in 50.0 ms"),
        (50.001, "degraded", "slow: PONG in 50.0 ms (degraded above 50 ms)"),
        (200.0, "degraded", "slow: PONG in 200.0 ms (degraded above 50 ms)"),
        (200.5, "unhealthy", "too slow: PONG in 200.5 ms (unhealthy above 200 ms)"),
    ],
)
def test_the_verdict_follows_the_round_trip_against_both_bounds(
    latency_ms: float, status: str, message: str
) -> None:
    """At most 50 ms is HEALTHY, above it DEGRADED, above 200 ms UNHEALTHY (bounds included)."""
    result = RedisCheck("127.0.0.1:6379", clock=FakeClock())._judge(["PONG"], b"", latency_ms)
    assert (result.status.value, result.message) == (status, message)
    assert result.details["latency_ms"] == latency_ms


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        (
            [RespError("NOAUTH", "Authentication required."), "OK", b"mine"],
            "authentication required (NOAUTH)",
        ),
        ([RespError("LOADING", "Redis is loading"), "OK", b"mine"], "PING failed: LOADING"),
        ([b"PONG", "OK", b"mine"], "unexpected reply to PING"),
        (["PONG", RespError("READONLY", "replica"), b"mine"], "SET failed: READONLY"),
        (["PONG", "OK", None], "the key was gone when read back (expired or evicted)"),
        (["PONG", "OK", b"other"], "the key read back a different value"),
        (["PONG", "OK", RespError("WRONGTYPE", "x")], "GET failed: WRONGTYPE"),
    ],
)
def test_a_wrong_reply_is_unhealthy_with_its_error_code_only(
    replies: list[Reply], message: str
) -> None:
    """Error replies show their code, never the server's text; other surprises say so."""
    check = RedisCheck("127.0.0.1:6379", key="k", clock=FakeClock())
    result = check._judge(replies, b"mine", 0.1)
    assert (result.status.value, result.message) == ("unhealthy", message)
