"""What the client interceptors do with a call: breaker, status classification, retries, timeout.

Retry settings carry gRFC A6's names (``maxAttempts`` is ``max_attempts`` and so on), so a
service config's ``retryPolicy`` reads across. Status codes are given as names in any case
(``"unavailable"``) or as :class:`grpc.StatusCode` members, and are stored as members.
Every refusal is a ``ValueError`` with one line per bad field, each naming it
(``RpcPolicy.retry.max_attempts``, ``RpcPolicy.breaker.failure_threshold``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Self

import grpc
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engined.core._breaker import CircuitBreaker
from engined.core.retry import RetryBudget

__all__ = ["DEFAULT_FAILURE_CODES", "DEFAULT_IGNORED_CODES", "RpcPolicy", "RpcRetryPolicy"]

_CODE = grpc.StatusCode

DEFAULT_FAILURE_CODES: tuple[grpc.StatusCode, ...] = (
    _CODE.UNAVAILABLE,
    _CODE.DEADLINE_EXCEEDED,
    _CODE.INTERNAL,
    _CODE.UNKNOWN,
    _CODE.DATA_LOSS,
    _CODE.RESOURCE_EXHAUSTED,
)
"""Codes that count against the breaker unless a policy says otherwise: the dependency failed."""

DEFAULT_IGNORED_CODES: tuple[grpc.StatusCode, ...] = (_CODE.CANCELLED,)
"""Codes that count neither way: the caller gave up, the dependency said nothing."""

MAX_ATTEMPTS_CAP = 5
"""gRFC A6's client-side limit on ``maxAttempts``: larger values are treated as 5."""

# Settings a policy may not pass to the breaker: the interceptor names the breaker and gives
# it its own clock; exception rules never see an RPC, whose status codes classify it instead.
_NOT_FOR_RPC = {
    "name": "the interceptor names its breakers rpc:<target>[/<service>/<method>]",
    "clock": "pass clock= to intercept_channel or aio_interceptors",
    "record_exceptions": "classify status codes with failure_codes and ignored_codes",
    "ignore_exceptions": "classify status codes with failure_codes and ignored_codes",
    "result_is_failure": "classify status codes with failure_codes and ignored_codes",
}
_BREAKER_SETTINGS = tuple(
    name for name in inspect.signature(CircuitBreaker).parameters if name not in _NOT_FOR_RPC
)


def _status_codes(field: str, value: object) -> tuple[grpc.StatusCode, ...]:
    """Return ``value`` as status code members, in order, without repeats.

    Raises:
        ValueError: ``value`` is not a list of codes, or names an unknown code or OK.
    """
    if isinstance(value, str | grpc.StatusCode) or not isinstance(value, Iterable):
        msg = f'must be a list of status codes, e.g. ["UNAVAILABLE"]; got {_shown(value)}'
        raise ValueError(msg)  # a bare name would be iterated letter by letter
    codes: list[grpc.StatusCode] = []
    for item in value:
        if isinstance(item, grpc.StatusCode):
            code = item
        elif isinstance(item, str) and item.strip().upper() in _CODE.__members__:
            code = grpc.StatusCode[item.strip().upper()]
        else:
            valid = ", ".join(member.name for member in _CODE if member is not _CODE.OK)
            msg = f"unknown status code {_shown(item)}; valid (any case): {valid}"
            raise ValueError(msg)
        if code is _CODE.OK:
            msg = f"OK is the one status a call succeeds with; it cannot be one of the {field}"
            raise ValueError(msg)
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def _shown(value: object) -> str:
    """A bad input as a message may show it: scalars only, strings cut short."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:39] + "…")
    if value is None or isinstance(value, bool | int | float | grpc.StatusCode):
        return repr(value)
    return f"a {type(value).__name__}"


def _refusal(model: type[BaseModel], error: ValidationError) -> ValueError:
    """A ``ValueError`` with one line per bad field, each naming it, without pydantic's links."""
    lines = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        kind, text = problem["type"], problem["msg"].removeprefix("Value error, ")
        where = f"{model.__name__}.{field}" if field else model.__name__
        if kind == "missing":
            lines.append(f"{where} is required")
        elif kind == "extra_forbidden":
            lines.append(f"{where} is not a field; valid: {', '.join(model.model_fields)}")
        elif kind == "value_error" and text.startswith(f"{field}."):
            lines.append(f"{model.__name__}.{text}")  # names a sub-field itself: breaker.<setting>
        elif kind == "value_error":
            lines.extend(_nested(where, line) for line in text.splitlines())
        else:
            lines.append(f"{where}: {text}; got {_shown(problem['input'])}")
    return ValueError("\n".join(lines))


def _nested(where: str, line: str) -> str:
    """Place a nested model's own refusal line at the field that holds it.

    pydantic builds a nested policy through its ``__init__``, whose refusal names the nested
    class (``RpcRetryPolicy.max_attempts: ...``); seen from the outer policy that field is
    ``RpcPolicy.retry.max_attempts``.
    """
    for nested in _Model.__subclasses__():
        name = nested.__name__
        if line.startswith((f"{name}.", f"{name}:")):
            return where + line[len(name) :]
    return f"{where}: {line}"


