"""What the local engine accepts from an Argo spec, checked before anything runs.

Every field of a Workflow/WorkflowTemplate is in one of three classes:

- executed: the engine implements its semantics (DAG, parameters, when, retries, ...);
- cluster-only: it only shapes pods or cluster objects (image, resources,
  securityContext, serviceAccountName, podGC, ttlStrategy, metadata) and has no
  local meaning; the engine accepts it and docs/parity.md says so;
- anything else: refused with the path of the field, never silently ignored.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from cnai.engine.expr import REFERENCE, references
from cnai.errors import UsageError

EXECUTED = "executed"
CLUSTER_ONLY = "cluster-only"

ENV_FROM_LOCAL = {"cnai-pipeline-config", "cnai-pipeline-secrets"}
"""ConfigMap/Secret names whose keys the engine takes from the home's settings instead."""

RETRY_POLICIES = {"Always", "OnFailure", "OnError"}

_PARAM_IN: dict[str, Any] = {
    "name": EXECUTED,
    "value": EXECUTED,
    "default": EXECUTED,
    "description": CLUSTER_ONLY,
    "enum": EXECUTED,
}
_PARAM_OUT: dict[str, Any] = {
    "name": EXECUTED,
    "description": CLUSTER_ONLY,
    "valueFrom": {"path": EXECUTED, "jsonPath": EXECUTED, "default": EXECUTED},
}
_MUTEXES: dict[str, Any] = {"mutexes": [{"name": EXECUTED, "namespace": CLUSTER_ONLY}]}
_ENV = [{"name": EXECUTED, "value": EXECUTED}]
_ENV_FROM = [{"configMapRef": {"name": EXECUTED}, "secretRef": {"name": EXECUTED}}]
_PROCESS: dict[str, Any] = {
    "image": CLUSTER_ONLY,
    "imagePullPolicy": CLUSTER_ONLY,
    "name": CLUSTER_ONLY,
    "resources": CLUSTER_ONLY,
    "securityContext": CLUSTER_ONLY,
    "command": EXECUTED,
    "args": EXECUTED,
    "env": _ENV,
    "envFrom": _ENV_FROM,
}
_TASK: dict[str, Any] = {
    "name": EXECUTED,
    "template": EXECUTED,
    "arguments": {"parameters": [{"name": EXECUTED, "value": EXECUTED}]},
    "depends": EXECUTED,
    "dependencies": EXECUTED,
    "when": EXECUTED,
    "withItems": EXECUTED,
    "withParam": EXECUTED,
}
_TEMPLATE: dict[str, Any] = {
    "name": EXECUTED,
    "inputs": {"parameters": [_PARAM_IN]},
    "outputs": {"parameters": [_PARAM_OUT]},
    "dag": {"tasks": [_TASK]},
    "script": {**_PROCESS, "source": EXECUTED},
    "container": _PROCESS,
    "resource": {
        "action": EXECUTED,
        "manifest": EXECUTED,
        "successCondition": EXECUTED,
        "failureCondition": EXECUTED,
        "setOwnerReference": CLUSTER_ONLY,
    },
    "retryStrategy": {
        "limit": EXECUTED,
        "retryPolicy": EXECUTED,
        "backoff": {
            "duration": EXECUTED,
            "factor": EXECUTED,
            "maxDuration": EXECUTED,
            "cap": EXECUTED,
        },
    },
    "memoize": {
        "key": EXECUTED,
        "maxAge": EXECUTED,
        "cache": {"configMap": {"name": EXECUTED, "key": CLUSTER_ONLY}},
    },
    "activeDeadlineSeconds": EXECUTED,
    "synchronization": _MUTEXES,
    "metadata": CLUSTER_ONLY,
    "serviceAccountName": CLUSTER_ONLY,
    "securityContext": CLUSTER_ONLY,
    "nodeSelector": CLUSTER_ONLY,
    "tolerations": CLUSTER_ONLY,
}
WORKFLOW_SPEC: dict[str, Any] = {
    "entrypoint": EXECUTED,
    "arguments": {"parameters": [_PARAM_IN]},
    "templates": [_TEMPLATE],
    "onExit": EXECUTED,
    "activeDeadlineSeconds": EXECUTED,
    "parallelism": EXECUTED,
    "synchronization": _MUTEXES,
    "serviceAccountName": CLUSTER_ONLY,
    "podGC": CLUSTER_ONLY,
    "ttlStrategy": CLUSTER_ONLY,
    "securityContext": CLUSTER_ONLY,
    "workflowMetadata": CLUSTER_ONLY,
    "podMetadata": CLUSTER_ONLY,
}
"""The accepted shape of ``spec``: nested dicts of field -> class, ``[x]`` for lists."""

