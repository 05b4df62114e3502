"""The values OpenTofu hands the third-party charts, against their upstream sources.

No chart registry is reachable here, so these charts cannot be rendered at test
time; the module keeps each release's values in a ``locals`` object that
python-hcl2 parses, and every test names the upstream file and line that makes
the asserted value necessary (issue 12, items 5-8, 10 and 12).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[1]
TOFU = REPO / "infra" / "opentofu"
PLATFORM = TOFU / "modules" / "platform"


@cache
def parsed(path: Path) -> dict[str, Any]:
    """One .tf file as python-hcl2 returns it."""
    with path.open() as handle:
        return dict(hcl2.load(handle))


def platform_locals() -> dict[str, Any]:
    """Every ``locals`` entry of the platform module."""
    merged: dict[str, Any] = {}
    for tf in sorted(PLATFORM.glob("*.tf")):
        for block in parsed(tf).get("locals", []):
            merged.update(block)
    return merged


def release(name: str) -> dict[str, Any]:
    """The body of ``helm_release.<name>`` in the platform module."""
    for tf in sorted(PLATFORM.glob("*.tf")):
        for entry in parsed(tf).get("resource", []):
            for body in (entry.get('"helm_release"', {}).get(f'"{name}"', {}),):
                if body:
                    return dict(body)
    raise AssertionError(f"helm_release.{name} not found")


def literal(value: Any) -> Any:
    """A quoted HCL string without its quotes."""
    if isinstance(value, str) and len(value) > 1 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def test_argo_workflows_crds_come_from_the_chart_not_a_download() -> None:
    """argoproj/argo-helm charts/argo-workflows/values.yaml (chart 1.0.18) lines 16-18:
    ``crds.full: true`` by default installs the CRDs with a pre-install Job that
    downloads them from GitHub (crdBaseURL, lines 29-30; templates/crds-install-job.yaml
    line 1); with ``full: false`` templates/crds.yaml lines 1-2 render the minimal CRDs
    from the chart's own files/crds/minimal."""
    crds = platform_locals()["argo_workflows_values"]["crds"]
    assert crds == {"install": True, "keep": True, "full": False}


def test_the_argo_chart_versions_exist_upstream() -> None:
    """argoproj/argo-helm at af0a931 (2026-07-02): charts/argo-workflows/Chart.yaml says
    version 1.0.18 (appVersion v4.0.6), the newest; no 2.0.x exists. charts/argo-events/
    Chart.yaml says 2.4.22 (appVersion v1.9.10, whose Dockerfile bundles the argo CLI
    v3.7.7 instead of 2.4.4's v3.5.4)."""
    assert literal(release("argo_workflows")["version"]) == "1.0.18"
    assert literal(release("argo_events")["version"]) == "2.4.22"


def test_argo_waits_long_enough_for_its_database() -> None:
    """The controller exits until CloudNativePG has created the `argo` database; the
    cluster chart's Helm wait returns as soon as the Cluster object exists (Helm waits on
    workloads, not on custom resources), and helm_release times out after 300 s by
    default (hashicorp/helm v3.1.2 docs/resources/release.md, ``timeout``)."""
    body = release("argo_workflows")
    assert int(body["timeout"]) >= 900
    assert "${helm_release.postgres}" in body["depends_on"]


def test_argo_values_hold_no_key_the_chart_ignores() -> None:
    """argo-helm charts/argo-workflows (1.0.18) has no ``useDefaultArtifactRepo``: the
    controller ConfigMap gets artifactRepository whenever artifactRepository.s3 is set
    (templates/controller/workflow-controller-config-map.yaml line 66)."""
    values = platform_locals()["argo_workflows_values"]
    assert "useDefaultArtifactRepo" not in values
    assert values["artifactRepository"]["s3"]


def test_seaweedfs_buckets_are_created_by_the_filer_hook() -> None:
    """seaweedfs/seaweedfs 3.93 (chart 4.0.393) k8s/charts/seaweedfs/templates/
    post-install-bucket-hook.yaml lines 2-3 and 76: the bucket Job runs when
    ``filer.s3.enabled`` and reads ``filer.s3.createBuckets``; the top-level ``s3``
    block (disabled here) is never read for buckets."""
    values = platform_locals()["seaweedfs_values"]
    s3 = values["filer"]["s3"]
    assert s3["enabled"] is True
    assert "local.buckets" in s3["createBuckets"] and "name = bucket" in s3["createBuckets"]
    assert "createBuckets" not in values.get("s3", {})


def test_katib_namespace_is_created_once_with_its_webhook_label() -> None:
    """kubeflow/manifests experimental/helm/charts/katib: values.yaml
    ``namespaceCreate.enabled: true`` and templates/namespace/namespace.yaml line 1 render
    Namespace/kubeflow, which collides with a namespace Helm (``create_namespace``) or
    OpenTofu creates; the namespace carries katib.kubeflow.org/metrics-collector-injection,
    which the pod mutating webhook selects on (values.yaml webhook.webhooks.mutating.pod)."""
    body = release("katib")
    assert "create_namespace" not in body
    assert platform_locals()["katib_values"] == {"namespaceCreate": {"enabled": False}}
    (namespace,) = [
        ns
        for entry in parsed(PLATFORM / "katib.tf")["resource"]
        for ns in entry.get('"kubernetes_namespace_v1"', {}).values()
    ]
    assert "katib.kubeflow.org/metrics-collector-injection" in str(namespace["metadata"])


def evaluate(condition: str, **variables: str) -> bool:
    """A boolean HCL condition over ``var.*`` strings (==, &&, ||, !, parentheses)."""
    text = condition.removeprefix("${").removesuffix("}")
    text = re.sub(r"var\.(\w+)", lambda m: repr(variables[m.group(1)]), text)
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    return bool(eval(text, {"__builtins__": {}}))


@pytest.mark.parametrize(
    ("mode", "expose", "allowed"),
    [
        ("server", "ingress", False),
        ("server", "nodeport", True),
        ("server", "cluster", True),
        ("client", "ingress", True),
        ("sso", "ingress", True),
    ],
)
def test_login_free_argo_is_refused_on_a_public_ingress(
    mode: str, expose: str, allowed: bool
) -> None:
    """Argo's `server` auth mode serves the UI and API without login (argo-workflows
    v4.1.2 docs/argo-server-auth-mode.md): on an Ingress anyone could run Workflows whose
    pods hold the pipeline's Secrets."""
    (block,) = release("argo_workflows")["lifecycle"]
    (precondition,) = block["precondition"]
    assert evaluate(precondition["condition"], argo_server_auth_mode=mode, expose=expose) is allowed


def test_mlflow_is_never_on_an_ingress_and_runs_as_one_uid() -> None:
    """community-charts/helm-charts mlflow-1.11.4 charts/mlflow/values.yaml lines 79-91:
    the chart has auth disabled by default (line 288) and its container securityContext
    sets runAsUser 1001, which overrides the pod's runAsUser; Helm merges our map into it."""
    values = platform_locals()["mlflow_values"]
    assert values["ingress"] == {"enabled": False}
    pod, container = values["podSecurityContext"], values["securityContext"]
    assert container["runAsUser"] == pod["runAsUser"] == 1001
    assert pod["runAsNonRoot"] is True and container["runAsNonRoot"] is True
    outputs = (TOFU / "outputs.tf").read_text()
    assert "https://mlflow." not in outputs


def test_kind_does_not_publish_port_5000() -> None:
    """macOS's AirPlay receiver listens on port 5000, so kind could not bind it."""
    (block,) = parsed(TOFU / "main.tf")["locals"]
    assert 5000 not in block["host_ports"].values()