class _Model(BaseModel):
    """Frozen, strict, no unknown fields; a bad value is a ``ValueError`` naming its field."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _refusal(type(self), exc) from None


class RpcRetryPolicy(_Model):
    """gRFC A6 retries, made by the interceptor: one deadline across every attempt.

    Attributes:
        max_attempts: Attempts in all, the first included: at least 2. A6 caps it at 5, and
            so does engined: a larger value is stored as 5.
        initial_backoff: Cap of the first retry's delay, in seconds; each delay is drawn
            from ``[0, cap]`` (full jitter).
        max_backoff: Largest cap, in seconds; at least ``initial_backoff``.
        backoff_multiplier: Growth of the cap per retry; at least 1 (A6 allows a shrinking
            backoff, which defeats the purpose of backing off).
        retryable_status_codes: Codes worth another attempt. Retry only codes that mean the
            server did not process the request, unless the method is idempotent.
    """

    max_attempts: int = Field(default=3, ge=2)
    initial_backoff: float = Field(default=0.1, gt=0, allow_inf_nan=False)
    max_backoff: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    backoff_multiplier: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    retryable_status_codes: tuple[grpc.StatusCode, ...] = (_CODE.UNAVAILABLE,)

    @field_validator("max_attempts", mode="after")
    @classmethod
    def _cap(cls, value: int) -> int:
        return min(value, MAX_ATTEMPTS_CAP)

    @field_validator("retryable_status_codes", mode="before")
    @classmethod
    def _codes(cls, value: object) -> tuple[grpc.StatusCode, ...]:
        codes = _status_codes("retryable_status_codes", value)
        if not codes:
            msg = "must name at least one code (use retry=None for no retries)"
            raise ValueError(msg)
        return codes

    @model_validator(mode="after")
    def _check_backoff(self) -> Self:
        if self.max_backoff < self.initial_backoff:
            msg = (
                f"max_backoff ({self.max_backoff:g}s) must be >= initial_backoff "
                f"({self.initial_backoff:g}s)"
            )
            raise ValueError(msg)
        return self


class RpcPolicy(_Model):
    """How engined's interceptors guard every call to one target.

    Attributes:
        breaker: Keyword arguments for the target's :class:`engined.CircuitBreaker`
            (``failure_threshold``, ``recovery_timeout``, ...), checked by building one.
            Not ``name`` or ``clock`` (the interceptor sets them), nor the exception rules:
            status codes classify RPCs.
        breaker_scope: ``"target"``: one breaker for the target, ``rpc:<target>``;
            ``"method"``: one per method, ``rpc:<target>/<service>/<method>``.
        failure_codes: Statuses the breaker counts as failures.
        ignored_codes: Statuses it does not count at all (the permit is given back).
            Every other status, OK and the caller's mistakes alike, is a success: the
            dependency answered.
        retry: Retries made by the interceptor, or ``None`` for a single attempt.
        budget: A :class:`engined.RetryBudget` that throttles retries (gRFC A6): share one
            per target. A retryable failure costs a token, an OK earns some back.
        default_timeout: Seconds a call may take, all attempts and backoff included, when
            the caller gives no timeout.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    breaker: dict[str, Any] = Field(default_factory=dict)
    breaker_scope: Literal["target", "method"] = "target"
    failure_codes: tuple[grpc.StatusCode, ...] = DEFAULT_FAILURE_CODES
    ignored_codes: tuple[grpc.StatusCode, ...] = DEFAULT_IGNORED_CODES
    retry: RpcRetryPolicy | None = Field(default_factory=RpcRetryPolicy)
    budget: RetryBudget | None = None
    default_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("breaker", mode="before")
    @classmethod
    def _check_breaker(cls, value: object) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            msg = f"must be a dict of CircuitBreaker settings; got {_shown(value)}"
            raise ValueError(msg)
        settings = dict(value)
        for key in settings:
            if key in _NOT_FOR_RPC:
                msg = f"breaker.{key} cannot be set here: {_NOT_FOR_RPC[key]}"
                raise ValueError(msg)
            if key not in _BREAKER_SETTINGS:
                msg = f"breaker.{key} is not a setting; valid: {', '.join(_BREAKER_SETTINGS)}"
                raise ValueError(msg)
        try:
            CircuitBreaker("rpc:policy", **settings)
        except (TypeError, ValueError) as exc:
            text = str(exc)
            named = next((key for key in _BREAKER_SETTINGS if text.startswith(key)), None)
            msg = f"breaker.{text}" if named is not None else f"breaker: {text}"
            raise ValueError(msg) from None
        return settings

    @field_validator("failure_codes", "ignored_codes", mode="before")
    @classmethod
    def _codes(cls, value: object, info: ValidationInfo) -> tuple[grpc.StatusCode, ...]:
        return _status_codes(info.field_name or "codes", value)

    @model_validator(mode="after")
    def _check_overlap(self) -> Self:
        both = [code.name for code in self.failure_codes if code in self.ignored_codes]
        if both:
            msg = (
                f"failure_codes and ignored_codes both name {', '.join(both)}: "
                "a status is counted as a failure or ignored, not both"
            )
            raise ValueError(msg)
        return self
