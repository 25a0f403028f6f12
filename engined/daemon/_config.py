"""The daemon's config file as pydantic models: what each TOML key means and may hold.

Every model refuses keys it does not know and values of the wrong type (``strict``: a
TOML string is never read as a number), so a typo fails the load instead of being
ignored. A check is one of five models chosen by its ``type`` (a discriminated union), so
a key that belongs to another type (``service`` on a ``tcp`` check) is refused as unknown.
A ``reconnect`` heal renews a redis check's own connection, so it is refused on the
other types.

The health settings of a check (``interval``, ``timeout``, ``failure_threshold``, ...) are
the fields of :class:`~engined.HealthCheckConfig` under their own names, declared here
with the very field definitions of that class (:func:`_same`), so their defaults and
bounds cannot drift apart; rules between them (``timeout`` <= ``interval``) are
HealthCheckConfig's own, applied when a check is validated.

Reading the file, the rules between checks (duplicate names, unknown parents, cycles)
and the error messages live in :mod:`engined.daemon._config_load`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engined import ComponentType, HealthCheckConfig

__all__ = [
    "CALLABLE_RE",
    "CHECK_TYPES",
    "HEALTH_FIELDS",
    "CheckSpec",
    "CommandCheckSpec",
    "CommandHealSpec",
    "DaemonConfig",
    "ENV_RE",
    "GrpcCheckSpec",
    "HealSpec",
    "HttpCheckSpec",
    "NAME_RE",
    "PythonCheckSpec",
    "PythonHealSpec",
    "ReconnectHealSpec",
    "RedisCheckSpec",
    "ServerSection",
    "TcpCheckSpec",
    "URL_RE",
]

HEALTH_FIELDS = tuple(HealthCheckConfig.model_fields)
"""The HealthCheckConfig fields a check takes under their own names."""

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")
URL_RE = re.compile(r"^https?://[^/\s?#]+(?:[/?#]\S*)?$")
CALLABLE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def _same(name: str) -> Any:
    """HealthCheckConfig's own definition of field ``name``: same type bounds and default."""
    return copy.deepcopy(HealthCheckConfig.model_fields[name])


def _host_port(value: str) -> str:
    match = _HOST_PORT.fullmatch(value)
    if match is None or not 1 <= int(match.group(1)) <= 65535:
        msg = f"must be host:port with a port in 1-65535, got {value!r}"
        raise ValueError(msg)
    return value


Argv = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
"""A command as an argv list, never a shell string: the program, then its arguments."""

Env = dict[str, str]


