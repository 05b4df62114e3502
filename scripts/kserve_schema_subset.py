"""Write tests/fixtures/kserve/inferenceservice-v1beta1-subset.schema.json from KServe's CRD.

Usage: python scripts/kserve_schema_subset.py CRD.yaml, where CRD.yaml is kserve/kserve
charts/kserve-crd/templates/serving.kserve.io_inferenceservices.yaml at the pinned tag.
At the top level, spec, spec.predictor and spec.predictor.containers[] only the
properties the chart's serving.yaml sets are kept (unchanged); everything below them is
upstream's schema in full. Descriptions are dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

SOURCE = (
    "kserve/kserve charts/kserve-crd/templates/serving.kserve.io_inferenceservices.yaml "
    "at tag v0.20.0 (commit 1fb781055dd1567164358233e1125142ca6ef1fe)"
)
OUT = Path(__file__).resolve().parents[1] / "tests/fixtures/kserve"
TOP = ["apiVersion", "kind", "metadata", "spec"]
PREDICTOR = [
    "annotations",
    "labels",
    "minReplicas",
    "maxReplicas",
    "serviceAccountName",
    "securityContext",
    "deploymentStrategy",
    "containers",
]
CONTAINER = [
    "name",
    "image",
    "imagePullPolicy",
    "args",
    "env",
    "envFrom",
    "ports",
    "resources",
    "securityContext",
    "readinessProbe",
    "livenessProbe",
]


def _keep(node: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {**node, "properties": {name: node["properties"][name] for name in names}}


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip(x) for x in node]
    return node


def subset(crd: dict[str, Any]) -> dict[str, Any]:
    """The v1beta1 schema cut down as described in the module docstring."""
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = version["schema"]["openAPIV3Schema"]
    predictor = schema["properties"]["spec"]["properties"]["predictor"]
    containers = predictor["properties"]["containers"]
    kept_predictor = _keep(predictor, PREDICTOR)
    kept_predictor["properties"]["containers"] = {
        **containers,
        "items": _keep(containers["items"], CONTAINER),
    }
    spec = _keep(schema["properties"]["spec"], ["predictor"])
    spec["properties"]["predictor"] = kept_predictor
    top = _keep(schema, TOP)
    top["properties"]["spec"] = spec
    comment = (
        f"Subset of the InferenceService v1beta1 openAPIV3Schema from {SOURCE}, "
        "made by scripts/kserve_schema_subset.py (see its docstring)."
    )
    return {"$comment": comment, **_strip(top)}


def main() -> None:
    """Read the CRD named on the command line; write the subset."""
    crd = yaml.safe_load(Path(sys.argv[1]).read_text())
    target = OUT / "inferenceservice-v1beta1-subset.schema.json"
    target.write_text(json.dumps(subset(crd), indent=1, sort_keys=True) + "\n")
    print(target)


if __name__ == "__main__":
    main()
