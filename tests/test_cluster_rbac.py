"""The cnai-pipeline chart rendered by the real Helm, and RBAC as a contract.

Helm 4.1.4 (installed into the venv by scripts/install_k8s_tools.py) lints the chart
with ``--strict`` and renders it under several value sets; the tests assert on the
rendered objects: images, namespaces, RBAC verbs, non-root security contexts,
requests and limits.

RBAC contract: the table under "RBAC as a contract" in docs/operations.md lists, for
every in-cluster actor, each Kubernetes API call it makes at the pinned versions (with
the upstream file and line) and the Role that must grant it. The test parses that
table and checks that the rendered Roles grant every listed call and nothing else,
so the docs, the chart and events/ cannot drift apart. Upstream facts behind the
Sensor row (the defect of issue 12 item 2):
- argoproj/argo-events v1.9.1 sensors/triggers/argo-workflow/argo-workflow.go:161
  runs ``argo submit`` and :206 lists workflows by the trigger's labels (v1.9.10:
  pkg/sensors/triggers/argo-workflow/argo-workflow.go:160 and :205), so a Role with
  only ``create, get`` on workflows fails the trigger with 403 after the Workflow exists;
- argo-events v1.9.1 sensors/listener.go:215-220 retries the whole trigger action
  (submit and list) on any error, so a retryStrategy of 3 steps could submit 3 Workflows.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "infra" / "opentofu" / "charts" / "cnai-pipeline"
OPERATIONS = REPO / "docs" / "operations.md"
HELM = Path(sys.executable).parent / "helm"
NEW_IMAGE = ("registry.example.com/team/cnai", "2.0.0-rc1")

VALUE_SETS: dict[str, tuple[str, list[str]]] = {
    "defaults": ("cnai", []),
    "image": (
        "cnai",
        [f"image.repository={NEW_IMAGE[0]}", f"image.tag={NEW_IMAGE[1]}"],
    ),
    "ingress": (
        "cnai",
        ["webhooks.expose=ingress", "webhooks.ingress.host=events.example.com"],
    ),
    "nodeport": ("cnai", ["webhooks.expose=nodeport"]),
    "namespace": ("ml-prod", []),
    "no-templates": ("cnai", ["workflowTemplates.enabled=false"]),
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the venv's Helm; a missing binary is a failed set-up, not a skip."""
    assert HELM.is_file(), f"{HELM} missing: run `make .venv/.installed`"
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )


