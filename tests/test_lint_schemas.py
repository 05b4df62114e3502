"""Strict schema validation from what the project installs: no upstream copy needed.

Every kind cnai lint validates accepts a valid upstream-style document and rejects an
unknown field with its path. Argo kinds use the schema derived from Hera's models plus
the generated v4.1 / v1.9 wire corrections (cnai/lint/data, each entry citing
argo-workflows v4.1.2 or argo-events v1.9.11 ``api/jsonschema/schema.json:LINE``); core
kinds use kubernetes-validate's Kubernetes 1.35 strict schema; RayJob uses cnai's
subset of KubeRay v1.7.0's ``ray.io_rayjobs.yaml``.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.chart import CHART_DIR
from cnai.lint import document_problems
from cnai.lint.upstream_diff import DATA_DIR, FAMILIES

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / CHART_DIR
META = {"name": "example", "namespace": "cnai"}
POD_SPEC = {"containers": [{"name": "main", "image": "busybox:1.36", "args": ["true"]}]}
WF_SPEC = {
    "entrypoint": "main",
    "templates": [{"name": "main", "container": {"image": "busybox:1.36", "command": ["true"]}}],
}
ARGO = "argoproj.io/v1alpha1"

# (document, path of a nested object where an unknown field is then added)
VALID: dict[str, tuple[dict[str, Any], list[str | int]]] = {
    "Workflow": (
        {"apiVersion": ARGO, "kind": "Workflow", "metadata": META, "spec": WF_SPEC},
        ["spec", "templates", 0, "container"],
    ),
    "WorkflowTemplate": (
        {"apiVersion": ARGO, "kind": "WorkflowTemplate", "metadata": META, "spec": WF_SPEC},
        ["spec", "templates", 0],
    ),
    "ClusterWorkflowTemplate": (
        {
            "apiVersion": ARGO,
            "kind": "ClusterWorkflowTemplate",
            "metadata": {"name": "c"},
            "spec": WF_SPEC,
        },
        ["spec"],
    ),
    "CronWorkflow": (
        {
            "apiVersion": ARGO,
            "kind": "CronWorkflow",
            "metadata": META,
            "spec": {
                "schedules": ["0 2 * * *"],
                "concurrencyPolicy": "Forbid",
                "workflowSpec": {"workflowTemplateRef": {"name": "cnai-retrain"}},
            },
        },
        ["spec", "workflowSpec", "workflowTemplateRef"],
    ),
    "EventSource": (
        {
            "apiVersion": ARGO,
            "kind": "EventSource",
            "metadata": META,
            "spec": {
                "webhook": {
                    "hook": {
                        "endpoint": "/hook",
                        "port": "12000",
                        "method": "POST",
                        "maxPayloadSize": 1048576,
                    }
                },
                "calendar": {"nightly": {"schedule": "0 2 * * *", "timezone": "UTC"}},
            },
        },
        ["spec", "webhook", "hook"],
    ),
    "Sensor": (
        {
            "apiVersion": ARGO,
            "kind": "Sensor",
            "metadata": META,
            "spec": {
                "dependencies": [
                    {"name": "dep", "eventSourceName": "example", "eventName": "hook"}
                ],
                "triggers": [
                    {
                        "template": {
                            "name": "run",
                            "log": {"intervalSeconds": 10},
                        },
                        "retryStrategy": {"steps": 3, "duration": "1s", "factor": 2.0},
                    }
                ],
            },
        },
        ["spec", "triggers", 0, "retryStrategy"],
    ),
    "EventBus": (
        {
            "apiVersion": ARGO,
            "kind": "EventBus",
            "metadata": {"name": "default"},
            "spec": {"jetstream": {"version": "2.10.10", "replicas": 3}},
        },
        ["spec", "jetstream"],
    ),
    "ConfigMap": (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": META, "data": {"A": "1"}},
        ["metadata"],
    ),
    "Secret": (
        {"apiVersion": "v1", "kind": "Secret", "metadata": META, "stringData": {"k": "v"}},
        [],
    ),
    "ServiceAccount": ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": META}, []),
    "Role": (
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": META,
            "rules": [
                {
                    "apiGroups": [ARGO.split("/")[0]],
                    "resources": ["workflows"],
                    "verbs": ["create", "get", "list"],
                }
            ],
        },
        ["rules", 0],
    ),
    "RoleBinding": (
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": META,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "cnai"}],
        },
        ["roleRef"],
    ),
    "Service": (
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": META,
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
        ["spec", "ports", 0],
    ),
    "Ingress": (
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": META,
            "spec": {
                "rules": [
                    {
                        "host": "hooks.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/push",
                                    "pathType": "Exact",
                                    "backend": {
                                        "service": {"name": "svc", "port": {"number": 12000}}
                                    },
                                }
                            ]
                        },
                    }
                ]
            },
        },
        ["spec", "rules", 0, "http", "paths", 0, "backend"],
    ),
    "Deployment": (
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": META,
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC},
            },
        },
        ["spec", "template", "spec", "containers", 0],
    ),
    "RayJob": (
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayJob",
            "metadata": {"generateName": "job-"},
            "spec": {
                "entrypoint": "python -c 'print(1)'",
                "submissionMode": "K8sJobMode",
                "preRunningDeadlineSeconds": 600,
                "rayClusterSpec": {
                    "rayVersion": "2.60.0",
                    "headGroupSpec": {
                        "rayStartParams": {},
                        "template": {"spec": POD_SPEC},
                    },
                    "workerGroupSpecs": [
                        {
                            "groupName": "w",
                            "replicas": 1,
                            "minReplicas": 1,  # maxReplicas: KubeRay's default applies
                            "rayStartParams": {},
                            "template": {"spec": POD_SPEC},
                        }
                    ],
                },
            },
        },
        ["spec", "rayClusterSpec", "workerGroupSpecs", 0],
    ),
}


def _at(doc: dict[str, Any], where: list[str | int]) -> Any:
    node: Any = doc
    for part in where:
        node = node[part]
    return node


def _path(where: list[str | int], key: str) -> str:
    text = ""
    for part in [*where, key]:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_kind_accepts_a_valid_document_and_rejects_an_unknown_field(kind: str) -> None:
    doc, where = VALID[kind]
    assert document_problems(copy.deepcopy(doc)) == []
    broken = copy.deepcopy(doc)
    _at(broken, where)["colour"] = "blue"
    expected = _path(where, "colour")
    found = document_problems(broken)
    assert [p for p, _ in found] == [expected], found
    assert "unknown field" in found[0][1]


def test_argo_v41_fields_hera_lacks_are_accepted_and_still_type_checked() -> None:
    """Argo v4.1 added Template.pendingTimeout and WorkflowSpec/Template.podResources
    (argo-workflows v4.1.2 api/jsonschema/schema.json:7455, 7463, 8282), and Kubernetes
    1.34 Container.restartPolicyRules (schema.json:9188); Hera 7.1's models lack them."""
    from hera.workflows import models

    assert "pending_timeout" not in models.Template.model_fields
    assert "pod_resources" not in models.WorkflowSpec.model_fields
    doc = copy.deepcopy(VALID["WorkflowTemplate"][0])
    doc["spec"]["podResources"] = {"limits": {"cpu": "2"}}
    template = doc["spec"]["templates"][0]
    template["pendingTimeout"] = "10m"
    template["container"]["restartPolicyRules"] = [
        {"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}
    ]
    assert document_problems(doc) == []
    template["pendingTimeout"] = 600
    template["container"]["restartPolicyRules"][0]["exitCode"] = 1
    assert [p for p, _ in document_problems(doc)] == [
        "spec.templates[0].container.restartPolicyRules[0].exitCode",
        "spec.templates[0].pendingTimeout",
    ]


def test_wire_shapes_where_hera_differs_are_the_wire_format() -> None:
    """Argo Events inlines a webhook's settings (no ``webhookContext``), int64 fields are
    integers and Backoff.duration is an Int64OrString (argo-events v1.9.11
    api/jsonschema/schema.json:4738-4781, 1005); a named HTTPGetAction port and a numeric
    quantity are valid Kubernetes."""
    source = copy.deepcopy(VALID["EventSource"][0])
    assert document_problems(source) == []
    hook = source["spec"]["webhook"]["hook"]
    source["spec"]["webhook"]["hook"] = {"webhookContext": hook}
    assert [p for p, _ in document_problems(source)] == ["spec.webhook.hook.webhookContext"]
    sensor = copy.deepcopy(VALID["Sensor"][0])
    sensor["spec"]["triggers"][0]["retryStrategy"]["duration"] = 1000000000
    assert document_problems(sensor) == []
    sensor["spec"]["triggers"][0]["retryStrategy"]["duration"] = {"strVal": "1s"}
    assert [p for p, _ in document_problems(sensor)] == ["spec.triggers[0].retryStrategy.duration"]
    workflow = copy.deepcopy(VALID["Workflow"][0])
    container = workflow["spec"]["templates"][0]["container"]
    container["resources"] = {"limits": {"cpu": 1, "memory": "1Gi"}}
    container["readinessProbe"] = {"httpGet": {"path": "/", "port": "http"}}
    assert document_problems(workflow) == []
    container["resources"]["limits"]["cpu"] = [1]
    assert [p for p, _ in document_problems(workflow)] == [
        "spec.templates[0].container.resources.limits.cpu"
    ]


def test_sensor_embedded_workflow_is_checked_as_a_workflow() -> None:
    sensor = copy.deepcopy(VALID["Sensor"][0])
    resource = copy.deepcopy(VALID["Workflow"][0])
    resource["spec"]["entrypont"] = "main"
    sensor["spec"]["triggers"][0]["template"] = {
        "name": "run",
        "argoWorkflow": {"operation": "submit", "source": {"resource": resource}},
    }
    found = document_problems(sensor)
    assert [p for p, _ in found] == [
        "spec.triggers[0].template.argoWorkflow.source.resource.spec.entrypont"
    ]


def test_rayjob_fields_outside_the_subset_are_named_as_such() -> None:
    job = copy.deepcopy(VALID["RayJob"][0])
    job["spec"]["entrypointNumCpus"] = 1  # a KubeRay v1.7 field the pipeline does not use
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"] = "lots"
    found = dict(document_problems(job))
    assert "outside cnai's shipped subset" in found["spec.entrypointNumCpus"]
    assert (
        "is not of type 'integer'" in found["spec.rayClusterSpec.workerGroupSpecs[0].minReplicas"]
    )


def test_unknown_kinds_and_missing_identity_are_errors() -> None:
    assert document_problems({"apiVersion": "example.com/v1", "kind": "Widget"})[0][1].startswith(
        "no schema for example.com/v1 Widget"
    )
    assert document_problems({"kind": "ConfigMap"}) == [("apiVersion", "required for ConfigMap")]
    assert document_problems({"apiVersion": "v1"})[0][0] == "kind"
    wrong = copy.deepcopy(VALID["Sensor"][0])
    wrong["apiVersion"] = "argoproj.io/v1"
    assert ("apiVersion", "must be argoproj.io/v1alpha1 for Sensor") in document_problems(wrong)


def test_null_fields_are_accepted_as_the_api_server_prunes_them() -> None:
    doc = copy.deepcopy(VALID["WorkflowTemplate"][0])
    doc["metadata"]["labels"] = None
    doc["spec"]["templates"][0]["retryStrategy"] = None
    assert document_problems(doc) == []


def test_shipped_data_cites_an_upstream_line_for_every_entry() -> None:
    for family in FAMILIES:
        data = json.loads((DATA_DIR / family.data_file).read_text())
        assert data["upstream"] == family.upstream_source
        records = [*data["fields"], *data["replace_definitions"], *data["definitions"].values()]
        assert records
        for record in records:
            path, line = record["source"].rsplit(":", 1)
            assert path == "api/jsonschema/schema.json" and int(line) > 0, record
    rayjob = json.loads((DATA_DIR / "kuberay-v1.7-rayjob.json").read_text())
    assert rayjob["upstream"].startswith("ray-project/kuberay v1.7.0 ")


def test_derived_schemas_are_cached_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnai.lint import derived
    from cnai.lint.upstream_diff import WORKFLOWS

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    derived.family_schema.cache_clear()
    try:
        first = derived.family_schema(WORKFLOWS)
        cached = list((tmp_path / "cnai" / "lint-schemas").glob("workflows-*.json"))
        assert len(cached) == 1
        assert json.loads(cached[0].read_text()) == first
    finally:
        derived.family_schema.cache_clear()


# --- the CLI ------------------------------------------------------------------


def cli(args: list[str], home: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the cnai CLI in this process (same code path as the console script)."""
    from cnai.cli.main import main

    capsys.readouterr()
    code = main(["--home", str(home), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_lint_renders_the_chart_with_helm_and_validates_every_object(
    tmp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["--json", "lint", "--chart", str(CHART)], tmp_home, capsys)
    assert code == 0, err
    assert json.loads(out)["chart_objects"] >= 10
    args = ["--set", "webhooks.expose=ingress", "--set", "webhooks.ingress.host=h.example.com"]
    code, out, err = cli(["--json", "lint", "--chart", str(CHART), *args], tmp_home, capsys)
    assert code == 0, err
    code, out, err = cli(["--json", "lint", str(REPO / "events")], tmp_home, capsys)
    assert code == 0, err
    assert len(json.loads(out)["files"]) == len(list((REPO / "events").glob("*.yaml")))


def test_lint_chart_reports_the_template_kind_and_field_path(
    tmp_path: Path, tmp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    webhooks = chart / "templates" / "webhooks.yaml"
    webhooks.write_text(webhooks.read_text().replace("  selector:\n", "  selectr:\n", 1))
    code, out, err = cli(["--json", "lint", "--chart", str(chart)], tmp_home, capsys)
    assert code == 2
    problems = json.loads(out.strip().splitlines()[-1])["problems"]
    assert problems == [
        f"{chart}: cnai-pipeline/templates/webhooks.yaml Service/cnai-{name}-webhook-svc: "
        "spec.selectr: unknown field"
        for name in ("github", "data")
    ]
    assert all(p in err for p in problems)


def test_lint_chart_bad_input_and_missing_helm(
    tmp_path: Path,
    tmp_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = cli(["lint", "--chart", str(CHART), "--set", "nope"], tmp_home, capsys)
    assert (code, err.strip()) == (2, "cnai: error: --set nope: expected KEY=VALUE")
    code, _, err = cli(["lint", "--set", "a=b", str(REPO / "events")], tmp_home, capsys)
    assert code == 2 and "only apply with --chart" in err
    code, _, err = cli(["lint", "--chart", str(tmp_path)], tmp_home, capsys)
    assert code == 2 and "no Chart.yaml" in err
    args = ["lint", "--chart", str(CHART), "--set", "webhooks.expose=everywhere"]
    code, _, err = cli(args, tmp_home, capsys)
    assert code == 2 and 'webhooks.expose \\"everywhere\\"' not in err and "everywhere" in err
    code, _, err = cli(["lint"], tmp_home, capsys)
    assert code == 2 and "--chart" in err
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = cli(["--json", "lint", "--chart", str(CHART)], tmp_home, capsys)
    assert code == 1
    assert "helm: not found" in err and "install_k8s_tools.py" in err
    assert json.loads(out)["error"].startswith("helm: not found")


def test_lint_of_events_names_file_and_path(
    tmp_path: Path, tmp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "events" / "sensor-retrain.yaml").read_text()
    doc = yaml.safe_load(text)
    doc["spec"]["dependencies"][0]["eventSourceNmae"] = doc["spec"]["dependencies"][0].pop(
        "eventSourceName"
    )
    bad = tmp_path / "sensor.yaml"
    bad.write_text(yaml.safe_dump(doc))
    code, _, err = cli(["lint", str(bad)], tmp_home, capsys)
    assert code == 2
    assert f"{bad}: spec.dependencies[0].eventSourceNmae: unknown field" in err


def test_data_generated_for_another_hera_fails_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cnai.errors import CnaiError
    from cnai.lint import derived
    from cnai.lint.upstream_diff import WORKFLOWS

    real = derived._data(WORKFLOWS.data_file)
    renamed = {**real, "fields": [{**real["fields"][0], "definition": "RenamedInHera8"}]}
    monkeypatch.setattr(derived, "_data", lambda name: renamed)
    with pytest.raises(CnaiError, match=r"lacks RenamedInHera8: regenerate it with `python -m"):
        derived.build_schema(WORKFLOWS)


def test_core_kinds_use_the_schema_of_the_installed_kubectl() -> None:
    """kubectl 1.35 is what scripts/install_k8s_tools.py installs; the Kubernetes schema
    cnai lint validates core kinds with must be that version's."""
    import subprocess

    from cnai.lint.core import K8S_VERSION, SCHEMA_DIR

    kubectl = Path(sys.executable).parent / "kubectl"
    proc = subprocess.run(
        [str(kubectl), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    client = json.loads(proc.stdout)["clientVersion"]
    assert K8S_VERSION.split(".")[:2] == [client["major"], client["minor"]]
    assert SCHEMA_DIR.endswith(f"v{K8S_VERSION}-local-strict")


@pytest.mark.parametrize(
    ("kind", "spec", "path"),
    [
        ("WorkflowTemplate", {"entrypoint": "a", "templates": "a"}, "spec.templates"),
        ("WorkflowTemplate", {"entrypoint": "a", "templates": ["a"]}, "spec.templates[0]"),
        ("Sensor", {"dependencies": [], "triggers": [{"template": "x"}]}, "spec.triggers[0]"),
        ("Sensor", "x", "spec"),
    ],
)
def test_malformed_documents_are_reported_not_crashed_on(kind: str, spec: Any, path: str) -> None:
    doc = {"apiVersion": ARGO, "kind": kind, "metadata": META, "spec": spec}
    problems = document_problems(doc)
    assert problems and problems[0][0].startswith(path), problems
