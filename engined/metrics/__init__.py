"""Prometheus metrics for engined (DESIGN.md §8): snapshots read at scrape time, gRPC families.

- :class:`EnginedCollector` reads the breaker registry, a health manager's snapshot, the
  named retries' counters and the version when scraped: nothing is counted on a call path.
- :class:`GrpcServerMetrics` (a grpc.aio server interceptor) and :class:`GrpcClientMetrics`
  (grpc.aio and sync client interceptors) record go-grpc-prometheus's ``grpc_server_*`` and
  ``grpc_client_*`` families, with pre-bound children.
- :func:`metrics_registry` puts them in a fresh ``CollectorRegistry`` (never the global
  one); :func:`exposition` renders a registry as ``generate_latest`` does, ~6x faster for
  engined's families; serve it as :data:`CONTENT_TYPE`.

docs/metrics.md lists every family, its labels and the decisions behind them. Importing
``engined`` never imports this package (it pulls in prometheus_client and grpc).
"""

from engined.metrics._collector import EnginedCollector
from engined.metrics._family import CONTENT_TYPE, exposition
from engined.metrics._grpc_client import GrpcClientMetrics
from engined.metrics._grpc_families import BUCKETS
from engined.metrics._grpc_server import GrpcServerMetrics
from engined.metrics._registry import metrics_registry

__all__ = [
    "BUCKETS",
    "CONTENT_TYPE",
    "EnginedCollector",
    "GrpcClientMetrics",
    "GrpcServerMetrics",
    "exposition",
    "metrics_registry",
]
