"""The ``redis`` check: PING (and optionally SET/GET a key) over one connection it keeps.

The check is a small Redis client of its own (RESP2 on asyncio streams, :mod:`._resp`; no
redis-py in the library). It opens one connection, authenticates once, and reuses it for
every call, as a service's client would, so what it watches is "can a client that is
connected talk to Redis fast enough", not only "does the port accept".

Any failure drops the connection: after a timeout or a cancellation the stream may still
deliver a late reply, which would answer the next command. What happens next is the
``reconnect`` mode:

* ``"auto"`` (default): the next call opens a new connection, so the check recovers by
  itself, one attempt per check interval;
* ``"heal"``: calls report UNHEALTHY "disconnected" without touching the network until
  :meth:`RedisCheck.reconnect` (what :class:`RedisReconnectHeal` calls) succeeds. Reconnect
  attempts then follow the manager's heal backoff (``heal_backoff_initial``,
  ``heal_backoff_multiplier``, ``heal_backoff_max``, ``heal_max_attempts``), so a dead
  Redis is not hammered and the attempts show as heals in the health output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Final, Literal

from engined._clock import SYSTEM_CLOCK, Clock
from engined.checks._common import (
    ConnectError,
    Identity,
    connect,
    describe_os_error,
    format_host_port,
    millis,
    optional_seconds,
    optional_text,
    parse_host_port,
    secret_from_env,
)
from engined.checks._resp import ProtocolError, Reply, RespError, encode_command, read_reply
from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = ["KEY_TTL_MS", "RedisCheck", "RedisReconnectHeal"]

_log = logging.getLogger("engined.checks")

KEY_TTL_MS: Final = 10_000
"""The expiry of the value the check writes to ``key``: it cleans up after itself."""

_PING: Final = encode_command("PING")
_AUTH_WORDS: Final = {"NOAUTH": "authentication required (NOAUTH)"}


class _Failure(Exception):
    """The connection failed or the peer is not Redis; ``reason`` is a few safe words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RedisCheck:
    """HEALTHY when Redis answers PING with PONG (and ``key`` reads back) fast enough.

    One connection is opened on the first call and reused; ``AUTH`` is sent once per
    connection. PING, and with ``key`` a ``SET key <unique value> PX 10000`` and a
    ``GET key``, are written together (one round trip) and timed on ``clock``:
    ``details["latency_ms"]``. Slower than ``degraded_latency`` is DEGRADED, slower than
    ``unhealthy_latency`` UNHEALTHY. An unreachable server, a lost connection, an
    authentication failure, an error reply or a peer that does not speak RESP is
    UNHEALTHY with a few fixed words and at most the error's code ("authentication failed
    (WRONGPASS)", "SET failed: READONLY"): never the password, never the server's text.

    Args:
        target: ``"host:port"`` (``"[v6addr]:port"`` for IPv6).
        password_env: The environment variable holding the AUTH password, read now; unset
            or empty is refused. ``None``: no AUTH.
        username: The ACL user for ``AUTH username password`` (Redis 6+); needs
            ``password_env``.
        key: A key to write a unique value to (expiring after :data:`KEY_TTL_MS`) and read
            back, proving writes work; ``None`` checks with PING only.
        degraded_latency: Seconds above which a round trip is DEGRADED; ``None``: never.
        unhealthy_latency: Seconds above which it is UNHEALTHY; ``None``: never.
        timeout: Seconds one call may take (connecting included) before it is UNHEALTHY
            "timed out"; ``None`` leaves it to the manager's timeout, which cancels it.
        reconnect: ``"auto"`` or ``"heal"``, see the module's docstring.
        name: The component name put on results (the manager uses the registered one).
        component_type: The component type put on results.
        clock: What the round trip is measured with.

    Raises:
        TypeError: An argument has the wrong type (the message names it).
        ValueError: An argument has a bad value (the message names it).
    """

    __slots__ = (
        "_broken",
        "_counter",
        "_host_port",
        "_id",
        "_lock",
        "_loop",
        "_password",
        "_reader",
        "_token",
        "_writer",
        "degraded_latency",
        "key",
        "last_reconnect_error",
        "password_env",
        "reconnect_mode",
        "target",
        "timeout",
        "unhealthy_latency",
        "username",
    )

    def __init__(
        self,
        target: str,
        *,
        password_env: str | None = None,
        username: str | None = None,
        key: str | None = None,
        degraded_latency: float | None = 0.05,
        unhealthy_latency: float | None = 0.2,
        timeout: float | None = None,
        reconnect: Literal["auto", "heal"] = "auto",
        name: str = "redis",
        component_type: ComponentType | str = ComponentType.CACHE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        host, port = parse_host_port("target", target)
        self.target = format_host_port(host, port)
        self.password_env = password_env
        self._password = secret_from_env("password_env", password_env)
        self.username = optional_text("username", username, limit=256)
        if self.username is not None and self._password is None:
            msg = "username needs password_env (AUTH takes both)"
            raise ValueError(msg)
        self.key = optional_text("key", key, limit=512)
        self.degraded_latency = optional_seconds("degraded_latency", degraded_latency)
        self.unhealthy_latency = optional_seconds("unhealthy_latency", unhealthy_latency)
        if (
            self.degraded_latency is not None
            and self.unhealthy_latency is not None
            and self.degraded_latency > self.unhealthy_latency
        ):
            msg = "degraded_latency must be <= unhealthy_latency"
            raise ValueError(msg)
        self.timeout = optional_seconds("timeout", timeout)
        if reconnect not in ("auto", "heal"):
            msg = f"reconnect must be 'auto' or 'heal', got {reconnect!r}"
            raise ValueError(msg)
        self.reconnect_mode: Literal["auto", "heal"] = reconnect
        self._id = Identity(name, component_type, clock)
        self._token = secrets.token_hex(8)
        self._counter = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._broken: str | None = None  # why the connection was lost, until a new one
        self.last_reconnect_error: str | None = None
        """Why the last :meth:`reconnect` failed, or ``None``."""
        self._host_port = (host, port)

    # -- connection ---------------------------------------------------------------------

    def _on_this_loop(self) -> None:
        """Forget a connection and lock made on another event loop (a stream is tied to it)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._drop()
            self._lock = asyncio.Lock()
            self._loop = loop

    def _drop(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nothing to free
                writer.transport.abort()

    async def _open(self) -> None:
        host, port = self._host_port
        try:
            self._reader, self._writer = await connect(host, port)
        except ConnectError as exc:
            raise _Failure(exc.reason) from None
        if self._password is None:
            return
        auth = (
            ("AUTH", self.username, self._password) if self.username else ("AUTH", self._password)
        )
        (reply,) = await self._exchange([encode_command(*(a for a in auth if a is not None))])
        if reply != "OK":
            self._drop()
            code = reply.code if isinstance(reply, RespError) else "unexpected reply"
            msg = f"authentication failed ({code})"
            raise _Failure(msg)

    async def _exchange(self, commands: list[bytes]) -> list[Reply]:
        reader, writer = self._reader, self._writer
        assert reader is not None
        assert writer is not None
        try:
            writer.write(b"".join(commands))
            await writer.drain()
            return [await read_reply(reader) for _ in commands]
        except asyncio.IncompleteReadError:
            msg = "connection lost"
            raise _Failure(msg) from None
        except ProtocolError as exc:
            msg = f"not a Redis server ({exc})"
            raise _Failure(msg) from None
        except OSError as exc:
            raise _Failure(describe_os_error(exc)) from None

    # -- calls ---------------------------------------------------------------------------

    async def __call__(self) -> HealthCheckResult:
        """PING (and SET/GET ``key``) on the kept connection; judge the replies and latency."""
        self._on_this_loop()
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._check()
            except TimeoutError:
                reason = f"timed out after {self.timeout:g} s"
                self._fail(reason)
                return self._unhealthy(reason)

    async def reconnect(self) -> bool:
        """Drop the connection and open a new one; ``True`` once it answers PING.

        This is the heal of a ``reconnect="heal"`` check (:class:`RedisReconnectHeal`);
        on failure :attr:`last_reconnect_error` says why in a few words.
        """
        self._on_this_loop()
        async with self._lock:
            self._drop()
            try:
                async with asyncio.timeout(self.timeout):
                    await self._open()
                    (reply,) = await self._exchange([_PING])
                if reply != "PONG":
                    raise _Failure(_reply_problem("PING", reply))
            except TimeoutError:
                reason = f"timed out after {self.timeout:g} s"
            except _Failure as exc:
                reason = exc.reason
            except BaseException:
                self._fail("cancelled")
                raise
            else:
                self._broken = None
                self.last_reconnect_error = None
                return True
            self._fail(reason)
            self.last_reconnect_error = reason
            return False

    async def close(self) -> None:
        """Drop the connection; a later call opens a new one (idempotent)."""
        self._drop()

    def _fail(self, reason: str) -> None:
        self._drop()
        self._broken = reason

    def _unhealthy(
        self, message: str, details: dict[str, object] | None = None
    ) -> HealthCheckResult:
        return self._id.result(
            HealthStatus.UNHEALTHY, message, {"target": self.target, **(details or {})}
        )

    async def _check(self) -> HealthCheckResult:
        if self._writer is None:
            if self.reconnect_mode == "heal" and self._broken is not None:
                return self._unhealthy(f"{self._broken}; waiting for the reconnect heal")
            try:
                await self._open()
            except _Failure as exc:
                self._fail(exc.reason)
                return self._unhealthy(exc.reason)
            except BaseException:
                self._fail("cancelled")
                raise
        commands = [_PING]
        value = b""
        if self.key is not None:
            self._counter += 1
            value = f"engined:{self._token}:{self._counter}".encode()
            commands += [
                encode_command("SET", self.key, value, "PX", KEY_TTL_MS),
                encode_command("GET", self.key),
            ]
        started = self._id.clock.monotonic()
        try:
            replies = await self._exchange(commands)
        except _Failure as exc:
            self._fail(exc.reason)
            return self._unhealthy(exc.reason)
        except BaseException:  # cancelled or timed out: a late reply would desync the stream
            self._fail("cancelled (the check's timeout?)")
            raise
        latency = millis(self._id.clock.monotonic() - started)
        return self._judge(replies, value, latency)

    def _judge(self, replies: list[Reply], value: bytes, latency: float) -> HealthCheckResult:
        details: dict[str, object] = {"target": self.target, "latency_ms": latency}
        problem = None
        if replies[0] != "PONG":
            problem = _reply_problem("PING", replies[0])
        elif self.key is not None:
            if replies[1] != "OK":
                problem = _reply_problem("SET", replies[1])
            elif isinstance(replies[2], RespError):
                problem = _reply_problem("GET", replies[2])
            elif replies[2] is None:
                problem = "the key was gone when read back (expired or evicted)"
            elif replies[2] != value:
                problem = "the key read back a different value"
        if problem is not None:
            return self._unhealthy(problem, details)
        what = "PONG" if self.key is None else "PONG, SET and GET"
        said = f"{what} in {latency:.1f} ms"
        if self.unhealthy_latency is not None and latency > self.unhealthy_latency * 1000:
            limit = self.unhealthy_latency * 1000
            return self._unhealthy(f"too slow: {said} (unhealthy above {limit:g} ms)", details)
        if self.degraded_latency is not None and latency > self.degraded_latency * 1000:
            limit = self.degraded_latency * 1000
            return self._id.result(
                HealthStatus.DEGRADED, f"slow: {said} (degraded above {limit:g} ms)", details
            )
        return self._id.result(HealthStatus.HEALTHY, said, details)

    def __repr__(self) -> str:
        auth = f", password_env={self.password_env!r}" if self.password_env else ""
        return f"RedisCheck({self.target!r}{auth})"


def _reply_problem(command: str, reply: Reply) -> str:
    """A few words for a reply that is not the expected one: the error code at most."""
    if isinstance(reply, RespError):
        return _AUTH_WORDS.get(reply.code) or f"{command} failed: {reply.code[:32]}"
    return f"unexpected reply to {command}"


class RedisReconnectHeal:
    """The heal of a :class:`RedisCheck`: drop its connection and open a new one.

    Success means the new connection answered PING. The manager paces the attempts with
    its heal backoff, so give the check ``reconnect="heal"`` to make this the only way it
    reconnects; with ``"auto"`` the check reconnects by itself and this only speeds it up.

    Args:
        check: The check whose connection to renew.

    Raises:
        TypeError: ``check`` is not a :class:`RedisCheck`.
    """

    __slots__ = ("check",)

    def __init__(self, check: RedisCheck) -> None:
        if not isinstance(check, RedisCheck):
            msg = f"check must be a RedisCheck, got {type(check).__name__}"
            raise TypeError(msg)
        self.check = check

    async def __call__(self, trigger: HealthCheckResult) -> bool:
        """Reconnect; log why it failed (WARNING on ``engined.checks``) and return False."""
        if await self.check.reconnect():
            _log.info("heal reconnect of %s: connected to %s", trigger.component, self.check.target)
            return True
        _log.warning(
            "heal reconnect of %s failed: %s", trigger.component, self.check.last_reconnect_error
        )
        return False

    def __repr__(self) -> str:
        return f"RedisReconnectHeal({self.check!r})"
