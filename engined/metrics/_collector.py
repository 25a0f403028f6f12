"""EnginedCollector: every ``engined_*`` family, read from snapshots at scrape time.

Nothing here runs on a call path. A scrape reads the breaker registry (one
``breaker.metrics`` snapshot per breaker), the manager's snapshot, the named retries'
counters and the installed version, and builds :class:`~engined.metrics._family.Family`
objects that :func:`~engined.metrics.exposition` renders fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from prometheus_client.metrics_core import Metric

from engined.core._health_manager import HealthCheckManager
from engined.core._health_model import HealthStatus, SystemHealth
from engined.core._registry import CircuitBreakerRegistry, default_registry
from engined.core._retry_stats import retry_stats
from engined.metrics._breakers import breaker_families
from engined.metrics._family import Family
from engined.metrics._health import health_families

__all__ = ["EnginedCollector"]


def _installed_version() -> str:
    try:
        return version("engined")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class EnginedCollector:
    """A prometheus_client collector of engined's breakers, health, named retries and build.

    Families (DESIGN.md §8): ``engined_circuit_breaker_state``, ``..._calls_total``,
    ``..._transitions_total``, ``..._failure_ratio``; with a manager,
    ``engined_health_overall_status``, ``engined_health_status``,
    ``engined_health_checks_total``, ``engined_health_check_duration_seconds``,
    ``engined_heal_attempts_total``, ``engined_heal_exhausted``; always
    ``engined_retry_attempts_total``, ``engined_retry_calls_total`` and ``engined_build_info``.
    docs/metrics.md lists their labels and values.

    Args:
        manager: The health manager whose snapshot the health families show; ``None``
            leaves them out.
        breakers: The registry whose breakers are shown; ``None`` means
            :func:`engined.default_registry`, where ``@circuit_breaker`` and the gRPC
            interceptors register theirs.

    Raises:
        TypeError: An argument has the wrong type; the message names it.
    """

    def __init__(
        self,
        *,
        manager: HealthCheckManager | None = None,
        breakers: CircuitBreakerRegistry | None = None,
    ) -> None:
        if manager is not None and not isinstance(manager, HealthCheckManager):
            msg = f"manager must be a HealthCheckManager or None, got {type(manager).__name__}"
            raise TypeError(msg)
        if breakers is not None and not isinstance(breakers, CircuitBreakerRegistry):
            msg = (
                f"breakers must be a CircuitBreakerRegistry or None, got {type(breakers).__name__}"
            )
            raise TypeError(msg)
        self._manager = manager
        self._breakers = breakers if breakers is not None else default_registry()
        self._version = _installed_version()

    def collect(self) -> Iterable[Metric]:
        """Read every snapshot now and return the families (prometheus_client's protocol)."""
        health = None if self._manager is None else self._manager.snapshot()
        return [
            *breaker_families(self._breakers),
            *health_families(health),
            *_retry_families(read=True),
            _build_info(self._version),
        ]

    def describe(self) -> Iterable[Metric]:
        """The families' names, without reading anything: for a registry's duplicate check."""
        health = None if self._manager is None else _EMPTY_HEALTH
        return [
            *breaker_families(None),
            *health_families(health),
            *_retry_families(read=False),
            _build_info(self._version),
        ]

    def __repr__(self) -> str:
        return f"EnginedCollector(manager={self._manager!r}, breakers={self._breakers!r})"


def _retry_families(*, read: bool) -> list[Family]:
    attempts = Family(
        "engined_retry_attempts",
        "Attempts made by named retries, first attempts included.",
        "counter",
        ("name",),
    )
    calls = Family(
        "engined_retry_calls",
        "Calls of functions decorated by named retries (attempts minus retries).",
        "counter",
        ("name",),
    )
    if read:
        stats = retry_stats()
        names = tuple(stats)
        attempts.add_rows(((), names, tuple(counts.attempts for counts in stats.values())))
        calls.add_rows(((), names, tuple(counts.calls for counts in stats.values())))
    return [attempts, calls]


def _build_info(installed: str) -> Family:
    info = Family("engined_build_info", "engined's version; the value is 1.", "gauge", ("version",))
    info.add((), installed, 1)
    return info


_EMPTY_HEALTH = SystemHealth(HealthStatus.HEALTHY, {}, 0.0)  # describe() names, reads nothing