@functools.cache
def render(value_set: str) -> list[dict[str, Any]]:
    """Every object ``helm template`` renders for one of VALUE_SETS."""
    namespace, sets = VALUE_SETS[value_set]
    args = ["template", "cnai-pipeline", str(CHART), "--namespace", namespace]
    for item in sets:
        args += ["--set", item]
    proc = helm(*args)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of ``kind`` by name."""
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(value_set: str) -> None:
    namespace, sets = VALUE_SETS[value_set]
    args = ["lint", "--strict", str(CHART), "--namespace", namespace]
    for item in sets:
        args += ["--set", item]
    proc = helm(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- images --------------------------------------------------------------------


def image_references(docs: list[dict[str, Any]]) -> list[str]:
    """Every ``image:`` in the rendered objects, RayJob manifests (strings) included."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    found.append(value)
                elif key == "manifest" and isinstance(value, str):
                    found.extend(re.findall(r"image:\s*['\"]?([^\s'\"]+)", value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(docs)
    return found


@pytest.mark.parametrize("value_set", ["defaults", "image"])
def test_every_pipeline_image_reference_follows_the_values(value_set: str) -> None:
    """Issue 12 item 3: before, only references already naming image.repository were
    rewritten, so another repository left every step on ghcr.io/cnai-dev/cnai-pipeline."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    repository, tag = (
        NEW_IMAGE
        if value_set == "image"
        else (values["image"]["repository"], str(values["image"]["tag"]))
    )
    templates = list(by_kind(render(value_set), "WorkflowTemplate").values())
    assert len(templates) == 2  # cnai-retrain and cnai-score
    images = image_references(templates)
    # The script steps, head and workers of both RayJobs, and the score containers.
    assert len(images) >= 5 + 4 + 2, images
    assert set(images) == {f"{repository}:{tag}"}, images


def test_the_chart_knows_the_image_cnai_compile_writes() -> None:
    from pipelines.retrain import IMAGE

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["sourceImageRepository"] == IMAGE


# --- namespaces ----------------------------------------------------------------


def namespaces_in(node: Any) -> list[str]:
    """Every ``namespace`` string under ``node``, and namespaces in service host names."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "namespace" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(namespaces_in(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(namespaces_in(item))
    elif isinstance(node, str):
        found.extend(re.findall(r"\.([a-z0-9-]+)\.svc\b", node))
    return found


@pytest.mark.parametrize("value_set", ["defaults", "namespace"])
def test_every_object_lands_in_the_release_namespace(value_set: str) -> None:
    target = VALUE_SETS[value_set][0]
    docs = render(value_set)
    assert not [d for d in docs if d["kind"].startswith("Cluster")], "no cluster-wide objects"
    for doc in docs:
        assert set(namespaces_in(doc)) <= {target}, (doc["kind"], doc["metadata"]["name"])
    for sensor in by_kind(docs, "Sensor").values():
        trigger = sensor["spec"]["triggers"][0]["template"]["argoWorkflow"]
        assert trigger["source"]["resource"]["metadata"]["namespace"] == target


# --- webhooks --------------------------------------------------------------------


def test_webhook_exposure_modes_render_the_right_services() -> None:
    for value_set, service_type in (("defaults", "ClusterIP"), ("nodeport", "NodePort")):
        services = by_kind(render(value_set), "Service")
        assert {s["spec"]["type"] for s in services.values()} == {service_type}
        assert not by_kind(render(value_set), "Ingress")
    docs = render("ingress")
    (ingress,) = by_kind(docs, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "events.example.com"
    assert {p["path"] for p in rule["http"]["paths"]} == {"/push", "/data-updated"}


# --- pod hardening -------------------------------------------------------------------


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], list[dict]]]:
    """``(where, pod securityContext, containers)`` of every pod the chart's objects start."""
    pods: list[tuple[str, dict[str, Any], list[dict]]] = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = doc.get("spec") or {}
        if doc["kind"] == "WorkflowTemplate":
            for template in spec["templates"]:
                for kind in ("script", "container"):
                    if kind in template:
                        pods.append(
                            (
                                f"{name}:{template['name']}",
                                spec["securityContext"],
                                [template[kind]],
                            )
                        )
                manifest = (template.get("resource") or {}).get("manifest")
                if manifest:
                    rayjob = yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "1", manifest))
                    cluster = rayjob["spec"]["rayClusterSpec"]
                    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
                    for group in groups:
                        pod = group["template"]["spec"]
                        pods.append(
                            (
                                f"{name}:{template['name']}",
                                pod["securityContext"],
                                pod["containers"],
                            )
                        )
        elif doc["kind"] in ("Sensor", "EventSource"):
            template = spec["template"]
            pods.append((name, template["securityContext"], [template["container"]]))
        elif doc["kind"] == "EventBus":
            js = spec["jetstream"]
            containers = [
                js[k]
                for k in (
                    "containerTemplate",
                    "reloaderContainerTemplate",
                    "metricsContainerTemplate",
                )
            ]
            pods.append((name, js["securityContext"], containers))
    return pods


def test_every_pod_runs_non_root_with_requests_and_limits() -> None:
    pods = pod_specs(render("defaults"))
    kinds = {where.split("/")[0] for where, _, _ in pods}
    assert kinds == {"WorkflowTemplate", "Sensor", "EventSource", "EventBus"}
    for where, pod, containers in pods:
        assert pod.get("runAsNonRoot") is True, where
        assert int(pod.get("runAsUser", 0)) > 0, where
        for container in containers:
            context = container.get("securityContext") or {}
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("runAsUser", pod["runAsUser"]) != 0, where
            resources = container.get("resources") or {}
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound) or {}), (where, bound)


