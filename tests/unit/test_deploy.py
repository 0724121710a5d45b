"""The Dockerfile and Kubernetes manifests agree with each other and with stackkit: the ConfigMap's run.yaml
is a valid stack config, probes hit /v1/health on the port the server listens on, names line up, and the
image installs the extras that config needs. (No image is built here: this machine has no Docker daemon.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from stackkit.apis.datatypes import Api
from stackkit.core.config import parse_config

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"


def _manifests() -> dict[str, Any]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"], path
            found[doc["kind"]] = doc
    return found


def test_manifests_line_up_with_each_other_and_with_the_config() -> None:
    m = _manifests()
    assert set(m) == {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
                      "PersistentVolumeClaim"}
    config = parse_config(m["ConfigMap"]["data"]["run.yaml"], source="configmap",
                          env={"STACKKIT_APP_KEY": "k" * 32})
    pod = m["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    assert port == config.server.port == 8321 and config.server.host == "0.0.0.0"
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        assert probe["httpGet"]["path"] == "/v1/health"
    mounted = {v["name"]: v["mountPath"] for v in container["volumeMounts"]}
    assert container["args"][-1] == f"{mounted['config']}/run.yaml"
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == m["ConfigMap"]["metadata"]["name"]
    assert container["envFrom"][0]["secretRef"]["name"] == m["Secret"]["metadata"]["name"]
    assert {"STACKKIT_APP_KEY", "POSTGRES_URL"} <= set(m["Secret"]["stringData"])
    shared = next(v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v)  # file content, all replicas
    assert shared["persistentVolumeClaim"]["claimName"] == m["PersistentVolumeClaim"]["metadata"]["name"]
    assert "ReadWriteMany" in m["PersistentVolumeClaim"]["spec"]["accessModes"]
    files = config.providers[Api.files][0].config
    assert files["storage_dir"].startswith(mounted["shared"]) and files["metadata_url"].startswith("postgresql://")
    assert {config.storage.backends[config.storage.stores[s]].type for s in ("registry", "sql")} == {"postgres"}
    assert config.providers[Api.vector_io][0].provider_type == "remote::pgvector"
    assert m["Service"]["spec"]["selector"] == pod["metadata"]["labels"]
    assert m["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == m["Deployment"]["metadata"]["name"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics" and config.telemetry is not None


def test_the_image_serves_the_starter_and_installs_what_the_cluster_config_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    extras = set(re.search(r"pip install '\.\[([\w,-]+)\]'", dockerfile)[1].split(","))  # type: ignore[index]
    assert {"starter", "redis", "telemetry", "auth", "postgres", "pgvector"} <= extras  # Redis, OTLP, JWT, PG
    assert "EXPOSE 8321" in dockerfile and "/v1/health" in dockerfile
    assert '"--host", "0.0.0.0"' in dockerfile  # inside a container, loopback would be unreachable
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert "USER 1000" in dockerfile
