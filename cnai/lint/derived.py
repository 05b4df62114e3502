"""Strict JSON schemas for the Argo kinds, derived from Hera's generated models.

Hera ships pydantic models generated from Argo's API (``hera.workflows.models``,
``hera.events.models``); their JSON schema is the starting point, so the verdict
follows the installed Hera. It is then:

1. corrected to the wire format of the Argo versions the platform runs, with the
   generated data in ``data/argo-workflows-v4.1.json`` and ``data/argo-events-v1.9.json``
   (see :mod:`cnai.lint.upstream_diff`: fields Hera's models lack, such as v4.1's
   ``Template.pendingTimeout``; fields whose wire type differs; protobuf-only shapes;
   each entry cites the upstream schema file and line). EventBus, which Hera has no
   model for, is taken whole from that data;
2. corrected where Kubernetes accepts more than the generated type says: a resource
   ``Quantity`` may be a number (``cpu: 1``), as in the Kubernetes 1.35 schema that
   kubernetes-validate ships (``_definitions.json``, ``io.k8s.apimachinery.pkg.api.
   resource.Quantity``);
3. made strict: every object with declared properties gets
   ``additionalProperties: false``, so an unknown field is an error with its path.

Derived schemas are cached in memory and on disk (``$XDG_CACHE_HOME/cnai`` or
``~/.cache/cnai``, keyed by the Hera version and the data files' digest), so a
``cnai lint`` run after the first does not import Hera's models at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from cnai.errors import CnaiError
from cnai.lint.upstream_diff import DATA_DIR, EVENTS, FAMILIES, WORKFLOWS, Family, hera_schemas
from cnai.lint.validation import SCHEMA_NAME, drop_nulls, schema_problems

WORKFLOW_KINDS = WORKFLOWS.kinds
"""Argo Workflows kinds (apiVersion argoproj.io/v1alpha1)."""
EVENT_KINDS = (*EVENTS.kinds, "EventBus")
"""Argo Events kinds (apiVersion argoproj.io/v1alpha1)."""
ARGO_API_VERSION = "argoproj.io/v1alpha1"
"""apiVersion of every Argo kind."""
QUANTITY = {"oneOf": [{"type": "string"}, {"type": "number"}]}
"""A Kubernetes quantity as kubernetes-validate's 1.35 schema declares it."""
_DROP = ("description", "title", "default", "examples", "example")


def family_of(kind: str) -> Family:
    """The family a kind belongs to (KeyError for a non-Argo kind)."""
    for family in FAMILIES:
        if kind in family.kinds or kind in _data(family.data_file).get("upstream_only_kinds", {}):
            return family
    raise KeyError(kind)


@lru_cache(maxsize=4)
def _data(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA_DIR / name).read_text())
    return loaded


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "cnai" / "lint-schemas"


def _cache_key(family: Family) -> str:
    digest = hashlib.sha256((DATA_DIR / family.data_file).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return f"{family.name}-hera{metadata.version('hera')}-{digest.hexdigest()[:16]}.json"


def _simplify(node: Any, name: str | None = None) -> Any:
    """Drop prose and ``anyOf [X, null]`` wrappers; close every object with properties."""
    if isinstance(node, list):
        return [_simplify(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1 and set(node) <= {"anyOf", *_DROP}:
            return _simplify(options[0], name)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: _simplify(v) for k, v in value.items()}
        elif key in ("enum", "required", "const"):
            out[key] = value
        else:
            out[key] = _simplify(value)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
        if name:
            out[SCHEMA_NAME] = name
    return out


def build_schema(family: Family) -> dict[str, Any]:
    """The strict ``$defs`` of ``family``: Hera's models, corrected, closed."""
    defs, roots = hera_schemas(family)
    for kind, root in roots.items():
        defs.setdefault(kind, root)
    data = _data(family.data_file)
    for record in data["replace_definitions"]:
        defs[record["definition"]] = record["schema"]
    for name, record in data["definitions"].items():
        defs[name] = record["schema"]
    missing = sorted({r["definition"] for r in data["fields"]} - set(defs))
    if missing:
        raise CnaiError(
            f"cnai/lint/data/{family.data_file} was generated for Hera {data['hera']}; the "
            f"installed Hera lacks {', '.join(missing)}: regenerate it with "
            "`python -m cnai.lint.upstream_diff --shared DIR`"
        )
    for record in data["fields"]:
        target = defs[record["definition"]]
        props = target.setdefault("properties", {})
        if record["change"] in ("add", "replace"):
            props[record["field"]] = record["schema"]
        elif record["change"] == "remove":
            props.pop(record["field"], None)
            target["required"] = [r for r in target.get("required", []) if r != record["field"]]
        elif record["change"] == "required":
            target["required"] = record["required"]
    if "Quantity" in defs:
        defs["Quantity"] = QUANTITY
    for kind, name in data.get("upstream_only_kinds", {}).items():
        defs[kind] = {"$ref": f"#/$defs/{name}"}
    closed = {name: _simplify(body, name) for name, body in defs.items()}
    if "Plugin" in closed:
        # an executor plugin's body is free-form JSON keyed by the plugin's name
        closed["Plugin"] = {"type": "object"}
    return closed


@lru_cache(maxsize=4)
def family_schema(family: Family) -> dict[str, Any]:
    """``build_schema(family)``, through the on-disk cache."""
    path = _cache_dir() / _cache_key(family)
    try:
        cached: dict[str, Any] = json.loads(path.read_text())
        return cached
    except (OSError, ValueError):
        pass
    schema = build_schema(family)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(schema))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs speed
    return schema


@lru_cache(maxsize=16)
def _validator(kind: str) -> Any:
    import jsonschema

    defs = family_schema(family_of(kind))
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind}", "$defs": defs})


def argo_problems(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(path, problem) of an Argo Workflows or Argo Events object against its strict schema."""
    kind = str(doc.get("kind"))
    found: list[tuple[str, str]] = []
    if doc.get("apiVersion") != ARGO_API_VERSION:
        found.append((f"{prefix}.apiVersion" if prefix else "apiVersion",
                      f"must be {ARGO_API_VERSION} for {kind}"))  # fmt: skip
    from cnai.lint.removed import rename_removed

    return found + rename_removed(schema_problems(_validator(kind), drop_nulls(doc), prefix), kind)
