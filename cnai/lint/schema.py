"""Validation against the upstream schemas in ``../shared/schemas``.

- Argo Workflows v4.1 JSON schema: a document is validated against its kind's own
  definition; Argo declares IntOrString as string only (closed upstream as
  won't-fix), so integers are allowed there, as the schemas' SOURCES.txt advises.
- KubeRay v1.7 RayJob CRD: a RayJob manifest is validated against the CRD's
  ``openAPIV3Schema`` for ``ray.io/v1``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ARGO_SCHEMA = "argo-workflows-v4.1.schema.json"
RAYJOB_CRD = "kuberay-v1.7-rayjob-crd.yaml"
_DEFINITION = "io.argoproj.workflow.v1alpha1.{kind}"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


@lru_cache(maxsize=4)
def _argo_definitions(path: str) -> dict[str, Any]:
    schema = json.loads(Path(path).read_text())
    definitions = dict(schema["definitions"])
    definitions[_INT_OR_STRING] = {"type": ["string", "integer"]}
    return definitions


def _errors(schema: dict[str, Any], instance: Any) -> list[tuple[str, str]]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    found = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        path = ""
        for part in error.absolute_path:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        found.append((path or "(document)", f"schema: {error.message}"))
    return found


def argo_schema_problems(doc: dict[str, Any], schemas_dir: Path) -> list[tuple[str, str]]:
    """Problems of ``doc`` against the Argo schema (none when the schema is absent)."""
    path = schemas_dir / ARGO_SCHEMA
    if not path.is_file():
        return []
    definitions = _argo_definitions(str(path))
    name = _DEFINITION.format(kind=doc.get("kind"))
    if name not in definitions:
        return [("kind", f"no schema definition {name}")]
    return _errors({"$ref": f"#/definitions/{name}", "definitions": definitions}, doc)


@lru_cache(maxsize=4)
def _rayjob_schema(path: str) -> dict[str, Any]:
    crd = yaml.safe_load(Path(path).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return dict(version["schema"]["openAPIV3Schema"])


def rayjob_schema_problems(manifest: Any, schemas_dir: Path) -> list[tuple[str, str]]:
    """Problems of a RayJob manifest against the KubeRay CRD (none when absent)."""
    path = schemas_dir / RAYJOB_CRD
    if not path.is_file():
        return []
    return _errors(_rayjob_schema(str(path)), manifest)
