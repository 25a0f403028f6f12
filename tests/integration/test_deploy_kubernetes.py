"""deploy/kubernetes/: the manifests agree with each other and with the daemon.

Every YAML document is parsed (PyYAML). The Deployment must read the config file the
ConfigMap mounts, probe the ports the daemon serves (readiness: gRPC health of "" on
9003; liveness: /healthz on 9004), run locked down, and carry the Prometheus
annotations; the Service must expose both ports. The ConfigMap's engined.toml must pass
``engined check-config``, and a daemon started with it (its checks' cluster hosts do not
resolve here) must answer the liveness probe while failing the readiness one: the
reason the two differ.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from daemon_support import cli, http_get, running, write
from deploy_support import KUBERNETES

pytestmark = pytest.mark.integration


def documents() -> list[dict[str, Any]]:
    """Every document of every manifest, kustomization.yaml included."""
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in documents()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod()["spec"]["containers"]
    found: dict[str, Any] = only
    return found


def port_number(port: int | str) -> int:
    """A probe's or Service's port, a named container port resolved."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container()["ports"] if p["name"] == port]
    resolved: int = number
    return resolved


def config_path() -> Path:
    args = container()["args"]
    return Path(args[args.index("--config") + 1])


def engined_toml() -> str:
    """The ConfigMap's engined.toml."""
    text: str = one("ConfigMap", "engined-config")["data"]["engined.toml"]
    return text


def test_every_document_is_a_named_kubernetes_object() -> None:
    """Each manifest parses, with apiVersion, kind and (but kustomization) a name."""
    docs = documents()
    assert {doc["kind"] for doc in docs} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "Kustomization",
    }
    for doc in docs:
        assert doc["apiVersion"], doc
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], doc
    (kustomization,) = [doc for doc in docs if doc["kind"] == "Kustomization"]
    listed = sorted(kustomization["resources"])
    assert listed == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.stem != "kustomization")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on PATH")
def test_kubectl_kustomize_builds_every_object() -> None:
    """Offline ``kubectl kustomize`` renders the ConfigMap, the Deployment and both Services."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    objects = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(built.stdout) if d]
    assert sorted(objects) == [
        ("ConfigMap", "engined-config"),
        ("Deployment", "engined"),
        ("Service", "engined"),
        ("Service", "engined-diagnostics"),
    ]


def test_the_container_reads_the_config_the_configmap_mounts() -> None:
    """``--config`` names a file the ConfigMap volume provides, at its mount path."""
    assert container()["command"] == ["engined"]
    args = container()["args"]
    assert args[0] == "serve"
    path = config_path()
    (mount,) = [m for m in container()["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    (volume,) = [v for v in pod()["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "engined-config"
    assert path.name in one("ConfigMap", "engined-config")["data"]


def test_the_daemon_listens_beyond_loopback_in_the_pod() -> None:
    """``--host 0.0.0.0``, or the kubelet, the Service and Prometheus could not reach it."""
    args = container()["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"


def test_the_probes_point_at_the_daemons_ports() -> None:
    """Readiness: native gRPC health of "" on 9003; liveness and startup: /healthz on 9004."""
    ready = container()["readinessProbe"]
    assert set(ready) >= {"grpc"}
    assert port_number(ready["grpc"]["port"]) == 9003
    assert ready["grpc"].get("service", "") == ""
    for probe in ("livenessProbe", "startupProbe"):
        http = container()[probe]["httpGet"]
        assert http["path"] == "/healthz", probe
        assert port_number(http["port"]) == 9004, probe
    assert "9003" in engined_toml()
    assert "9004" in engined_toml()


def test_the_pod_is_annotated_for_prometheus() -> None:
    """The pod template carries scrape, port 9004 (the metrics port) and path /metrics."""
    annotations = pod()["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9004"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert 9004 in [p["containerPort"] for p in container()["ports"]]


def test_the_service_exposes_grpc_and_metrics_of_the_pods() -> None:
    """Service engined selects the pod's labels and forwards 9003 and 9004 to them."""
    service = one("Service", "engined")["spec"]
    labels = pod()["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert one("Deployment")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: (p["port"], port_number(p["targetPort"])) for p in service["ports"]}
    assert ports == {"grpc": (9003, 9003), "metrics": (9004, 9004)}


def test_the_container_runs_locked_down() -> None:
    """Non-root, read-only root filesystem, no capabilities, no escalation, bounded resources."""
    security = container()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert pod()["spec"]["securityContext"]["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    resources = container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def test_the_configmaps_config_passes_check_config(tmp_path: Path) -> None:
    """``engined check-config`` accepts the ConfigMap's engined.toml."""
    config = write(tmp_path / config_path().name, engined_toml())
    checked = cli("check-config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{config}: ok: 3 checks")


def test_liveness_passes_while_readiness_fails_on_unreachable_dependencies(
    tmp_path: Path,
) -> None:
    """ConfigMap's checks, none of whose hosts resolve here: /healthz 200, "" NOT_SERVING."""
    # The same checks, only run every 0.5 s so the critical one fails within seconds.
    fast = engined_toml().replace("interval = 10.0", "interval = 0.5")
    fast = fast.replace("timeout = 2.0", "timeout = 0.5")
    assert fast.count("interval = 0.5") == 3
    config = write(tmp_path / config_path().name, fast)
    with running(config, tmp_path) as daemon:
        daemon.wait_event("transition", component="postgres", to="unhealthy", within=30)
        probe = cli("probe", "--addr", daemon.target, "--service", "")
        assert probe.returncode == 4, probe.stdout + probe.stderr  # NOT_SERVING: not ready
        assert http_get(daemon.metrics_port, "/readyz")[0] == 503
        status, _, body = http_get(daemon.metrics_port, "/healthz")
        assert (status, body.strip()) == (200, b"ok")  # alive: no restart would help
