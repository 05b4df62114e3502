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
from collections.abc import Collection
from typing import Any

import yaml

from cnai.argo.pipeline import Platform
from cnai.argo.semantics.durations import parse_backoff_duration, parse_go_duration
from cnai.engine.expr import REFERENCE, references
from cnai.engine.limits import DEFAULT_LIMITS, EngineLimits
from cnai.engine.retryexpr import parse as parse_retry_expression
from cnai.errors import UsageError

EXECUTED = "executed"
CLUSTER_ONLY = "cluster-only"


def env_from_local(platform: Platform) -> frozenset[str]:
    """ConfigMap/Secret names whose keys the engine takes from the home's settings instead:
    the ones the project's Platform (configuration section ``pipeline``) names."""
    return frozenset({platform.config_map, platform.secret})


DEFAULT_ENV_FROM = env_from_local(Platform())
"""Those of the default Platform (a caller without settings)."""

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
    "valueFrom": {
        "path": EXECUTED,
        "jsonPath": EXECUTED,
        "default": EXECUTED,
        "parameter": EXECUTED,
    },
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
    "withSequence": {"count": EXECUTED, "start": EXECUTED, "end": EXECUTED, "format": EXECUTED},
}
_STEP: dict[str, Any] = {k: v for k, v in _TASK.items() if k not in ("depends", "dependencies")}
_TEMPLATE: dict[str, Any] = {
    "name": EXECUTED,
    "inputs": {"parameters": [_PARAM_IN]},
    "outputs": {"parameters": [_PARAM_OUT]},
    "dag": {"tasks": [_TASK], "failFast": EXECUTED, "target": EXECUTED},
    "steps": [[_STEP]],
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
        "expression": EXECUTED,
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


def check_supported(doc: dict[str, Any], env_from: Collection[str] = DEFAULT_ENV_FROM) -> list[str]:
    """Every field of a Workflow/WorkflowTemplate the engine would not honour, by path.

    ``env_from``: the ConfigMap/Secret names an ``envFrom`` may reference (see
    :func:`env_from_local`).
    """
    problems: list[str] = []
    if doc.get("kind") not in ("Workflow", "WorkflowTemplate"):
        return [f"kind: {doc.get('kind')!r} is not a Workflow or WorkflowTemplate"]
    for key in doc:
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            problems.append(f"{key}: not supported by the local engine")
    spec = doc.get("spec") or {}
    _walk(spec, WORKFLOW_SPEC, "spec", problems)
    if not isinstance(spec, dict) or not isinstance(spec.get("templates") or [], list):
        return problems
    for path, text in _strings(spec, "spec"):
        if any(ref.startswith("=") for ref in references(text)):
            problems.append(f"{path}: expression templates {{{{=...}}}} are not supported")
    for index, template in enumerate(spec.get("templates") or []):
        where = f"spec.templates[{index}]"
        if not isinstance(template, dict):
            continue
        kinds = [k for k in ("dag", "steps", "script", "container", "resource") if k in template]
        if len(kinds) != 1:
            problems.append(
                f"{where}: needs exactly one of dag, steps, script, container, resource"
            )
        policy = (template.get("retryStrategy") or {}).get("retryPolicy")
        if policy is not None and policy not in RETRY_POLICIES:
            problems.append(
                f"{where}.retryStrategy.retryPolicy: {policy!r} is not supported "
                f"(one of {', '.join(sorted(RETRY_POLICIES))})"
            )
        process = template.get("script") or template.get("container") or {}
        for j, source in enumerate(process.get("envFrom") or []):
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            if ref.get("name") not in env_from:
                problems.append(
                    f"{where}.envFrom[{j}]: {ref.get('name')!r} has no local equivalent "
                    f"(known: {', '.join(sorted(env_from))}: the configuration's "
                    "pipeline.config_map and pipeline.secret)"
                )
        if "resource" in template:
            problems.extend(
                check_resource(template["resource"], f"{where}.resource", placeholders=True)
            )
        problems.extend(_template_value_problems(template, where))
    problems.extend(_spec_value_problems(spec))
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_reference(value: Any) -> bool:
    return isinstance(value, str) and bool(REFERENCE.search(value))


def _int_problem(value: Any, path: str, minimum: int, allow_text: bool) -> list[str]:
    """``value`` must be an integer >= ``minimum`` (or, with ``allow_text``, a reference)."""
    if allow_text and _has_reference(value):
        return []
    if allow_text and isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not _is_int(value) or value < minimum:
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        return [f"{path}: must be {rule}, got {value!r}"]
    return []


def _duration_problem(value: Any, path: str, strict: bool = False) -> list[str]:
    """Problems of a duration field: Go's strict rule, or Argo's backoff rule."""
    if _has_reference(value):
        return []
    text = value if isinstance(value, (int, float, str)) else repr(value)
    try:
        if strict:
            parse_go_duration(str(text), path)
        else:
            parse_backoff_duration(text if isinstance(text, (int, str)) else str(text), path)
    except UsageError as exc:
        return [str(exc)]
    return []


def _spec_value_problems(spec: dict[str, Any]) -> list[str]:
    """Typed fields of ``spec`` whose values the engine could not use (checked before a run)."""
    problems: list[str] = []
    if "parallelism" in spec:
        problems += _int_problem(spec["parallelism"], "spec.parallelism", 1, allow_text=False)
    if "activeDeadlineSeconds" in spec:
        problems += _int_problem(
            spec["activeDeadlineSeconds"], "spec.activeDeadlineSeconds", 1, allow_text=False
        )
    for field_name in ("entrypoint", "onExit"):
        if field_name in spec and not isinstance(spec[field_name], str):
            problems.append(f"spec.{field_name}: must be a template name")
    return problems


def _template_value_problems(template: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    if not isinstance(template.get("name"), str):
        problems.append(f"{where}.name: must be a string")
    if "activeDeadlineSeconds" in template:
        problems += _int_problem(
            template["activeDeadlineSeconds"], f"{where}.activeDeadlineSeconds", 1, True
        )
    strategy = template.get("retryStrategy")
    if isinstance(strategy, dict):
        path = f"{where}.retryStrategy"
        if "limit" in strategy:
            problems += _int_problem(strategy["limit"], f"{path}.limit", 0, True)
        backoff = strategy.get("backoff") or {}
        if isinstance(backoff, dict):
            for key in ("duration", "maxDuration", "cap"):
                if key in backoff:
                    problems += _duration_problem(backoff[key], f"{path}.backoff.{key}")
            factor = backoff.get("factor")
            if factor is not None and not _has_reference(factor):
                try:
                    float(factor)
                except (TypeError, ValueError):
                    problems.append(f"{path}.backoff.factor: must be a number, got {factor!r}")
        if "expression" in strategy:
            try:
                parse_retry_expression(str(strategy["expression"]), f"{path}.expression")
            except UsageError as exc:
                problems.append(str(exc))
    memo = template.get("memoize")
    if isinstance(memo, dict) and "maxAge" in memo:
        problems += _duration_problem(memo["maxAge"], f"{where}.memoize.maxAge", strict=True)
    located = [
        (f"{where}.dag.tasks[{index}]", task)
        for index, task in enumerate(((template.get("dag") or {}).get("tasks")) or [])
    ]
    for group_index, group in enumerate(template.get("steps") or []):
        for index, step in enumerate(group if isinstance(group, list) else []):
            located.append((f"{where}.steps[{group_index}][{index}]", step))
    for path, task in located:
        if not isinstance(task, dict):
            continue
        if "withItems" in task and not isinstance(task["withItems"], list):
            problems.append(f"{path}.withItems: must be a list")
        for key in ("name", "template", "depends", "when", "withParam"):
            if key in task and not isinstance(task[key], str):
                problems.append(f"{path}.{key}: must be a string")
        deps = task.get("dependencies")
        if deps is not None and not (
            isinstance(deps, list) and all(isinstance(d, str) for d in deps)
        ):
            problems.append(f"{path}.dependencies: must be a list of task names")
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
    deadline = (manifest.get("spec") or {}).get("activeDeadlineSeconds")
    if deadline is not None:
        problems += _int_problem(
            deadline, f"{where}.manifest.spec.activeDeadlineSeconds", 1, allow_text=placeholders
        )
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


def ensure_supported(
    doc: dict[str, Any], source: str, env_from: Collection[str] = DEFAULT_ENV_FROM
) -> None:
    """Raise UsageError listing every unsupported field of ``doc`` (from ``source``)."""
    problems = check_supported(doc, env_from)
    if problems:
        listed = "; ".join(problems[:12]) + ("; ..." if len(problems) > 12 else "")
        raise UsageError(f"{source}: the local engine refuses to run it: {listed}")


def load_document(
    text: str | bytes, source: str, limits: EngineLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Parse one YAML document; UsageError naming ``source`` otherwise.

    The document is bounded before it is built: at most ``limits.max_document_bytes``
    bytes, ``limits.max_document_nodes`` nodes once aliases are expanded (a YAML
    "billion laughs" is a few hundred bytes that expand to billions of nodes) and
    ``limits.max_document_depth`` levels of nesting; recursive aliases are refused.
    PyYAML has no such limits, hence the check on its node graph here.
    """
    size = len(text)
    if size > limits.max_document_bytes:
        raise UsageError(
            f"{source}: {size} bytes is more than the {limits.max_document_bytes} a workflow "
            "may have (setting engine.max_document_bytes)"
        )
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_node_graph(node, source, limits)
        doc = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML ({exc})") from exc
    except RecursionError:
        raise UsageError(
            f"{source}: nested more than {limits.max_document_depth} levels deep "
            "(setting engine.max_document_depth)"
        ) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        raise UsageError(f"{source}: expected one YAML mapping")
    return doc


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_node_graph(root: yaml.Node, source: str, limits: EngineLimits) -> None:
    """Refuse a node graph too large or too deep once expanded, or with a recursive alias.

    Aliases make the graph a DAG whose shared nodes count once per use; sizes and
    depths are computed once per node (memoized), so the check is linear in the text.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            active.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > limits.max_document_nodes:
                raise UsageError(
                    f"{source}: expands to more than {limits.max_document_nodes} YAML nodes "
                    "(aliases count each time they are used; setting engine.max_document_nodes)"
                )
            if depth[key] > limits.max_document_depth:
                raise UsageError(
                    f"{source}: nested more than {limits.max_document_depth} levels deep "
                    "(setting engine.max_document_depth)"
                )
            continue
        if key in size:
            continue
        active.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                raise UsageError(f"{source}: a YAML alias refers to itself (recursive alias)")
            if id(child) not in size:
                stack.append((child, False))


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
