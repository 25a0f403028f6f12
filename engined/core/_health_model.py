"""The values of health checking: statuses, results, per-check settings and roll-ups.

Severity orders the statuses: UNHEALTHY > DEGRADED > UNKNOWN > HEALTHY. UNKNOWN ranks above
HEALTHY on purpose: a component nobody has seen pass must not make a system look healthy
(the Spring default that ranks UNKNOWN below UP hid outages: camunda#11896).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engined.core._health_stats import NO_STATS, ComponentStats

__all__ = [
    "ComponentHealth",
    "ComponentType",
    "HealState",
    "HealthEvent",
    "HealthCheckConfig",
    "HealthCheckResult",
    "HealthStatus",
    "SystemHealth",
    "aggregate",
    "parse_component_type",
    "settings_of",
]


class HealthStatus(enum.StrEnum):
    """How a component is doing; HEALTHY and DEGRADED results are passing."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"

    @property
    def severity(self) -> int:
        """Rank for worst-wins roll-ups: UNHEALTHY 3 > DEGRADED 2 > UNKNOWN 1 > HEALTHY 0."""
        return _SEVERITY[self]

    @property
    def passing(self) -> bool:
        """Whether a result with this status counts towards recovery."""
        return self is HealthStatus.HEALTHY or self is HealthStatus.DEGRADED


_SEVERITY = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.UNKNOWN: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.UNHEALTHY: 3,
}


class ComponentType(enum.StrEnum):
    """What kind of thing a component is; used as a metric label and in RPC replies."""

    SERVICE = "service"
    DATABASE = "database"
    CACHE = "cache"
    MESSAGE_QUEUE = "message_queue"
    RPC = "rpc"
    CIRCUIT_BREAKER = "circuit_breaker"
    EXTERNAL_API = "external_api"
    STORAGE = "storage"
    CUSTOM = "custom"


class HealState(enum.StrEnum):
    """Where a component's healing stands."""

    IDLE = "idle"  # nothing to heal, or no heal registered
    HEALING = "healing"  # a heal is running
    BACKOFF = "backoff"  # unhealthy; the next heal is not due yet
    EXHAUSTED = "exhausted"  # heal_max_attempts used up: checks go on, heals stop
    SUPPRESSED = "suppressed"  # a depends_on parent is unhealthy: not healed meanwhile


class _Missing(enum.Enum):
    """Marks a positional field left out, so that an explicit ``None`` can be refused."""

    MISSING = enum.auto()


_MISSING = _Missing.MISSING
_TYPES = frozenset(member.value for member in ComponentType)
_CHOICES: dict[str, type[enum.StrEnum]] = {
    "status": HealthStatus,
    "component_type": ComponentType,
}


def _lower(value: object) -> object:
    """Names of statuses and types are accepted in any case: ``"UNHEALTHY"``, ``"Healthy"``."""
    if isinstance(value, str) and not isinstance(value, enum.Enum):
        return value.strip().lower()
    return value


def _choices(field: str) -> str:
    return ", ".join(member.value for member in _CHOICES[field])


def _shown(value: object) -> str:
    """A bad input as an error message may show it: scalars only, strings cut short."""
    if value is None or isinstance(value, bool | int | float | enum.Enum):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:39] + "…")
    return f"a {type(value).__name__}"


def _refusal(model: type[BaseModel], error: ValidationError) -> ValueError:
    """A ``ValueError`` with one line per bad field, each naming it, without pydantic's links.

    pydantic's own message ends with a documentation URL and a bare field location; this
    one reads as a sentence a config file's author can act on.
    """
    lines = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        kind, text = problem["type"], problem["msg"].removeprefix("Value error, ")
        where = f"{model.__name__}.{field}"
        if not field:  # a rule between fields: its message names them
            lines.append(f"{model.__name__}: {text}")
        elif field in _CHOICES and model is HealthCheckResult:
            got = "missing" if kind == "missing" else f"got {_shown(problem['input'])}"
            lines.append(f"{where} must be one of {_choices(field)} (any case); {got}")
        elif kind == "missing":
            lines.append(f"{where} is required")
        elif kind == "extra_forbidden":
            lines.append(f"{where} is not a field; valid: {', '.join(model.model_fields)}")
        else:
            lines.append(f"{where}: {text}; got {_shown(problem['input'])}")
    return ValueError("\n".join(lines))