RAYJOB_SPEC: dict[str, Any] = {
    "entrypoint": EXECUTED,
    "activeDeadlineSeconds": EXECUTED,
    "preRunningDeadlineSeconds": CLUSTER_ONLY,
    "rayClusterSpec": CLUSTER_ONLY,
    "shutdownAfterJobFinishes": CLUSTER_ONLY,
    "ttlSecondsAfterFinished": CLUSTER_ONLY,
    "submissionMode": CLUSTER_ONLY,
    "submitterPodTemplate": CLUSTER_ONLY,
    "entrypointNumCpus": CLUSTER_ONLY,
    "entrypointNumGpus": CLUSTER_ONLY,
}
"""The accepted shape of a RayJob manifest's ``spec`` (the cluster shape maps to one local Ray)."""


def _walk(value: Any, shape: Any, path: str, problems: list[str]) -> None:
    if shape in (EXECUTED, CLUSTER_ONLY):
        return
    if isinstance(shape, list):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for index, item in enumerate(value):
            _walk(item, shape[0], f"{path}[{index}]", problems)
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping")
        return
    for key, item in value.items():
        if key not in shape:
            problems.append(f"{path}.{key}: not supported by the local engine")
            continue
        _walk(item, shape[key], f"{path}.{key}", problems)


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}")]
    return []


def check_supported(doc: dict[str, Any]) -> list[str]:
    """Every field of a Workflow/WorkflowTemplate the engine would not honour, by path."""
    problems: list[str] = []
    if doc.get("kind") not in ("Workflow", "WorkflowTemplate"):
        return [f"kind: {doc.get('kind')!r} is not a Workflow or WorkflowTemplate"]
    for key in doc:
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            problems.append(f"{key}: not supported by the local engine")
    spec = doc.get("spec") or {}
    _walk(spec, WORKFLOW_SPEC, "spec", problems)
    for path, text in _strings(spec, "spec"):
        if any(ref.startswith("=") for ref in references(text)):
            problems.append(f"{path}: expression templates {{{{=...}}}} are not supported")
    for index, template in enumerate(spec.get("templates") or []):
        where = f"spec.templates[{index}]"
        kinds = [k for k in ("dag", "script", "container", "resource") if k in template]
        if len(kinds) != 1:
            problems.append(f"{where}: needs exactly one of dag, script, container, resource")
        policy = (template.get("retryStrategy") or {}).get("retryPolicy")
        if policy is not None and policy not in RETRY_POLICIES:
            problems.append(
                f"{where}.retryStrategy.retryPolicy: {policy!r} is not supported "
                f"(one of {', '.join(sorted(RETRY_POLICIES))})"
            )
        process = template.get("script") or template.get("container") or {}
        for j, source in enumerate(process.get("envFrom") or []):
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            if ref.get("name") not in ENV_FROM_LOCAL:
                problems.append(
                    f"{where}.envFrom[{j}]: {ref.get('name')!r} has no local equivalent "
                    f"(known: {', '.join(sorted(ENV_FROM_LOCAL))})"
                )
        if "resource" in template:
            problems.extend(
                check_resource(template["resource"], f"{where}.resource", placeholders=True)
            )
    return problems


def fill_placeholders(text: str) -> str:
    """``text`` with every ``{{...}}`` replaced by ``1`` (to parse a manifest before a run)."""
    return REFERENCE.sub("1", text)


