"""Cross-check of cnai lint's installed schemas against the upstream schema files.

Runs where a copy of the upstream schemas is present ($CNAI_SHARED_SCHEMAS or
../shared/schemas, as in CI): argo-workflows v4.1.2 and argo-events v1.9.11
``api/jsonschema/schema.json`` and KubeRay v1.7.0 ``ray.io_rayjobs.yaml``. A fresh clone
has no such copy; cnai lint and the rest of the schema tests do not need it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from cnai.chart import CHART_DIR
from cnai.events.lint import documents
from cnai.lint import document_problems
from cnai.lint.helm import render
from cnai.lint.rayjob import rayjob_problems
from cnai.lint.schema import argo_schema_problems, events_schema_problems, rayjob_schema_problems
from cnai.lint.upstream_diff import DATA_DIR, generate
from pipelines.retrain import TEMPLATE_NAME, compile_manifests
from pipelines.score import pipeline as score_pipeline

REPO = Path(__file__).resolve().parents[1]
ARGO_KINDS = {"Workflow", "WorkflowTemplate", "CronWorkflow", "ClusterWorkflowTemplate"}
EVENT_KINDS = {"EventSource", "Sensor", "EventBus"}


def _project_objects() -> list[tuple[str, dict[str, Any]]]:
    found = [("compiled", yaml.safe_load(compile_manifests()[f"{TEMPLATE_NAME}.yaml"]))]
    found += [("compiled score", yaml.safe_load(score_pipeline.manifests()["cnai-score.yaml"]))]
    found += [(str(path), doc) for path, doc in documents(REPO / "events")]
    for values in ([], ["webhooks.expose=ingress", "webhooks.ingress.host=h.example.com"]):
        found += [
            (f"chart {values} {item.template}", item.doc)
            for item in render(REPO / CHART_DIR, values, [], "ml")
        ]
    return [(label, doc) for label, doc in found if doc.get("kind") in ARGO_KINDS | EVENT_KINDS]


def _upstream(doc: dict[str, Any], schemas: Path) -> list[tuple[str, str]]:
    if doc["kind"] in ARGO_KINDS:
        return argo_schema_problems(doc, schemas)
    return events_schema_problems(doc, schemas)


def test_shipped_data_is_exactly_what_the_generator_derives_from_upstream(
    schemas_dir: Path,
) -> None:
    """The v4.1/v1.9 corrections and the RayJob subset are generated, not hand-written."""
    for name, text in generate(schemas_dir).items():
        assert (DATA_DIR / name).read_text() == text, f"regenerate {name}"


def test_installed_and_upstream_verdicts_agree_on_the_project(schemas_dir: Path) -> None:
    """Compiled template, events/ and the rendered chart: both accept every object, and
    both reject each with a wrong-typed field."""
    objects = _project_objects()
    assert {d["kind"] for _, d in objects} == {
        "WorkflowTemplate",
        "EventSource",
        "Sensor",
        "EventBus",
    }
    for label, doc in objects:
        assert document_problems(doc) == [], label
        assert _upstream(doc, schemas_dir) == [], label
        broken = copy.deepcopy(doc)
        broken["spec"]["replicas" if doc["kind"] != "WorkflowTemplate" else "parallelism"] = "x"
        if doc["kind"] == "EventBus":
            broken["spec"] = {"jetstream": {"replicas": "x"}}
        assert document_problems(broken) != [], label
        assert _upstream(broken, schemas_dir) != [], label


def test_rayjob_subset_and_upstream_crd_agree_on_the_pipelines_rayjobs(
    schemas_dir: Path,
) -> None:
    compiled = yaml.safe_load(compile_manifests()[f"{TEMPLATE_NAME}.yaml"])
    manifests = [
        yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "1", t["resource"]["manifest"]))
        for t in compiled["spec"]["templates"]
        if "resource" in t
    ]
    assert len(manifests) == 2
    for manifest in manifests:
        assert rayjob_problems(manifest) == []
        assert rayjob_schema_problems(manifest, schemas_dir) == []
        broken = copy.deepcopy(manifest)
        broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
        assert rayjob_problems(broken) != []
        assert rayjob_schema_problems(broken, schemas_dir) != []


def test_upstream_schemas_accept_unknown_fields_that_cnai_lint_rejects(schemas_dir: Path) -> None:
    """Why the installed schemas are closed: upstream's would let a typo through."""
    compiled = yaml.safe_load(compile_manifests()[f"{TEMPLATE_NAME}.yaml"])
    compiled["spec"]["templates"][0]["retryStategy"] = {"limit": 1}
    assert argo_schema_problems(compiled, schemas_dir) == []
    assert [p for p, _ in document_problems(compiled)] == ["spec.templates[0].retryStategy"]


def test_cli_cross_checks_with_schemas(schemas_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    args = ["--json", "lint", str(REPO / "events"), "--chart", str(REPO / CHART_DIR)]
    result = run_cli([*args, "--schemas", str(schemas_dir)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.json()["schemas"] == str(schemas_dir)
