"""``cnai lint``: offline, strict checks of Kubernetes YAML by kind.

Every document is validated against a schema the project installs, so the verdict is
the same on every machine (a checkout needs no copy of the upstream schemas):

- Argo Workflows kinds (Workflow, WorkflowTemplate, CronWorkflow,
  ClusterWorkflowTemplate) and Argo Events kinds (EventSource, Sensor, EventBus):
  strict schemas derived from Hera's generated models and corrected to the v4.1 /
  v1.9 wire format (:mod:`cnai.lint.derived`); a Sensor's ``argoWorkflow`` trigger's
  embedded Workflow is checked as a Workflow;
- Workflows also get the semantic checks of :mod:`cnai.lint.semantic` (references,
  DAG, memoize keys, ``when``, embedded RayJob manifests);
- KubeRay ``ray.io/v1`` RayJob: the project's RayJob subset of KubeRay v1.7.0's CRD
  (:mod:`cnai.lint.rayjob`);
- every other kind: the Kubernetes 1.35 strict schema from kubernetes-validate
  (:mod:`cnai.lint.core`); a kind none of these knows is an error.

Optionally (``schemas_dir``), documents are also validated against the upstream
schema files themselves (:mod:`cnai.lint.schema`), as a cross-check.
Each finding reads ``<file>: <field path>: <problem>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    """One finding: where it is and what is wrong."""

    source: str
    """The file (or label) the document came from."""
    path: str
    """Field path inside the document (``spec.templates[2].memoize.key``)."""
    message: str
    """What is wrong."""

    def __str__(self) -> str:
        return f"{self.source}: {self.path}: {self.message}"


def _embedded_workflows(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    spec = doc.get("spec")
    triggers = spec.get("triggers") if isinstance(spec, dict) else None
    found = []
    for i, trigger in enumerate(triggers if isinstance(triggers, list) else []):
        node: Any = trigger
        for key in ("template", "argoWorkflow", "source", "resource"):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            found.append((f"spec.triggers[{i}].template.argoWorkflow.source.resource", node))
    return found


def document_problems(doc: Any, schemas_dir: Path | None = None) -> list[tuple[str, str]]:
    """(path, problem) of one parsed Kubernetes object, dispatched by its kind."""
    from cnai.lint.core import SchemaNotFoundError, core_problems
    from cnai.lint.derived import EVENT_KINDS, WORKFLOW_KINDS, argo_problems

    if not isinstance(doc, dict):
        return [("(document)", "expected a YAML mapping")]
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        return [("kind", "required: the object's kind (e.g. WorkflowTemplate)")]
    if not isinstance(api_version, str) or not api_version:
        return [("apiVersion", f"required for {kind}")]
    if kind in WORKFLOW_KINDS:
        from cnai.lint.semantic import semantic_problems

        found = argo_problems(doc)
        try:
            found += semantic_problems(doc, schemas_dir)
        except (AttributeError, TypeError, KeyError):
            if not found:
                raise  # a well-formed document must never crash the semantic checks
            # the semantic checks need the shapes the schema problems above report broken
        if schemas_dir is not None:
            from cnai.lint.schema import argo_schema_problems

            found += argo_schema_problems(doc, schemas_dir)
        return found
    if kind in EVENT_KINDS:
        found = argo_problems(doc)
        for where, resource in _embedded_workflows(doc):
            found += argo_problems(resource, where)
        if schemas_dir is not None:
            from cnai.lint.schema import events_schema_problems

            found += events_schema_problems(doc, schemas_dir)
        return found
    if kind == "RayJob" and api_version.startswith("ray.io/"):
        from cnai.lint.rayjob import rayjob_problems

        return rayjob_problems(doc)
    try:
        return core_problems(doc)
    except SchemaNotFoundError:
        return [
            (
                "kind",
                f"no schema for {api_version} {kind}: cnai lint knows Argo Workflows and "
                "Events kinds, KubeRay ray.io/v1 RayJob and Kubernetes 1.35 kinds",
            )
        ]


def lint_document(doc: Any, source: str, schemas_dir: Path | None = None) -> list[Problem]:
    """Every problem of one parsed document."""
    return [Problem(source, p, m) for p, m in document_problems(doc, schemas_dir)]


def lint_text(text: str, source: str, schemas_dir: Path | None = None) -> list[Problem]:
    """Every problem of every YAML document in ``text``."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        return [Problem(source, "(yaml)", f"not valid YAML: {exc}")]
    if not docs:
        return [Problem(source, "(yaml)", "no document")]
    found: list[Problem] = []
    for index, doc in enumerate(docs):
        label = source if len(docs) == 1 else f"{source}[{index}]"
        found += lint_document(doc, label, schemas_dir)
    return found
