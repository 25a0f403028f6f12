"""metrics_registry() and EnginedCollector: a fresh registry, every family, typed arguments."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import prometheus_client
import pytest
from metrics_support import scrape
from prometheus_client import CollectorRegistry

import engined.metrics as metrics
from engined import CircuitBreakerRegistry, HealthCheckManager, retry
from engined.metrics import (
    EnginedCollector,
    GrpcClientMetrics,
    GrpcServerMetrics,
    metrics_registry,
)
from engined.testing import FakeClock

ENGINED_FAMILIES = {
    "engined_circuit_breaker_state": "gauge",
    "engined_circuit_breaker_calls": "counter",
    "engined_circuit_breaker_transitions": "counter",
    "engined_circuit_breaker_failure_ratio": "gauge",
    "engined_health_overall_status": "gauge",
    "engined_health_status": "gauge",
    "engined_health_checks": "counter",
    "engined_health_check_duration_seconds": "gauge",
    "engined_heal_attempts": "counter",
    "engined_heal_exhausted": "gauge",
    "engined_retry_attempts": "counter",
    "engined_retry_calls": "counter",
    "engined_build_info": "gauge",
}
GRPC_FAMILIES = {
    f"{side}_{name}": kind
    for side in ("grpc_server", "grpc_client")
    for name, kind in (
        ("started", "counter"),
        ("handled", "counter"),
        ("handling_seconds", "histogram"),
        ("msg_received", "counter"),
        ("msg_sent", "counter"),
    )
}


def test_all_lists_exactly_the_public_names_sorted() -> None:
    """engined.metrics.__all__ is sorted and names every public attribute, no more."""
    public = {
        name
        for name, value in vars(metrics).items()
        if not name.startswith("_") and not isinstance(value, type(metrics))
    }
    assert metrics.__all__ == sorted(metrics.__all__)
    assert set(metrics.__all__) == public


def test_registry_is_fresh_and_never_the_global_one() -> None:
    """Each call builds a new CollectorRegistry; prometheus_client's REGISTRY gains nothing."""
    before = set(prometheus_client.REGISTRY._names_to_collectors)
    first, second = metrics_registry(), metrics_registry()
    assert isinstance(first, CollectorRegistry)
    assert first is not second
    assert first is not prometheus_client.REGISTRY
    GrpcServerMetrics()
    GrpcClientMetrics()
    assert set(prometheus_client.REGISTRY._names_to_collectors) == before


def test_every_family_is_exposed_with_its_type() -> None:
    """With a manager and both gRPC sides, the scrape has every DESIGN §8 family, typed."""
    registry = metrics_registry(
        manager=HealthCheckManager(clock=FakeClock()),
        breakers=CircuitBreakerRegistry(),
        grpc_server=GrpcServerMetrics(),
        grpc_client=GrpcClientMetrics(),
    )
    families = {name: family.type for name, family in scrape(registry).families().items()}
    assert families.items() >= {**ENGINED_FAMILIES, **GRPC_FAMILIES}.items()


def test_build_info_carries_the_installed_version_with_value_one() -> None:
    """engined_build_info{version} is 1, its version the installed distribution's."""
    result = scrape(metrics_registry())
    assert result.values("engined_build_info") == {(("version", version("engined")),): 1.0}


def test_named_retries_show_attempts_and_calls() -> None:
    """engined_retry_attempts_total and _calls_total carry each named retry's counts."""
    clock = FakeClock()
    tries = []

    @retry(on=ConnectionError, name="metrics-registry-test", clock=clock)
    def flaky() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError

    flaky()
    result = scrape(metrics_registry())
    assert result.value("engined_retry_attempts_total", name="metrics-registry-test") == 3.0
    assert result.value("engined_retry_calls_total", name="metrics-registry-test") == 1.0


def test_grpc_families_given_a_registry_register_there() -> None:
    """GrpcServerMetrics(registry) registers at once; registering the names twice is refused."""
    registry = CollectorRegistry()
    GrpcServerMetrics(registry)
    assert "grpc_server_started_total" in registry._names_to_collectors
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        GrpcServerMetrics(registry)


def test_two_engined_collectors_in_one_registry_are_refused() -> None:
    """describe() names the families, so a second EnginedCollector clashes at register()."""
    registry = metrics_registry()
    with pytest.raises(ValueError, match="engined_build_info"):
        registry.register(EnginedCollector())


def test_describe_reads_no_snapshot() -> None:
    """Registering (describe) reads neither the manager nor the breakers."""

    class Watched(HealthCheckManager):
        reads = 0

        def snapshot(self):  # type: ignore[no-untyped-def]
            Watched.reads += 1
            return super().snapshot()

    manager = Watched(clock=FakeClock())
    registry = metrics_registry(manager=manager)
    assert Watched.reads == 0
    scrape(registry)  # exposition and generate_latest: two scrapes
    assert Watched.reads == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"manager": object()}, "manager"),
        ({"breakers": {}}, "breakers"),
        ({"grpc_server": GrpcClientMetrics()}, "grpc_server"),
        ({"grpc_client": "yes"}, "grpc_client"),
    ],
)
def test_wrong_argument_types_are_refused_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    """A wrong type fails at construction with a TypeError that names the argument."""
    with pytest.raises(TypeError, match=field):
        metrics_registry(**kwargs)  # type: ignore[arg-type]


def test_importing_engined_does_not_import_the_metrics_package() -> None:
    """``import engined`` stays light: engined.metrics is imported only where it is used."""
    code = "import sys, engined; print('engined.metrics' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"
