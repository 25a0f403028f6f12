"""The ``http`` check: does a GET answer with an expected status (and text)?"""

from __future__ import annotations

import ssl
from typing import Final

from engined._clock import SYSTEM_CLOCK, Clock
from engined.checks._common import ConnectError, Identity, millis
from engined.checks._http_client import HttpError, Response, Url, open_response, parse_url
from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = ["HttpCheck", "MAX_BODY", "MAX_REDIRECTS"]

MAX_BODY: Final = 64 * 1024
"""Bytes of a body searched for ``body_contains``; the rest is never read."""

MAX_REDIRECTS: Final = 5
"""Redirects followed before the check gives up (UNHEALTHY "too many redirects")."""

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


def _status_range(value: object) -> tuple[int, int]:
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(code, int) and not isinstance(code, bool) for code in value)
    ):
        msg = f"expect_status must be a (low, high) pair of ints, got {value!r}"
        raise TypeError(msg)
    low, high = value
    if not 100 <= low <= high <= 599:
        msg = f"expect_status must satisfy 100 <= low <= high <= 599, got ({low}, {high})"
        raise ValueError(msg)
    return low, high


def _needle(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"body_contains must be a str or None, got {type(value).__name__}"
        raise TypeError(msg)
    if not value:
        msg = "body_contains must not be empty (leave it out to skip the body)"
        raise ValueError(msg)
    return value.encode("utf-8")


class HttpCheck:
    """HEALTHY when a GET of ``url`` answers with a status in ``expect_status``.

    The request is HTTP/1.1 on asyncio streams (TLS with the system's default trust for
    ``https``); user info in the URL is sent as Basic credentials and never shown. With
    ``body_contains`` the body must also contain that text (UTF-8) within its first
    :data:`MAX_BODY` bytes; without it the body is not read at all.

    Redirects (301, 302, 303, 307, 308 with a ``Location``) are followed, at most
    :data:`MAX_REDIRECTS`, and only to the same scheme, host and port: a health endpoint
    that sends the checker elsewhere is UNHEALTHY ("redirect to another host"), not a
    reason to send its credentials there. The final response's status is judged.

    Failures are UNHEALTHY with a short message ("HTTP 503, expected 200-399",
    "connection refused"); nothing escapes as an exception. A server that hangs is
    bounded by the manager's timeout, which cancels the request.

    Args:
        url: An ``http://`` or ``https://`` URL.
        expect_status: The inclusive range of passing statuses.
        body_contains: Text the body must contain, or ``None``.
        name: The component name put on results (the manager uses the registered one).
        component_type: The component type put on results.
        clock: What the latency (to the final response's headers) is measured with.

    Raises:
        TypeError: An argument has the wrong type (the message names it).
        ValueError: An argument has a bad value (the message names it, never echoing
            the URL).
    """

    __slots__ = ("_id", "_low_high", "_needle", "_ssl", "_url")

    def __init__(
        self,
        url: str,
        *,
        expect_status: tuple[int, int] = (200, 399),
        body_contains: str | None = None,
        name: str = "http",
        component_type: ComponentType | str = ComponentType.EXTERNAL_API,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._url: Url = parse_url("url", url)
        self._low_high = _status_range(expect_status)
        self._needle = _needle(body_contains)
        self._id = Identity(name, component_type, clock)
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        # Made on first use, once: loading the trust store takes milliseconds.
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def __call__(self) -> HealthCheckResult:
        """GET the URL, following same-origin redirects, and judge the final response."""
        started = self._id.clock.monotonic()
        url = self._url
        context = self._ssl_context() if url.scheme == "https" else None
        redirects = 0
        try:
            while True:
                async with open_response(url, context) as response:
                    location = response.headers.get("location")
                    if response.status not in REDIRECT_STATUSES or not location:
                        latency = millis(self._id.clock.monotonic() - started)
                        return await self._judge(response, latency, redirects)
                if redirects == MAX_REDIRECTS:
                    return self._fail(f"too many redirects (more than {MAX_REDIRECTS})")
                redirects += 1
                try:
                    url = url.follow(location)
                except ValueError:
                    return self._fail("redirect to an invalid location")
                if url.host != self._url.host:
                    return self._fail("redirect to another host")
                if url.origin != self._url.origin:
                    return self._fail("redirect to another scheme or port")
        except (ConnectError, HttpError) as exc:
            return self._fail(exc.reason)

    async def _judge(self, response: Response, latency: float, redirects: int) -> HealthCheckResult:
        low, high = self._low_high
        status = response.status
        details: dict[str, object] = {"status_code": status, "latency_ms": latency}
        if redirects:
            details["redirects"] = redirects
        if not low <= status <= high:
            message = f"HTTP {status}, expected {low}-{high}"
            return self._id.result(HealthStatus.UNHEALTHY, message, details)
        if self._needle is not None and not await response.body_contains(self._needle, MAX_BODY):
            message = f"HTTP {status} but the expected text is not in the body"
            return self._id.result(HealthStatus.UNHEALTHY, message, details)
        return self._id.result(HealthStatus.HEALTHY, f"HTTP {status}", details)

    def _fail(self, reason: str) -> HealthCheckResult:
        return self._id.result(HealthStatus.UNHEALTHY, reason)

    def __repr__(self) -> str:
        return f"HttpCheck({self._url.scheme}://{self._url.host_header}/...)"
