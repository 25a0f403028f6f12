"""A real Prometheus server (Debian's ``prometheus``) scraping engined's metrics every second.

The test serves a populated registry over HTTP on 127.0.0.1, starts Prometheus
(prometheus_support: a free loopback port, its data in ``tmp_path``, stopped by pid) and
polls Prometheus's query API until the series appear (bounded).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from metrics_scrape_support import MetricsServer, missing, populated
from prometheus_support import Prometheus, prometheus

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing("prometheus") is not None, reason=str(missing("prometheus"))),
]


@pytest.fixture
async def scraped(tmp_path: Path) -> AsyncIterator[Prometheus]:
    """Prometheus scraping a populated registry served over HTTP, both stopped at the end."""
    feeds = await populated()
    with MetricsServer(feeds.registry) as server, prometheus(tmp_path, server.port) as scraping:
        yield scraping


def test_prometheus_scrapes_every_family_through_its_query_api(scraped: Prometheus) -> None:
    """Prometheus ingests the scrape: breaker, health, heal, retry, build and gRPC series."""
    builds = scraped.wait_for("engined_build_info")
    assert list(builds.values()) == [1.0]
    up = scraped.series('up{job="engined"}')
    assert list(up.values()) == [1.0]
    state = scraped.series('engined_circuit_breaker_state{state="open"} == 1')
    assert state == {(("breaker", "rpc:db:5432"), ("state", "open")): 1.0}
    assert scraped.series("count(engined_circuit_breaker_state)") == {(): 25.0}
    health = scraped.series('engined_health_status{component="cache"} == 1')
    assert health == {
        (("component", "cache"), ("component_type", "cache"), ("status", "degraded")): 1.0
    }
    heals = scraped.series('engined_heal_attempts_total{component="queue",result="failure"}')
    assert list(heals.values()) == [2.0]
    retries = scraped.series('engined_retry_attempts_total{name="payments-api"}')
    assert list(retries.values()) == [1.0]
    handled = scraped.series('sum by (grpc_code) (grpc_server_handled_total{grpc_method="Get"})')
    assert handled == {(("grpc_code", "NotFound"),): 1.0, (("grpc_code", "OK"),): 2.0}


def test_prometheus_reports_a_healthy_target_with_no_scrape_error(scraped: Prometheus) -> None:
    """The target is up and its last scrape raised no error (no format or name problem)."""
    scraped.wait_for('up{job="engined"} == 1')
    targets = scraped.api("targets")["activeTargets"]
    assert [(target["health"], target["lastError"]) for target in targets] == [("up", "")]
    samples = scraped.series('scrape_samples_scraped{job="engined"}')
    assert next(iter(samples.values())) > 100