def parse_component_type(param: str, value: object) -> ComponentType:
    """Return ``value`` as a :class:`ComponentType`, accepting its name in any case.

    Raises:
        ValueError: ``value`` is no component type; the message names ``param`` and lists
            the valid values.
    """
    if isinstance(value, ComponentType):
        return value
    lowered = _lower(value)
    if isinstance(lowered, str) and lowered in _TYPES:
        return ComponentType(lowered)
    msg = f"{param} must be one of {_choices('component_type')} (any case); got {_shown(value)}"
    raise ValueError(msg) from None


class HealthCheckResult(BaseModel):
    """One check's verdict on one component.

    ``component``, ``component_type`` and ``status`` are required and may be given
    positionally. Statuses and types are accepted as members or as their names in any
    case (``"healthy"``, ``"HEALTHY"``); ``None`` or anything else is refused with a
    ``ValueError`` that names the field and lists the valid values: a check that builds
    its result from a missing value must fail loudly, not report UNKNOWN.

    Attributes:
        component: The component's name.
        component_type: What kind of component it is.
        status: The verdict.
        message: A short human-readable note; public, so it must carry no secrets.
        details: Structured extras (latency, versions, breaker metrics...).
        duration: Seconds the check took, filled in by the manager.
        timestamp: The manager clock's reading when the result was recorded.
        error: For a check that raised, timed out or got stuck: the exception's type
            name, ``"timeout"`` or ``"stuck"``; never the exception's text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: str = Field(min_length=1)
    component_type: ComponentType
    status: HealthStatus
    message: str = ""
    details: Mapping[str, Any] = Field(default_factory=dict)
    duration: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    timestamp: float | None = Field(default=None, allow_inf_nan=False)
    error: str | None = None

    def __init__(
        self,
        component: str | _Missing = _MISSING,
        component_type: ComponentType | str | _Missing = _MISSING,
        status: HealthStatus | str | _Missing = _MISSING,
        /,
        **data: Any,
    ) -> None:
        for name, value in (
            ("component", component),
            ("component_type", component_type),
            ("status", status),
        ):
            if value is not _MISSING:
                if name in data:
                    msg = f"{name} given both positionally and by keyword"
                    raise TypeError(msg)
                data[name] = value
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _refusal(type(self), exc) from None

    @field_validator("component_type", "status", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return _lower(value)


class HealthCheckConfig(BaseModel):
    """How one component is checked and healed. Every bad value is refused with its field named.

    Attributes:
        interval: Seconds between the starts of two checks.
        timeout: Seconds a check may run; ``None`` means ``min(5.0, interval)``. An
            explicit timeout longer than ``interval`` is refused.
        initial_delay: Seconds before the first check (plus a small jitter).
        failure_threshold: Consecutive failing results that make the component UNHEALTHY.
        success_threshold: Consecutive passing results that bring it back from UNHEALTHY.
        degraded_latency: A passing check slower than this many seconds is DEGRADED.
        critical: Whether the component can make the whole system worse than DEGRADED.
        depends_on: Components whose being UNHEALTHY suppresses this one's heals.
        heal_max_attempts: Heals tried before giving up (EXHAUSTED) until a reset.
        heal_backoff_initial: Seconds between the first and the second heal.
        heal_backoff_multiplier: Growth of that gap per heal.
        heal_backoff_max: Largest gap between heals.
        heal_timeout: Seconds one heal may run.
        heal_reset_after: Seconds of sustained health that re-arm the heal attempts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    interval: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    initial_delay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    failure_threshold: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    degraded_latency: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    critical: bool = True
    depends_on: tuple[str, ...] = Field(default=(), strict=False)
    heal_max_attempts: int = Field(default=3, ge=1)
    heal_backoff_initial: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    heal_backoff_multiplier: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    heal_backoff_max: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    heal_timeout: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    heal_reset_after: float = Field(default=60.0, gt=0, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _refusal(type(self), exc) from None

    @model_validator(mode="after")
    def _check_relations(self) -> Self:
        if self.timeout is not None and self.timeout > self.interval:
            msg = f"timeout ({self.timeout:g}s) must not exceed interval ({self.interval:g}s)"
            raise ValueError(msg)
        if self.heal_backoff_max < self.heal_backoff_initial:
            msg = "heal_backoff_max must be >= heal_backoff_initial"
            raise ValueError(msg)
        if any(not name for name in self.depends_on):
            msg = "depends_on entries must be non-empty component names"
            raise ValueError(msg)
        return self

    @property
    def effective_timeout(self) -> float:
        """The timeout a check runs under: ``timeout``, or ``min(5.0, interval)``."""
        return self.timeout if self.timeout is not None else min(5.0, self.interval)

    def heal_delay(self, attempt: int) -> float:
        """Seconds from heal ``attempt`` (1 for the first) to the next one."""
        try:
            grown = self.heal_backoff_initial * self.heal_backoff_multiplier ** (attempt - 1)
        except OverflowError:
            return self.heal_backoff_max
        return min(grown, self.heal_backoff_max)


def settings_of(config: object, keywords: dict[str, Any]) -> HealthCheckConfig:
    """The settings a registration was given: a config object or keywords, not both.

    Raises:
        TypeError: Both were given, or ``config`` is not a HealthCheckConfig (a dict, say).
        ValueError: A keyword is no field or has a bad value; the message names it.
    """
    if config is None:
        return HealthCheckConfig(**keywords)
    if keywords:
        msg = f"give config= or config keywords ({', '.join(sorted(keywords))}), not both"
        raise TypeError(msg)
    if not isinstance(config, HealthCheckConfig):
        msg = (
            f"config must be a HealthCheckConfig, got {type(config).__name__}; "
            "pass its fields as keyword arguments instead"
        )
        raise TypeError(msg)
    return config


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """A consistent snapshot of one component.

    Attributes:
        name: The component's name.
        component_type: What kind of component it is.
        status: The effective status, after thresholds (UNKNOWN until decided).
        critical: Whether it counts fully in the roll-up.
        last_result: The latest result, or ``None`` before the first check.
        check_count: Checks recorded so far.
        consecutive_failures: Failing results in a row.
        consecutive_successes: Passing results in a row.
        heal_attempts: Heals tried since the last reset.
        heal_state: Where healing stands.
        last_heal_error: The type name of the last heal's failure, or ``None``.
        has_heal: Whether a heal is registered for it.
        stats: Checks by result and heal attempts by outcome since registration; they
            never go down, so metrics export them as counters.
    """

    name: str
    component_type: ComponentType
    status: HealthStatus
    critical: bool
    last_result: HealthCheckResult | None
    check_count: int
    consecutive_failures: int
    consecutive_successes: int
    heal_attempts: int
    heal_state: HealState
    last_heal_error: str | None
    has_heal: bool = False
    stats: ComponentStats = NO_STATS


@dataclass(frozen=True, slots=True)
class SystemHealth:
    """Every component's snapshot and the roll-up.

    Attributes:
        overall_status: See :func:`aggregate`.
        components: Snapshots by component name.
        timestamp: The manager clock's reading when the snapshot was taken.
    """

    overall_status: HealthStatus
    components: Mapping[str, ComponentHealth]
    timestamp: float


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """Something a health manager's listeners hear about.

    Attributes:
        kind: ``"transition"`` (effective status changed), ``"heal_started"``,
            ``"heal_finished"`` or ``"heal_exhausted"`` (the last attempt failed to help).
        component: The component's name.
        at: The manager clock's reading.
        from_status: For a transition, the status left.
        to_status: For a transition, the status entered.
        attempt: For heal events, the attempt number since the last reset.
        error: For ``heal_finished``, the failure (type name, ``"timeout"`` or
            ``"returned False"``), or ``None`` when the heal itself succeeded.
    """

    kind: Literal["transition", "heal_started", "heal_finished", "heal_exhausted"]
    component: str
    at: float
    from_status: HealthStatus | None = None
    to_status: HealthStatus | None = None
    attempt: int | None = None
    error: str | None = None


class _Rated(Protocol):
    """What a roll-up reads of a component: a snapshot or the manager's live state."""

    @property
    def status(self) -> HealthStatus: ...  # pragma: no cover - a protocol

    @property
    def critical(self) -> bool: ...  # pragma: no cover - a protocol


def aggregate(components: Iterable[_Rated]) -> HealthStatus:
    """Roll component statuses up into one.

    The worst severity over critical components wins; a non-critical component that is
    UNHEALTHY or DEGRADED counts as DEGRADED and is otherwise ignored; no components at
    all is HEALTHY.
    """
    worst = HealthStatus.HEALTHY
    for component in components:
        status = component.status
        if not component.critical:
            if status is not HealthStatus.UNHEALTHY and status is not HealthStatus.DEGRADED:
                continue
            status = HealthStatus.DEGRADED
        if status.severity > worst.severity:
            worst = status
    return worst