def test_the_eventbus_images_are_pinned() -> None:
    """Issue 12 item 10: `version: latest` let the controller pick the NATS images."""
    (bus,) = by_kind(render("defaults"), "EventBus").values()
    version = str(bus["spec"]["jetstream"]["version"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version


# --- RBAC as a contract ------------------------------------------------------------------


def contract_table() -> list[dict[str, str]]:
    """Rows of the table under '## RBAC as a contract' in docs/operations.md."""
    text = OPERATIONS.read_text()
    section = text[text.index("## RBAC as a contract") :]
    section = section[: section.find("\n## ", 5) if "\n## " in section[5:] else None]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _code(cell: str) -> str:
    return cell.strip().strip("`")


def contracted_calls() -> dict[str, set[tuple[str, str, str, str]]]:
    """``{Role: {(apiGroup, resource, resourceName, verb)}}`` the docs table requires."""
    calls: dict[str, set[tuple[str, str, str, str]]] = {}
    for row in contract_table():
        role = _code(row["Role"])
        if role == "none":
            continue
        group = _code(row["API group"]).replace("core", "")
        resource, _, name = _code(row["Resource"]).partition("/")
        for verb in row["Verbs"].split(","):
            calls.setdefault(role, set()).add((group, resource, name.strip("`"), _code(verb)))
    return calls


def granted(docs: list[dict[str, Any]]) -> dict[str, set[tuple[str, str, str, str]]]:
    """What every rendered Role grants, in the same shape."""
    grants: dict[str, set[tuple[str, str, str, str]]] = {}
    for role in by_kind(docs, "Role").values():
        rules = grants.setdefault(role["metadata"]["name"], set())
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            rules.add((group, resource, name, verb))
    return grants


def test_the_contract_table_covers_every_in_cluster_actor() -> None:
    actors = " ".join(row["Actor"] for row in contract_table()).lower()
    for actor in ("executor", "sensor", "event source", "kuberay", "cnai submit"):
        assert actor in actors, actor
    for row in contract_table():
        assert re.search(r"v\d+\.\d+\.\d+", row["Source"]), row


def test_rendered_roles_grant_exactly_the_contracted_calls() -> None:
    """Every call each actor makes is granted, and nothing more (issue 12 item 2)."""
    assert granted(render("defaults")) == contracted_calls()


def test_every_role_is_bound_to_its_own_service_account_and_used() -> None:
    docs = render("defaults")
    accounts = set(by_kind(docs, "ServiceAccount"))
    for binding in by_kind(docs, "RoleBinding").values():
        (subject,) = binding["subjects"]
        assert subject["kind"] == "ServiceAccount" and subject["name"] in accounts
        assert binding["roleRef"]["name"] == subject["name"]
    for template in by_kind(docs, "WorkflowTemplate").values():
        assert template["spec"]["serviceAccountName"] in accounts
    for sensor in by_kind(docs, "Sensor").values():
        assert sensor["spec"]["template"]["serviceAccountName"] in accounts
    for source in by_kind(docs, "EventSource").values():
        # Contract: the event sources call no API (their Secrets are mounted).
        assert "serviceAccountName" not in source["spec"]["template"]


def test_the_submitter_may_create_templates_only_when_the_chart_ships_none() -> None:
    rules = granted(render("no-templates"))["cnai-submitter"]
    assert ("argoproj.io", "workflowtemplates", "", "update") in rules
    assert ("argoproj.io", "workflows", "", "create") in rules
    assert not by_kind(render("no-templates"), "WorkflowTemplate")


def test_one_event_submits_at_most_one_workflow() -> None:
    for sensor in by_kind(render("defaults"), "Sensor").values():
        for trigger in sensor["spec"]["triggers"]:
            assert (trigger.get("retryStrategy") or {}).get("steps", 1) <= 1
