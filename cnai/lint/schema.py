"""Cross-check against the upstream schema files themselves (optional).

``cnai lint`` validates from what the project installs (:mod:`cnai.lint.derived`,
:mod:`cnai.lint.core`, :mod:`cnai.lint.rayjob`). Where a copy of the upstream schemas
is available (``cnai lint --schemas DIR``, tests with ``$CNAI_SHARED_SCHEMAS``), the
documents are validated against them too, as the upstream projects publish them:

- Argo Workflows v4.1 and Argo Events v1.9 JSON schemas: a document is validated
  against its kind's own definition; Argo declares IntOrString as string only (closed
  upstream as won't-fix), so integers are allowed there, as the schemas' SOURCES.txt
  advises. These schemas do not forbid unknown fields.
- KubeRay v1.7 RayJob CRD: a RayJob manifest is validated against the CRD's
  ``openAPIV3Schema`` for ``ray.io/v1``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cnai.lint.upstream_diff import EVENTS_SCHEMA, RAYJOB_CRD, WORKFLOWS_SCHEMA
from cnai.lint.validation import schema_problems

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1.4 MB

_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_EVENTS_DEFINITIONS = {
    "EventBus": "io.argoproj.events.v1alpha1.EventBus",
    "EventSource": "io.argoproj.events.v1alpha1.EventSource",
    "Sensor": "io.argoproj.events.v1alpha1.Sensor",
}


@lru_cache(maxsize=4)
def _definitions(path: str) -> dict[str, Any]:
    schema = json.loads(Path(path).read_text())
    definitions = dict(schema["definitions"])
    definitions[_INT_OR_STRING] = {"type": ["string", "integer"]}
    return definitions


@lru_cache(maxsize=16)
def _validator(path: str, name: str) -> Any:
    import jsonschema

    root = {"$ref": f"#/definitions/{name}", "definitions": _definitions(path)}
    return jsonschema.Draft7Validator(root)


def _upstream(doc: dict[str, Any], path: Path, name: str) -> list[tuple[str, str]]:
    if not path.is_file():
        return [("(document)", f"upstream schema {path} not found")]
    if name not in _definitions(str(path)):
        return [("kind", f"no upstream schema definition {name}")]
    return [(p, f"upstream {m}") for p, m in schema_problems(_validator(str(path), name), doc)]


def argo_schema_problems(doc: dict[str, Any], schemas_dir: Path) -> list[tuple[str, str]]:
    """Problems of an Argo Workflows object against the upstream Argo v4.1 schema."""
    name = f"io.argoproj.workflow.v1alpha1.{doc.get('kind')}"
    return _upstream(doc, schemas_dir / WORKFLOWS_SCHEMA, name)


def events_schema_problems(doc: dict[str, Any], schemas_dir: Path) -> list[tuple[str, str]]:
    """Problems of an Argo Events object against the upstream Argo Events v1.9 schema."""
    name = _EVENTS_DEFINITIONS.get(str(doc.get("kind")), str(doc.get("kind")))
    return _upstream(doc, schemas_dir / EVENTS_SCHEMA, name)


@lru_cache(maxsize=4)
def _rayjob_validator(path: str) -> Any:
    import jsonschema

    crd = yaml.load(Path(path).read_text(), Loader=_LOADER)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft7Validator(dict(version["schema"]["openAPIV3Schema"]))


def rayjob_schema_problems(manifest: Any, schemas_dir: Path) -> list[tuple[str, str]]:
    """Problems of a RayJob manifest against the upstream KubeRay v1.7 CRD."""
    path = schemas_dir / RAYJOB_CRD
    if not path.is_file():
        return [("(document)", f"upstream CRD {path} not found")]
    return schema_problems(_rayjob_validator(str(path)), manifest)
