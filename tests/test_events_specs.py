"""events/*.yaml: strict schemas, the cross-team names, and refusals."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.errors import UsageError
from cnai.events.lint import documents, lint_folder
from cnai.events.spec import load_spec
from cnai.lint import document_problems
from cnai.lint.derived import argo_problems

EVENTS = Path(__file__).resolve().parents[1] / "events"
FILES = ["eventbus.yaml", "eventsource-github.yaml", "eventsource-data.yaml"]
FILES += ["sensor-retrain.yaml", "sensor-score.yaml", "rbac.yaml"]


def _docs() -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for _, d in documents(EVENTS)}


def test_every_file_exists_and_validates_against_the_installed_strict_schemas() -> None:
    """No upstream copy needed: Argo Events kinds against the schema derived from Hera's
    models, RBAC against Kubernetes 1.35 (kubernetes-validate)."""
    assert sorted(p.name for p in EVENTS.glob("*.yaml")) == sorted(FILES)
    for path, doc in documents(EVENTS):
        assert document_problems(doc) == [], path
    assert lint_folder(EVENTS) == []


def test_schema_validation_catches_a_wrong_type() -> None:
    sensor = copy.deepcopy(_docs()["Sensor/cnai-retrain"])
    sensor["spec"]["dependencies"][0]["filters"]["data"][0]["value"] = "^push$"
    assert [p for p, _ in document_problems(sensor)] == [
        "spec.dependencies[0].filters.data[0].value"
    ]


def test_workflow_in_the_trigger_validates_against_the_argo_workflows_schema() -> None:
    trigger = _docs()["Sensor/cnai-retrain"]["spec"]["triggers"][0]
    resource = trigger["template"]["argoWorkflow"]["source"]["resource"]
    assert argo_problems(resource) == []
    resource = copy.deepcopy(resource)
    resource["spec"]["arguments"]["parameter"] = resource["spec"]["arguments"].pop("parameters")
    assert [p for p, _ in argo_problems(resource)] == ["spec.arguments.parameter"]


def test_strict_schema_catches_a_misspelled_field() -> None:
    sensor = copy.deepcopy(_docs()["Sensor/cnai-retrain"])
    sensor["spec"]["dependencies"][0]["eventSourceNmae"] = "cnai-github"
    assert [p for p, _ in document_problems(sensor)] == ["spec.dependencies[0].eventSourceNmae"]
    source = copy.deepcopy(_docs()["EventSource/cnai-data"])
    source["spec"]["webhook"]["data-updated"]["endpont"] = "/typo"
    assert [p for p, _ in document_problems(source)] == ["spec.webhook.data-updated.endpont"]
    role = copy.deepcopy(_docs()["Role/cnai-events-sensor"])
    role["rules"][0]["verb"] = ["get"]
    assert [p for p, _ in document_problems(role)] == ["rules[0].verb"]


def test_contract_names_ports_and_secrets() -> None:
    docs = _docs()
    assert docs["EventBus/default"]["spec"]["jetstream"]
    github = docs["EventSource/cnai-github"]["spec"]["github"]["push"]
    assert github["events"] == ["push"]
    assert github["webhook"]["endpoint"] == "/push" and github["webhook"]["port"] == "12000"
    assert github["webhook"]["maxPayloadSize"] >= 25 * 1000 * 1000
    assert github["webhookSecret"] == {"name": "cnai-github-webhook", "key": "secret"}
    data = docs["EventSource/cnai-data"]["spec"]
    hook = data["webhook"]["data-updated"]
    assert (hook["endpoint"], hook["port"]) == ("/data-updated", "12001")
    assert hook["authSecret"] == {"name": "cnai-data-webhook", "key": "token"}
    assert "nightly" in data["calendar"]
    sensor = docs["Sensor/cnai-retrain"]["spec"]
    assert sensor["template"]["serviceAccountName"] == "cnai-events-sensor"
    workflow = sensor["triggers"][0]["template"]["argoWorkflow"]
    assert workflow["source"]["resource"]["spec"]["workflowTemplateRef"] == {"name": "cnai-retrain"}
    names = [p["name"] for p in workflow["source"]["resource"]["spec"]["arguments"]["parameters"]]
    assert names == ["git_sha", "git_branch", "repository", "trigger"]
    assert sensor["triggers"][0]["rateLimit"]
    # One event, at most one Workflow: the submit is never retried (see test_cluster_rbac).
    assert (sensor["triggers"][0].get("retryStrategy") or {}).get("steps", 1) <= 1
    for doc in docs.values():
        assert doc["metadata"].get("namespace") == "cnai"


def test_string_filters_are_anchored() -> None:
    """Argo matches string filters unanchored; each regex must anchor itself."""
    sensor = _docs()["Sensor/cnai-retrain"]
    for dependency in sensor["spec"]["dependencies"]:
        for item in (dependency.get("filters") or {}).get("data") or []:
            if item["type"] != "string":
                continue
            for value in item["value"]:
                assert value.startswith("^") or value.startswith('[\\[,]\\s*"'), value


def test_least_privilege_rbac_and_hardened_pods() -> None:
    docs = _docs()
    role = docs["Role/cnai-events-sensor"]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        # Exactly the trigger's calls: see tests/test_cluster_rbac.py for the contract.
        assert set(rule["verbs"]) <= {"create", "list", "get"}
    binding = docs["RoleBinding/cnai-events-sensor"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cnai-events-sensor", "namespace": "cnai"}
    ]
    assert not any(d["kind"].startswith("Cluster") for d in docs.values())
    for key in ("EventSource/cnai-github", "EventSource/cnai-data", "Sensor/cnai-retrain"):
        template = docs[key]["spec"]["template"]
        assert template["securityContext"]["runAsNonRoot"] is True
        resources = template["container"]["resources"]
        assert resources["requests"] and resources["limits"]
    jetstream = docs["EventBus/default"]["spec"]["jetstream"]
    assert jetstream["securityContext"]["runAsNonRoot"] is True
    assert jetstream["containerTemplate"]["resources"]["limits"]


def test_no_secret_values_in_yaml() -> None:
    """Secrets are referenced by name and key, never embedded."""
    assert not any(d["kind"] == "Secret" for d in _docs().values())
    text = "\n".join((EVENTS / f).read_text() for f in FILES)
    assert not re.search(r"^\s*stringData:", text, re.MULTILINE)


def _variant(tmp_path: Path, edit: Any) -> Path:
    folder = tmp_path / "events"
    folder.mkdir()
    for name in FILES:
        docs = list(yaml.safe_load_all((EVENTS / name).read_text()))
        for doc in docs:
            if doc["kind"] == "Sensor" and doc["metadata"]["name"] == "cnai-retrain":
                edit(doc)
        (folder / name).write_text(yaml.safe_dump_all(docs))
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["spec"]["dependencies"][0]["filters"].update(script="return true"), "script"),
        (
            lambda d: d["spec"]["dependencies"][0]["filters"]["exprs"][0].update(
                expr="len(after) == 1"  # govaluate without functions, as in Argo Events
            ),
            "Undefined function len",
        ),
        (
            lambda d: d["spec"]["triggers"][0]["template"].update(
                conditions="github-push && data-updated"
            ),
            "conditions",
        ),
        (
            lambda d: d["spec"]["dependencies"][0]["filters"]["data"][1].update(
                path='body.commits.#(id=="x").id'
            ),
            "query",
        ),
        (
            lambda d: d["spec"]["triggers"][0]["template"]["argoWorkflow"]["parameters"][1][
                "src"
            ].update(dataTemplate="{{ upper .Input.body.ref }}"),
            "dataTemplate",
        ),
        (
            lambda d: d["spec"]["dependencies"][0]["filters"]["data"][1].update(value=["(["]),
            "bad regex",
        ),
    ],
)
def test_gateway_refuses_what_it_cannot_honour_at_start_up(
    tmp_path: Path, edit: Any, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        load_spec(_variant(tmp_path, edit))