def check_resource(resource: dict[str, Any], where: str, placeholders: bool = False) -> list[str]:
    """Problems with a resource template the engine would run (a RayJob create).

    With ``placeholders`` the manifest still holds ``{{...}}`` references, which
    are filled with a dummy value before parsing.
    """
    problems: list[str] = []
    if resource.get("action") != "create":
        problems.append(f"{where}.action: only 'create' is supported locally")
    text = str(resource.get("manifest") or "")
    try:
        manifest = yaml.safe_load(fill_placeholders(text) if placeholders else text)
    except yaml.YAMLError as exc:
        return [*problems, f"{where}.manifest: not YAML ({exc})"]
    if not isinstance(manifest, dict):
        return [*problems, f"{where}.manifest: must be one mapping"]
    if manifest.get("apiVersion") != "ray.io/v1" or manifest.get("kind") != "RayJob":
        problems.append(f"{where}.manifest: only ray.io/v1 RayJob resources run locally")
        return problems
    _walk(manifest.get("spec") or {}, RAYJOB_SPEC, f"{where}.manifest.spec", problems)
    if not (manifest.get("spec") or {}).get("entrypoint"):
        problems.append(f"{where}.manifest.spec.entrypoint: required")
    for path, env in _rayjob_env_entries(manifest, f"{where}.manifest"):
        if set(env) - {"name", "value"}:
            problems.append(f"{path}: only name/value env entries are supported locally")
    return problems


def _rayjob_env_entries(manifest: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    containers = (
        (((manifest.get("spec") or {}).get("rayClusterSpec") or {}).get("headGroupSpec") or {})
        .get("template", {})
        .get("spec", {})
        .get("containers", [])
    )
    base = f"{where}.spec.rayClusterSpec.headGroupSpec.template.spec.containers[0].env"
    if not containers:
        return []
    return [(f"{base}[{i}]", e) for i, e in enumerate(containers[0].get("env") or [])]


def rayjob_head_env(manifest: dict[str, Any]) -> dict[str, str]:
    """Plain env vars of a RayJob's head container (where the entrypoint's driver runs)."""
    return {str(e["name"]): str(e.get("value", "")) for _, e in _rayjob_env_entries(manifest, "")}


def ensure_supported(doc: dict[str, Any], source: str) -> None:
    """Raise UsageError listing every unsupported field of ``doc`` (from ``source``)."""
    problems = check_supported(doc)
    if problems:
        listed = "; ".join(problems[:12]) + ("; ..." if len(problems) > 12 else "")
        raise UsageError(f"{source}: the local engine refuses to run it: {listed}")


def load_document(text: str, source: str) -> dict[str, Any]:
    """Parse one YAML document; UsageError naming ``source`` otherwise."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"{source}: expected one YAML mapping")
    return doc


def instantiate(
    doc: dict[str, Any], parameters: dict[str, str], run_id: str, uid: str
) -> dict[str, Any]:
    """The Workflow a submission of ``doc`` creates: arguments resolved, named ``run_id``.

    Unknown parameter names, values outside a parameter's enum and parameters with
    no value are refused (UsageError naming the parameter).
    """
    spec = copy.deepcopy(doc.get("spec") or {})
    declared = (spec.get("arguments") or {}).get("parameters") or []
    known = {p["name"] for p in declared}
    for name in parameters:
        if name not in known:
            raise UsageError(
                f"-p {name}: the workflow has no parameter {name!r} "
                f"(known: {', '.join(sorted(known))})"
            )
    for param in declared:
        name = param["name"]
        if name in parameters:
            param["value"] = parameters[name]
        if "value" not in param:
            raise UsageError(f"-p {name}: required (the workflow parameter has no default)")
        param["value"] = _text(param["value"])
        enum = param.get("enum")
        if enum and param["value"] not in [_text(v) for v in enum]:
            raise UsageError(
                f"-p {name}={param['value']}: must be one of {', '.join(map(_text, enum))}"
            )
    template_name = (doc.get("metadata") or {}).get("name", "")
    labels = {"workflows.argoproj.io/workflow-template": template_name} if template_name else {}
    if doc.get("kind") == "Workflow":
        labels.update((doc.get("metadata") or {}).get("labels") or {})
    return {
        "apiVersion": doc.get("apiVersion", "argoproj.io/v1alpha1"),
        "kind": "Workflow",
        "metadata": {"name": run_id, "uid": uid, "labels": labels},
        "spec": spec,
    }


def _text(value: Any) -> str:
    """A parameter value as Argo holds it: always a string (JSON for structures)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def parameter_text(value: Any) -> str:
    """Public alias of the parameter-to-string rule (used for items and outputs)."""
    return _text(value)
