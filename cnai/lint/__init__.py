"""``cnai lint``: offline checks of Argo Workflow/WorkflowTemplate YAML.

Three layers, each reporting ``<file>: <field path>: <problem>``:

1. :mod:`cnai.lint.roundtrip` - strict round-trip through Hera's Argo models: a
   field that does not survive (a typo such as ``retryStategy``) is an error;
2. :mod:`cnai.lint.semantic` - referenced templates exist, DAG dependencies exist
   and are acyclic, every ``{{...}}`` reference resolves, memoize keys are
   well-formed, ``when`` expressions parse, RayJob manifests are valid against the
   KubeRay CRD schema (when the schemas folder is present);
3. :mod:`cnai.lint.schema` - the upstream Argo JSON schema, when present.
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


def lint_document(doc: Any, source: str, schemas_dir: Path | None = None) -> list[Problem]:
    """Every problem of one parsed document."""
    from cnai.lint.roundtrip import roundtrip_problems
    from cnai.lint.schema import argo_schema_problems
    from cnai.lint.semantic import semantic_problems

    if not isinstance(doc, dict):
        return [Problem(source, "(document)", "expected a YAML mapping")]
    kind = doc.get("kind")
    if kind not in ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"):
        return [Problem(source, "kind", f"{kind!r} is not an Argo workflow kind")]
    found = [Problem(source, p, m) for p, m in roundtrip_problems(doc)]
    found += [Problem(source, p, m) for p, m in semantic_problems(doc, schemas_dir)]
    if schemas_dir is not None:
        found += [Problem(source, p, m) for p, m in argo_schema_problems(doc, schemas_dir)]
    return found


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
