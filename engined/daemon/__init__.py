"""The engined daemon (DESIGN.md §7): a TOML config served over gRPC, HTTP and a CLI.

``engined serve`` builds a :class:`~engined.HealthCheckManager` from a config file
(:mod:`engined.daemon._config`), runs the built-in checks and heals of
:mod:`engined.checks`, serves engined.v1, grpc.health.v1 and reflection over gRPC, and
``/metrics``, ``/healthz`` and ``/readyz`` over HTTP. ``engined status``, ``engined probe``
and ``engined check-config`` are its clients. The entry point is
``engined.daemon._cli:main`` (also ``python -m engined``).

Importing ``engined`` never imports this package: it pulls in grpc and prometheus_client.
"""