class ServerSection(BaseModel):
    """``[server]``: where the daemon listens and how it stops. Every key is optional.

    Attributes:
        host: The address both servers bind; loopback unless you choose to expose them.
        port: The gRPC port (engined.v1, grpc.health.v1, reflection); 0 picks a free one.
        metrics_port: The HTTP port of ``/metrics``, ``/healthz`` and ``/readyz``.
        admin_token_env: The environment variable holding the admin RPCs' bearer token;
            unset means admin RPCs are refused (PERMISSION_DENIED).
        tls_cert: PEM certificate chain; with ``tls_key`` the gRPC port speaks TLS.
        tls_key: PEM private key of ``tls_cert``.
        tls_client_ca: PEM CA bundle; clients must present a certificate it signed (mTLS).
        drain: Seconds between NOT_SERVING and the stop on SIGTERM, so probes notice.
        grace: Seconds in-flight RPCs get once the gRPC server stops accepting new ones.
    """

    model_config = _STRICT

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=9003, ge=0, le=65535)
    metrics_port: int = Field(default=9004, ge=0, le=65535)
    admin_token_env: str | None = Field(default=None, pattern=ENV_RE.pattern)
    tls_cert: Path | None = Field(default=None, strict=False)
    tls_key: Path | None = Field(default=None, strict=False)
    tls_client_ca: Path | None = Field(default=None, strict=False)
    drain: float = Field(default=0.5, ge=0, le=30, allow_inf_nan=False)
    grace: float = Field(default=2.0, ge=0, le=30, allow_inf_nan=False)

    @model_validator(mode="after")
    def _tls_pairs(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            msg = "tls_cert and tls_key go together: give both or neither"
            raise ValueError(msg)
        if self.tls_client_ca is not None and self.tls_cert is None:
            msg = "tls_client_ca (mTLS) needs tls_cert and tls_key"
            raise ValueError(msg)
        return self


class CommandHealSpec(BaseModel):
    """``heal = { type = "command", command = [...] }``: run a program; exit 0 is success."""

    model_config = _STRICT

    type: Literal["command"]
    command: Argv
    cwd: Path | None = Field(default=None, strict=False)
    env: Env | None = None


class PythonHealSpec(BaseModel):
    """``heal = { type = "python", target = "pkg.mod:fn" }``: call a function."""

    model_config = _STRICT

    type: Literal["python"]
    target: str = Field(pattern=CALLABLE_RE.pattern)


class ReconnectHealSpec(BaseModel):
    """``heal = { type = "reconnect" }`` (redis checks only): renew the check's connection.

    The check then reconnects only through this heal, so the manager's heal backoff
    (``heal_backoff_*``, ``heal_max_attempts``) paces the attempts on a dead Redis.
    """

    model_config = _STRICT

    type: Literal["reconnect"]


HealSpec = Annotated[
    CommandHealSpec | PythonHealSpec | ReconnectHealSpec, Field(discriminator="type")
]


class _CheckBase(BaseModel):
    """What every check has: a name, a component type, health settings and a heal."""

    model_config = _STRICT
    reconnects: ClassVar[bool] = False
    """Whether a ``reconnect`` heal fits this type (it holds a connection to renew)."""

    name: str = Field(pattern=NAME_RE.pattern)
    component_type: ComponentType = Field(default=ComponentType.CUSTOM, strict=False)
    heal: HealSpec | None = None

    interval: float = _same("interval")
    timeout: float | None = _same("timeout")
    initial_delay: float = _same("initial_delay")
    failure_threshold: int = _same("failure_threshold")
    success_threshold: int = _same("success_threshold")
    degraded_latency: float | None = _same("degraded_latency")
    critical: bool = _same("critical")
    depends_on: tuple[str, ...] = _same("depends_on")
    heal_max_attempts: int = _same("heal_max_attempts")
    heal_backoff_initial: float = _same("heal_backoff_initial")
    heal_backoff_multiplier: float = _same("heal_backoff_multiplier")
    heal_backoff_max: float = _same("heal_backoff_max")
    heal_timeout: float = _same("heal_timeout")
    heal_reset_after: float = _same("heal_reset_after")

    @field_validator("component_type", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("heal")
    @classmethod
    def _reconnect_fits(cls, value: object) -> object:
        if isinstance(value, ReconnectHealSpec) and not cls.reconnects:
            msg = "a reconnect heal is for redis checks only (it renews their connection)"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _relations(self) -> Self:
        self.settings()  # HealthCheckConfig's rules between fields, e.g. timeout <= interval
        return self

    def settings(self) -> HealthCheckConfig:
        """This check's health settings as the manager takes them.

        Raises:
            ValueError: A rule between fields is broken; the message names the fields.
        """
        values = {name: getattr(self, name) for name in HEALTH_FIELDS}
        try:
            return HealthCheckConfig(**values)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("HealthCheckConfig: ")) from None


class TcpCheckSpec(_CheckBase):
    """``type = "tcp"``: healthy when a TCP connection to ``target`` (host:port) opens."""

    type: Literal["tcp"]
    target: str

    _target = field_validator("target")(_host_port)


class HttpCheckSpec(_CheckBase):
    """``type = "http"``: a GET of ``target`` (a URL) answered within ``expect_status``."""

    type: Literal["http"]
    target: str = Field(pattern=URL_RE.pattern)
    expect_status: tuple[int, int] = Field(default=(200, 399), strict=False)
    body_contains: str | None = None

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_or_range(cls, value: object) -> object:
        return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 100 <= low <= high <= 599:
            msg = f"must be a status or [low, high] within 100-599, got {list(value)}"
            raise ValueError(msg)
        return value


class GrpcCheckSpec(_CheckBase):
    """``type = "grpc"``: a grpc.health.v1 Check of ``service`` at ``target`` (host:port)."""

    type: Literal["grpc"]
    target: str
    service: str = ""
    tls: bool = False

    _target = field_validator("target")(_host_port)


class CommandCheckSpec(_CheckBase):
    """``type = "command"``: run ``command``; exit 0 healthy, 1 degraded, other unhealthy."""

    type: Literal["command"]
    command: Argv
    cwd: Path | None = Field(default=None, strict=False)
    env: Env | None = None


class PythonCheckSpec(_CheckBase):
    """``type = "python"``: call ``target`` (``"package.module:function"``)."""

    type: Literal["python"]
    target: str = Field(pattern=CALLABLE_RE.pattern)


class RedisCheckSpec(_CheckBase):
    """``type = "redis"``: PING (and SET/GET ``key``) on a connection kept to ``target``.

    ``degraded_latency`` is the round trip above which the check says DEGRADED (0.05 s
    when not given); like every check's, the manager applies it to the whole run too.
    """

    reconnects: ClassVar[bool] = True

    type: Literal["redis"]
    target: str
    component_type: ComponentType = Field(default=ComponentType.CACHE, strict=False)
    password_env: str | None = Field(default=None, pattern=ENV_RE.pattern)
    username: str | None = Field(default=None, min_length=1, max_length=256)
    key: str | None = Field(default=None, min_length=1, max_length=512)
    unhealthy_latency: float = Field(default=0.2, gt=0, allow_inf_nan=False)

    _target = field_validator("target")(_host_port)

    @model_validator(mode="after")
    def _redis_relations(self) -> Self:
        if self.degraded_latency is not None and self.degraded_latency > self.unhealthy_latency:
            msg = "degraded_latency must be <= unhealthy_latency"
            raise ValueError(msg)
        if self.username is not None and self.password_env is None:
            msg = "username needs password_env (AUTH takes both)"
            raise ValueError(msg)
        return self


CheckSpec = Annotated[
    TcpCheckSpec
    | HttpCheckSpec
    | GrpcCheckSpec
    | CommandCheckSpec
    | PythonCheckSpec
    | RedisCheckSpec,
    Field(discriminator="type"),
]
"""One ``[[checks]]`` entry, its model chosen by ``type``."""

CHECK_TYPES = ("tcp", "http", "grpc", "command", "python", "redis")


class DaemonConfig(BaseModel):
    """A whole config file: ``[server]`` and the ``[[checks]]``; an empty file is valid.

    Attributes:
        server: Where and how to serve.
        checks: The components to check, in file order.
    """

    model_config = _STRICT

    server: ServerSection = ServerSection()
    checks: tuple[CheckSpec, ...] = Field(default=(), strict=False)
