"""Parsing in the built-in checks, without sockets or processes: URLs, HTTP responses, output."""

from __future__ import annotations

import asyncio
import base64
import errno
import signal
import socket
import ssl

import pytest

from engined.checks._command import summarize
from engined.checks._common import describe_os_error
from engined.checks._http_client import HttpError, Response, _Reader, parse_url
from engined.checks._process import Completed, _Capture


def test_parse_url_fills_in_default_ports_and_a_root_path() -> None:
    """A URL without port or path gets the scheme's port and ``/``."""
    url = parse_url("url", "HTTPS://Example.COM")
    assert (url.scheme, url.host, url.port, url.target) == ("https", "example.com", 443, "/")
    assert url.host_header == "example.com"


def test_parse_url_keeps_the_query_and_drops_the_fragment() -> None:
    """The request target is path and query; a fragment is never sent."""
    url = parse_url("url", "http://h:8080/health/ready?full=1#top")
    assert url.target == "/health/ready?full=1"
    assert url.host_header == "h:8080"


def test_parse_url_percent_encodes_non_ascii_paths() -> None:
    """A non-ASCII path is sent percent-encoded, so the request line stays ASCII."""
    assert parse_url("url", "http://h/état").target == "/%C3%A9tat"


def test_parse_url_brackets_an_ipv6_host_in_the_host_header() -> None:
    """An IPv6 host connects without brackets and is sent with them."""
    url = parse_url("url", "http://[::1]:8080/")
    assert url.host == "::1"
    assert url.host_header == "[::1]:8080"


def test_parse_url_turns_user_info_into_basic_credentials() -> None:
    """``user:pass@`` becomes an Authorization header, percent-decoded first."""
    url = parse_url("url", "http://app:p%40ss@h/")
    assert url.authorization is not None
    scheme, token = url.authorization.split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token) == b"app:p@ss"
    assert b"Authorization: Basic " in url.request()


def test_request_is_a_plain_http11_get_that_closes() -> None:
    """The request has the method, target, Host and Connection: close, and ends the head."""
    request = parse_url("url", "http://h:81/x?y=1").request()
    assert request.startswith(b"GET /x?y=1 HTTP/1.1\r\nHost: h:81\r\n")
    assert b"Connection: close\r\n" in request
    assert request.endswith(b"\r\n\r\n")


def test_follow_resolves_relative_locations_and_keeps_credentials() -> None:
    """A relative Location is resolved against the URL; credentials go along."""
    url = parse_url("url", "http://u:p@h:81/a/b")
    moved = url.follow("../c?d=1")
    assert (moved.host, moved.port, moved.target) == ("h", 81, "/c?d=1")
    assert moved.authorization == url.authorization


def test_follow_reads_an_absolute_location_to_another_origin() -> None:
    """An absolute Location keeps its own host and scheme, for the caller to judge."""
    moved = parse_url("url", "http://h/").follow("https://evil.example:8443/x")
    assert moved.origin == ("https", "evil.example", 8443)


def test_follow_refuses_a_location_that_is_not_http() -> None:
    """A Location to another scheme (ftp, javascript) is no URL to follow."""
    with pytest.raises(ValueError, match="location"):
        parse_url("url", "http://h/").follow("ftp://h/file")


async def _response(raw: bytes) -> Response:
    stream = asyncio.StreamReader(limit=1024)
    stream.feed_data(raw)
    stream.feed_eof()
    reader = _Reader(stream)
    status, headers = await reader.head()
    return Response(reader, status, headers)


async def test_head_reads_status_and_lowercased_headers() -> None:
    """The status code and the headers (names lowercased) are read from the head."""
    response = await _response(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n")
    assert response.status == 503
    assert response.headers == {"retry-after": "5"}


async def test_head_skips_interim_1xx_responses() -> None:
    """A ``100 Continue`` before the real response is skipped."""
    response = await _response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert response.status == 204


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "connection closed before a full response"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n", "connection closed before a full response"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed response (status line)"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "malformed response (status line)"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response (header)"),
        (b"HTTP/1.1 200 OK\r\n" + b"A: " + b"x" * 2000 + b"\r\n\r\n", "line too long"),
        (b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 101 + b"\r\n", "too many headers"),
    ],
)
async def test_head_refuses_what_is_not_http(raw: bytes, reason: str) -> None:
    """A truncated, non-HTTP or oversized head is an HttpError with a short reason."""
    with pytest.raises(HttpError, match=r".*") as caught:
        await _response(raw)
    assert reason in caught.value.reason


async def test_body_is_searched_within_content_length() -> None:
    """With Content-Length, bytes past it (the next response) are not searched."""
    response = await _response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world")
    assert await response.body_contains(b"hell", 1000)
    response = await _response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world")
    assert not await response.body_contains(b"world", 1000)


async def test_chunked_body_is_searched_across_chunk_boundaries() -> None:
    """A needle split over two chunks is found."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = head + b"4;x=y\r\nstat\r\n5\r\nus:ok\r\n0\r\n\r\n"
    assert await (await _response(raw)).body_contains(b"status:ok", 1000)


async def test_body_search_stops_at_the_cap() -> None:
    """Text beyond ``max_body`` bytes is not looked at."""
    raw = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100 + b"needle"
    assert not await (await _response(raw)).body_contains(b"needle", 100)
    assert await (await _response(raw)).body_contains(b"needle", 106)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
    ],
)
async def test_bad_body_framing_is_refused(raw: bytes) -> None:
    """A chunk size that is no hex number or a negative length is malformed."""
    with pytest.raises(HttpError, match=r"malformed"):
        await (await _response(raw)).body_contains(b"ab", 1000)


async def test_a_204_has_no_body_to_search() -> None:
    """A 204 response ends with its head, whatever follows on the connection."""
    raw = b"HTTP/1.1 204 No Content\r\n\r\nneedle"
    assert not await (await _response(raw)).body_contains(b"needle", 1000)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "x"), "connection refused"),
        (OSError(errno.EHOSTUNREACH, "x"), "host unreachable"),
        (OSError(errno.ENETUNREACH, "x"), "network unreachable"),
        (socket.gaierror(socket.EAI_NONAME, "x"), "cannot resolve host"),
        (TimeoutError(), "connect timed out"),
        (ssl.SSLError(1, "x"), "TLS error"),
        (OSError("no errno"), "OSError"),
    ],
)
def test_os_errors_are_described_in_a_few_words(error: OSError, words: str) -> None:
    """Each connect failure becomes a short fixed phrase without addresses."""
    assert describe_os_error(error).startswith(words)


def test_summarize_puts_output_on_one_shortened_line() -> None:
    """Whitespace runs become single spaces and long output is cut with an ellipsis."""
    assert summarize("  a\n\tb  c\n") == "a b c"
    cut = summarize("x" * 500, limit=20)
    assert len(cut) == 20
    assert cut.endswith("…")


@pytest.mark.parametrize(
    ("returncode", "outcome"),
    [(0, "exit 0"), (2, "exit 2"), (-signal.SIGKILL, "killed by SIGKILL"), (-200, "signal 200")],
)
def test_completed_names_its_outcome(returncode: int, outcome: str) -> None:
    """An exit status reads "exit N"; a signal death names the signal."""
    assert outcome in Completed(returncode, "", truncated=False).outcome


async def test_capture_keeps_only_the_first_bytes_but_counts_all() -> None:
    """Output past the limit is dropped yet counted, so truncation is known."""
    capture = _Capture(5)
    capture.pipe_data_received(1, b"abc")
    capture.pipe_data_received(1, b"defgh")
    assert bytes(capture.kept) == b"abcde"
    assert capture.seen == 8
