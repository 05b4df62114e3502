"""Generate the schema data ``cnai lint`` ships, from the upstream schemas (maintainer tool).

``cnai lint`` validates strictly from what the project installs (see
:mod:`cnai.lint.derived`). Two of its inputs are data files generated here, never
edited by hand, and checked by a test against the upstream files whenever a copy of
them is present (``$CNAI_SHARED_SCHEMAS`` or ``../shared/schemas``):

- ``data/argo-workflows-v4.1.json`` and ``data/argo-events-v1.9.json``: every place
  where the wire format in the upstream JSON schema (argo-workflows v4.1.2,
  argo-events v1.9.11 ``api/jsonschema/schema.json``) differs from Hera's generated
  models: fields the models lack (``add``), fields whose type differs (``replace``),
  fields only the models have (``remove``: protobuf-only shapes such as an inlined
  struct), required fields the wire format does not require (``required``) and
  definitions whose wire form is not an object at all (``definitions``). Each
  entry cites the upstream file and line it was taken from.
- ``data/kuberay-v1.7-rayjob.json``: the RayJob fields the project uses, cut from
  KubeRay v1.7.0's ``ray.io_rayjobs.yaml`` CRD; embedded Kubernetes types (pod
  templates, object metadata) are replaced by references to the Kubernetes schema
  :mod:`cnai.lint.core` validates with, so the file stays small.

The comparison walks Hera's schema and the upstream schema side by side from each
kind's root, so a Hera definition is paired with the upstream definition found at
the same field path (the names differ: ``WorkflowSpec`` vs
``io.argoproj.workflow.v1alpha1.WorkflowSpec``). Written here because no library
diffs two JSON schemas by structure and emits corrections. Run::

    python -m cnai.lint.upstream_diff --shared ../shared/schemas          # rewrite data/
    python -m cnai.lint.upstream_diff --shared ../shared/schemas --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1.4 MB

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Where the generated files live inside the package."""

WORKFLOWS_SCHEMA = "argo-workflows-v4.1.schema.json"
"""Upstream Argo Workflows schema file name in the shared folder."""
EVENTS_SCHEMA = "argo-events-v1.9.schema.json"
"""Upstream Argo Events schema file name in the shared folder."""
RAYJOB_CRD = "kuberay-v1.7-rayjob-crd.yaml"
"""Upstream KubeRay RayJob CRD file name in the shared folder."""


@dataclass(frozen=True)
class Family:
    """One group of kinds validated from one Hera module and one upstream schema."""

    name: str
    """Short name (``workflows`` / ``events``)."""
    data_file: str
    """Generated file under :data:`DATA_DIR`."""
    upstream_file: str
    """Upstream schema file name in the shared folder."""
    upstream_source: str
    """Repository, tag and path the upstream file was copied from."""
    hera_module: str
    """Module holding Hera's generated models."""
    prefix: str
    """Upstream definition prefix of the root kinds."""
    kinds: tuple[str, ...]
    """Root kinds that have a Hera model."""


WORKFLOWS = Family(
    name="workflows",
    data_file="argo-workflows-v4.1.json",
    upstream_file=WORKFLOWS_SCHEMA,
    upstream_source="argoproj/argo-workflows v4.1.2 api/jsonschema/schema.json",
    hera_module="hera.workflows.models",
    prefix="io.argoproj.workflow.v1alpha1.",
    kinds=("Workflow", "WorkflowTemplate", "CronWorkflow", "ClusterWorkflowTemplate"),
)
"""Argo Workflows kinds."""
EVENTS = Family(
    name="events",
    data_file="argo-events-v1.9.json",
    upstream_file=EVENTS_SCHEMA,
    upstream_source="argoproj/argo-events v1.9.11 api/jsonschema/schema.json",
    hera_module="hera.events.models",
    prefix="io.argoproj.events.v1alpha1.",
    kinds=("EventSource", "Sensor"),
)
"""Argo Events kinds with a Hera model (EventBus has none: it is taken whole from upstream)."""
FAMILIES = (WORKFLOWS, EVENTS)
"""Every family, in generation order."""

UPSTREAM_ONLY_KINDS = {"events": {"EventBus": "io.argoproj.events.v1alpha1.EventBus"}}
"""Kinds Hera has no model for: their upstream definition is shipped whole (made strict)."""

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
"""Argo declares this string-only although integers are valid (SOURCES.txt, upstream won't-fix)."""

_DROP_KEYS = ("description", "title", "default", "example", "examples")


