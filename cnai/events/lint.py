"""Offline checks of ``events/*.yaml``.

Every document is validated strictly by kind with :mod:`cnai.lint` (Argo Events kinds
against the schema derived from ``hera.events`` models and corrected to the v1.9 wire
format; the Sensor's embedded Workflow against the Argo Workflows schema; the RBAC
objects against Kubernetes 1.35's). Given the upstream ``argo-events`` JSON schema
file, the Argo Events kinds are validated against it too (a cross-check).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DEFINITIONS = {
    "EventBus": "io.argoproj.events.v1alpha1.EventBus",
    "EventSource": "io.argoproj.events.v1alpha1.EventSource",
    "Sensor": "io.argoproj.events.v1alpha1.Sensor",
    "ServiceAccount": "io.k8s.api.core.v1.ServiceAccount",
    "Role": "io.k8s.api.rbac.v1.Role",
    "RoleBinding": "io.k8s.api.rbac.v1.RoleBinding",
}
"""Kinds of events/ and their definitions in the upstream Argo Events schema."""


def documents(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every YAML document under ``folder`` with its file."""
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def schema_problems(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Where ``doc`` breaks its kind's definition in the upstream Argo Events JSON schema."""
    import jsonschema

    kind = str(doc.get("kind"))
    if kind not in DEFINITIONS:
        return [f"kind {kind!r}: no schema definition known"]
    root = {"$ref": f"#/definitions/{DEFINITIONS[kind]}", "definitions": schema["definitions"]}
    validator = jsonschema.Draft4Validator(root)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(doc)
    ]


def lint_folder(folder: Path, schema_path: Path | None = None) -> list[str]:
    """Every problem in ``folder``'s YAML as ``file Kind/name: path: message``."""
    from cnai.lint import document_problems

    schema = json.loads(schema_path.read_text()) if schema_path else None
    problems = []
    for path, doc in documents(folder):
        label = f"{path.name} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        found = [f"{p}: {m}" for p, m in document_problems(doc)]
        if schema is not None:
            found += [f"upstream {p}" for p in schema_problems(doc, schema)]
        problems += [f"{label}: {p}" for p in found]
    return problems
