"""KubeRay RayJob manifests, checked against the project's own RayJob schema.

``data/kuberay-v1.7-rayjob.json`` holds the RayJob fields the pipeline uses, cut from
KubeRay v1.7.0's CRD (``ray-operator/config/crd/bases/ray.io_rayjobs.yaml``) by
:mod:`cnai.lint.upstream_diff`. Here it is made strict the way the API server treats a
structural schema: unknown fields are errors (fields KubeRay defines but the subset
leaves out are named as such), ``x-kubernetes-int-or-string`` allows both types, and
the embedded pod templates and metadata are checked with the Kubernetes 1.35 schema
(:mod:`cnai.lint.core`). CEL rules (``x-kubernetes-validations``) are not evaluated.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cnai.lint.core import registry
from cnai.lint.upstream_diff import DATA_DIR
from cnai.lint.validation import drop_nulls, schema_problems

DATA_FILE = "kuberay-v1.7-rayjob.json"
"""The shipped subset."""
API_VERSION = "ray.io/v1"
"""The RayJob apiVersion the subset describes."""
_K8S = "https://kubernetes.io/api/_definitions.json#/$defs/"


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: _strict(v) for k, v in value.items()}
        elif key in ("enum", "required", "x-cnai-outside-subset"):
            out[key] = value
        else:
            out[key] = _strict(value)
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("k8s:"):
        out["$ref"] = _K8S + ref[len("k8s:") :]
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    data = json.loads((DATA_DIR / DATA_FILE).read_text())
    schema = _strict(data["schema"])
    schema["properties"]["apiVersion"] = {"const": API_VERSION}
    schema["properties"]["kind"] = {"const": "RayJob"}
    schema["required"] = ["apiVersion", "kind", "spec"]
    return jsonschema.Draft202012Validator(schema, registry=registry())


def rayjob_problems(manifest: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(path, problem) of a RayJob manifest against the project's strict RayJob schema."""
    return schema_problems(_validator(), drop_nulls(manifest), prefix)