def hera_schemas(family: Family) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``$defs``, ``{kind: root schema}``) of Hera's models for ``family``."""
    import importlib

    module = importlib.import_module(family.hera_module)
    defs: dict[str, Any] = {}
    roots: dict[str, Any] = {}
    for kind in family.kinds:
        schema = getattr(module, kind).model_json_schema(by_alias=True)
        defs.update(schema.pop("$defs", {}))
        roots[kind] = schema
    return defs, roots


def _unwrap(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``anyOf [X, null]`` pydantic writes for an optional field."""
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            return _unwrap(options[0])
    return schema


def _shape(schema: dict[str, Any]) -> tuple[str, ...]:
    """A comparable outline: ('ref', name) / ('array', ...) / ('map', ...) / ('type', t)."""
    schema = _unwrap(schema)
    if "$ref" in schema:
        return ("ref", schema["$ref"].split("/")[-1])
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return ("array", *_shape(schema["items"]))
    additional = schema.get("additionalProperties")
    if schema.get("type") == "object" and isinstance(additional, dict):
        return ("map", *_shape(additional))
    if "anyOf" in schema:
        return ("anyOf", *sorted(str(_shape(o)) for o in schema["anyOf"]))
    kind = schema.get("type")
    return ("type", ",".join(kind) if isinstance(kind, list) else str(kind))


def _line_index(text: str) -> dict[str, int]:
    """``{definition: line}`` and ``{definition.field: line}`` of a pretty-printed schema."""
    index: dict[str, int] = {}
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith('    "') and line.endswith('": {') and not line.startswith("     "):
            current = line.strip()[1:-4]
            index[current] = number
        elif current and line.startswith('        "') and not line.startswith("         "):
            name = line.strip().split('"')[1]
            index.setdefault(f"{current}.{name}", number)
    return index


@dataclass
class _Diff:
    family: Family
    upstream: dict[str, Any]
    lines: dict[str, int]
    hera_defs: dict[str, Any]
    pairs: dict[str, str] = field(default_factory=dict)
    fields: list[dict[str, Any]] = field(default_factory=list)
    definitions: dict[str, Any] = field(default_factory=dict)
    replaced: list[dict[str, Any]] = field(default_factory=list)

    def source(self, key: str) -> str:
        path = self.family.upstream_source.rsplit(" ", 1)[-1]
        return f"{path}:{self.lines[key]}"

    def upstream_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Copy of an upstream fragment; refs to paired definitions point at Hera's."""
        out = copy.deepcopy(schema)
        for node in _nodes(out):
            for key in _DROP_KEYS:
                node.pop(key, None)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/"):
                name = ref.split("/")[-1]
                hera = next((h for h, u in self.pairs.items() if u == name), None)
                if hera is not None:
                    node["$ref"] = f"#/$defs/{hera}"
                else:
                    node["$ref"] = f"#/$defs/{name}"
                    self.ship(name)
        return out

    def ship(self, name: str) -> None:
        """Ship an upstream definition (and what it references) that Hera lacks."""
        if name in self.definitions:
            return
        self.definitions[name] = {}  # placeholder against cycles
        body = self.upstream[name]
        if name == INT_OR_STRING:
            body = {"type": ["string", "integer"], "format": "int-or-string"}
        self.definitions[name] = {
            "schema": self.upstream_schema(body),
            "source": self.source(name),
        }

    def walk(self, roots: dict[str, Any]) -> None:
        stack = [(schema, kind, f"{self.family.prefix}{kind}") for kind, schema in roots.items()]
        seen: set[tuple[str, str]] = set()
        while stack:
            hera, hera_name, up_name = stack.pop(0)
            if (hera_name, up_name) in seen:
                continue
            seen.add((hera_name, up_name))
            if self.pairs.setdefault(hera_name, up_name) != up_name:
                raise ValueError(
                    f"Hera's {hera_name} stands for both {self.pairs[hera_name]} and {up_name} "
                    "upstream: corrections would be ambiguous"
                )
            upstream = self.upstream[up_name]
            hera_props = hera.get("properties") or {}
            up_props = upstream.get("properties") or {}
            if hera_props and not up_props:
                self.replaced.append(
                    {
                        "definition": hera_name,
                        "upstream": up_name,
                        "schema": upstream,
                        "source": self.source(up_name),
                    }
                )
                continue
            for name in sorted(set(up_props) - set(hera_props)):
                self.add_field("add", hera_name, up_name, name, up_props[name])
            for name in sorted(set(hera_props) - set(up_props)):
                self.fields.append(
                    {
                        "change": "remove",
                        "definition": hera_name,
                        "upstream": up_name,
                        "field": name,
                        "source": self.source(up_name),
                    }
                )
            for name in sorted(set(hera_props) & set(up_props)):
                mine, theirs = _shape(hera_props[name]), _shape(up_props[name])
                if mine[:-1] == theirs[:-1] and mine[-2] == "ref":
                    stack.append((self.hera_defs[mine[-1]], mine[-1], theirs[-1]))
                    continue
                if mine != theirs:
                    self.add_field("replace", hera_name, up_name, name, up_props[name])
            extra = sorted(set(hera.get("required") or []) - set(upstream.get("required") or []))
            if extra:
                self.fields.append(
                    {
                        "change": "required",
                        "definition": hera_name,
                        "upstream": up_name,
                        "required": sorted(
                            set(hera.get("required") or []) & set(upstream.get("required") or [])
                        ),
                        "source": self.source(up_name),
                    }
                )

    def add_field(
        self, change: str, hera_name: str, up_name: str, name: str, schema: dict[str, Any]
    ) -> None:
        self.fields.append(
            {
                "change": change,
                "definition": hera_name,
                "upstream": up_name,
                "field": name,
                "schema": schema,
                "source": self.source(f"{up_name}.{name}"),
            }
        )

    def materialize(self) -> None:
        """Copy the recorded upstream fragments once every pairing is known."""
        for record in [*self.fields, *self.replaced]:
            if "schema" in record:
                record["schema"] = self.upstream_schema(record["schema"])


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    yield from _nodes(sub)
            elif key not in ("enum", "required", "const"):
                yield from _nodes(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _nodes(item)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def family_data(family: Family, shared: Path) -> dict[str, Any]:
    """The generated corrections of ``family`` against the upstream schema in ``shared``."""
    import hera

    path = shared / family.upstream_file
    text = path.read_text()
    upstream = json.loads(text)["definitions"]
    hera_defs, roots = hera_schemas(family)
    diff = _Diff(family, upstream, _line_index(text), hera_defs)
    diff.walk(roots)
    diff.materialize()
    kinds: dict[str, Any] = {}
    for kind, name in UPSTREAM_ONLY_KINDS.get(family.name, {}).items():
        diff.ship(name)
        kinds[kind] = name
    return {
        "about": (
            "Generated by `python -m cnai.lint.upstream_diff`; do not edit. Where the wire "
            f"format in {family.upstream_source} differs from Hera {hera.__version__}'s "
            f"{family.hera_module}; cnai lint applies these to the schema derived from Hera."
        ),
        "upstream": family.upstream_source,
        "upstream_sha256": _digest(path),
        "hera": hera.__version__,
        "fields": sorted(
            diff.fields, key=lambda f: (f["definition"], f["change"], f.get("field", ""))
        ),
        "replace_definitions": sorted(diff.replaced, key=lambda r: r["definition"]),
        "definitions": dict(sorted(diff.definitions.items())),
        "upstream_only_kinds": kinds,
    }


# --- KubeRay RayJob subset ------------------------------------------------------

RAYJOB_SOURCE = "ray-project/kuberay v1.7.0 ray-operator/config/crd/bases/ray.io_rayjobs.yaml"
"""Where the RayJob CRD comes from."""
RAYJOB_SPEC_FIELDS = (
    "activeDeadlineSeconds",
    "backoffLimit",
    "deletionStrategy",
    "entrypoint",
    "jobId",
    "metadata",
    "preRunningDeadlineSeconds",
    "rayClusterSpec",
    "runtimeEnvYAML",
    "shutdownAfterJobFinishes",
    "submissionMode",
    "submitterConfig",
    "suspend",
    "ttlSecondsAfterFinished",
)
"""``spec`` fields of the subset: what the pipeline's RayJobs use or configure for their
lifecycle (deadlines, retries, clean-up). Other KubeRay fields are reported as outside it."""
RAYCLUSTER_FIELDS = ("enableInTreeAutoscaling", "headGroupSpec", "rayVersion", "workerGroupSpecs")
"""``spec.rayClusterSpec`` fields of the subset."""
GROUP_FIELDS = {
    "headGroupSpec": ("rayStartParams", "serviceType", "template"),
    "workerGroupSpecs": (
        "groupName",
        "maxReplicas",
        "minReplicas",
        "numOfHosts",
        "rayStartParams",
        "replicas",
        "suspend",
        "template",
    ),
}
"""Fields of the head and worker group specs in the subset."""
K8S_REFS = {
    ("metadata",): "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    ("spec", "rayClusterSpec", "headGroupSpec", "template"): "io.k8s.api.core.v1.PodTemplateSpec",
    (
        "spec",
        "rayClusterSpec",
        "workerGroupSpecs",
        "template",
    ): "io.k8s.api.core.v1.PodTemplateSpec",
}
"""Subtrees whose KubeRay type is a Kubernetes type (``corev1.PodTemplateSpec``, object
metadata): validated with the Kubernetes schema instead of copying it."""


def _prune(node: dict[str, Any], keep: tuple[str, ...] | None) -> dict[str, Any]:
    """A strict copy of a CRD node: kept properties only, the rest listed as outside."""
    out = {k: copy.deepcopy(v) for k, v in node.items() if k not in _DROP_KEYS}
    props = node.get("properties")
    if isinstance(props, dict):
        names = sorted(props) if keep is None else [n for n in keep if n in props]
        missing = sorted(set(keep or ()) - set(props))
        if missing:
            raise ValueError(f"RayJob subset names fields the CRD lacks: {missing}")
        out["properties"] = {n: copy.deepcopy(props[n]) for n in names}
        outside = sorted(set(props) - set(names))
        if outside:
            out["x-cnai-outside-subset"] = outside
        if "required" in out:
            out["required"] = [r for r in out["required"] if r in names]
    return out


def rayjob_data(shared: Path) -> dict[str, Any]:
    """The RayJob subset schema, cut from KubeRay v1.7.0's CRD in ``shared``."""
    path = shared / RAYJOB_CRD
    crd = yaml.load(path.read_text(), Loader=_LOADER)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    root = version["schema"]["openAPIV3Schema"]
    schema = _prune(root, ("apiVersion", "kind", "metadata", "spec"))
    spec = _prune(root["properties"]["spec"], RAYJOB_SPEC_FIELDS)
    cluster = _prune(spec["properties"]["rayClusterSpec"], RAYCLUSTER_FIELDS)
    head = _prune(cluster["properties"]["headGroupSpec"], GROUP_FIELDS["headGroupSpec"])
    workers = cluster["properties"]["workerGroupSpecs"]
    workers["items"] = _prune(workers["items"], GROUP_FIELDS["workerGroupSpecs"])
    cluster["properties"]["headGroupSpec"] = head
    spec["properties"]["rayClusterSpec"] = cluster
    schema["properties"]["spec"] = spec
    for where, ref in K8S_REFS.items():
        parent = schema
        for part in where[:-1]:
            parent = parent["properties"][part]
            if parent.get("type") == "array":
                parent = parent["items"]
        parent["properties"][where[-1]] = {"$ref": f"k8s:{ref}"}
    for node in _nodes(schema):
        props = node.get("properties") or {}
        if "required" in node:  # the API server applies defaults before validating
            node["required"] = [r for r in node["required"] if "default" not in props.get(r, {})]
    for node in _nodes(schema):
        for key in _DROP_KEYS:
            node.pop(key, None)
    return {
        "about": (
            "Generated by `python -m cnai.lint.upstream_diff`; do not edit. The RayJob fields "
            f"cnai uses, cut from {RAYJOB_SOURCE}; `k8s:` references name Kubernetes "
            "definitions validated with kubernetes-validate's schema."
        ),
        "upstream": RAYJOB_SOURCE,
        "upstream_sha256": _digest(path),
        "schema": schema,
    }


def generate(shared: Path) -> dict[str, str]:
    """``{data file name: JSON text}`` generated from the upstream files in ``shared``."""
    out = {f.data_file: family_data(f, shared) for f in FAMILIES}
    out["kuberay-v1.7-rayjob.json"] = rayjob_data(shared)
    return {name: json.dumps(data, indent=1, sort_keys=False) + "\n" for name, data in out.items()}


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or ``--check``) the generated data files; exit 1 when stale."""
    parser = argparse.ArgumentParser(prog="python -m cnai.lint.upstream_diff")
    parser.add_argument("--shared", required=True, help="folder of the upstream schema files")
    parser.add_argument("--check", action="store_true", help="exit 1 if data/ is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in generate(Path(args.shared)).items():
        target = DATA_DIR / name
        if not target.is_file() or target.read_text() != text:
            stale.append(name)
            if not args.check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    for name in stale:
        print(f"{'stale' if args.check else 'wrote'}: {DATA_DIR / name}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
