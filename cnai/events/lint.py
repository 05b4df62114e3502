"""Offline checks of ``events/*.yaml``: upstream JSON schema and a strict Hera round-trip.

Schema: each document is validated against its kind's own definition in
``argo-events-v1.9.schema.json`` (see ``../shared/schemas/SOURCES.txt``).

Round-trip: EventSources and Sensors are parsed with ``hera.events`` models and dumped
back; any difference (a misspelled or misplaced field) is a problem. Hera 7.1's models
follow Argo Events' protobuf shapes in four places where the wire format differs, and
those are adapted (losslessly) before and after, not ignored:

- a generic webhook's settings are inline in the YAML but nested under
  ``webhookContext`` in Hera;
- int64 fields (``maxPayloadSize``) are strings in Hera;
- ``Int64OrString`` (``retryStrategy.duration``) and ``Amount`` (``factor``, ``jitter``)
  are objects in Hera; they are taken out for the round-trip and checked by the schema;
- an ``argoWorkflow`` trigger's ``source.resource`` is free-form JSON on the wire but a
  base64 ``value`` in Hera; the embedded Workflow round-trips through
  ``hera.workflows.models.Workflow`` instead.

EventBus, ServiceAccount, Role and RoleBinding have no Hera model; the schema covers them.
"""

from __future__ import annotations

import copy
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
_BACKOFF_WIRE_ONLY = ("duration", "factor", "jitter")


def documents(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every YAML document under ``folder`` with its file."""
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def schema_problems(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Where ``doc`` breaks its kind's definition in the Argo Events JSON schema."""
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


def hera_round_trip_problems(doc: dict[str, Any]) -> list[str]:
    """Fields of an EventSource or Sensor that do not survive Hera's models unchanged."""
    from hera.events.models import EventSource, Sensor
    from pydantic import ValidationError

    models: dict[str, Any] = {"EventSource": EventSource, "Sensor": Sensor}
    kind = str(doc.get("kind"))
    if kind not in models:
        return []
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
    hera_shaped = _to_hera(copy.deepcopy(body))
    try:
        model = models[kind].model_validate(hera_shaped)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    dumped = _from_hera(model.model_dump(by_alias=True, exclude_none=True, mode="json"))
    problems = [f"{path}: {detail}" for path, detail in _diff(_strip_wire_only(body), dumped)]
    for where, resource in _workflow_resources(body):
        problems += [f"{where}.{p}" for p in workflow_round_trip_problems(resource)]
    return problems


def workflow_round_trip_problems(resource: dict[str, Any]) -> list[str]:
    """Fields of a Workflow manifest that do not survive ``hera.workflows`` models."""
    from hera.workflows.models import Workflow
    from pydantic import ValidationError

    try:
        model = Workflow.model_validate(resource)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return [f"{path}: {detail}" for path, detail in _diff(resource, dumped)]


def _workflow_resources(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, trigger in enumerate((body.get("spec") or {}).get("triggers") or []):
        workflow = (trigger.get("template") or {}).get("argoWorkflow") or {}
        resource = (workflow.get("source") or {}).get("resource")
        if isinstance(resource, dict):
            yield f"spec.triggers[{i}].template.argoWorkflow.source.resource", resource


def _to_hera(body: dict[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    for event, hook in (spec.get("webhook") or {}).items():
        context = {k: v for k, v in hook.items() if k != "filter"}
        _int64_to_str(context)
        spec["webhook"][event] = {"webhookContext": context}
        if "filter" in hook:
            spec["webhook"][event]["filter"] = hook["filter"]
    for github in (spec.get("github") or {}).values():
        _int64_to_str(github.get("webhook") or {})
    return _strip_wire_only(body)


def _strip_wire_only(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    for trigger in (body.get("spec") or {}).get("triggers") or []:
        for key in _BACKOFF_WIRE_ONLY:
            (trigger.get("retryStrategy") or {}).pop(key, None)
        source = ((trigger.get("template") or {}).get("argoWorkflow") or {}).get("source") or {}
        source.pop("resource", None)  # round-tripped as a Workflow instead
    return body


def _int64_to_str(context: dict[str, Any]) -> None:
    if "maxPayloadSize" in context:
        context["maxPayloadSize"] = str(context["maxPayloadSize"])


def _from_hera(body: dict[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    for event, hook in (spec.get("webhook") or {}).items():
        flat = dict(hook.get("webhookContext") or {})
        if "maxPayloadSize" in flat:
            flat["maxPayloadSize"] = int(flat["maxPayloadSize"])
        if "filter" in hook:
            flat["filter"] = hook["filter"]
        spec["webhook"][event] = flat
    for github in (spec.get("github") or {}).values():
        webhook = github.get("webhook") or {}
        if "maxPayloadSize" in webhook:
            webhook["maxPayloadSize"] = int(webhook["maxPayloadSize"])
    return body


def _diff(expected: Any, actual: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            where = f"{path}.{key}" if path else key
            if key not in actual:
                yield where, "dropped by the Hera model (unknown or misplaced field?)"
            elif key not in expected:
                yield where, f"added by the Hera model: {json.dumps(actual[key])[:80]}"
            else:
                yield from _diff(expected[key], actual[key], where)
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from _diff(e, a, f"{path}[{index}]")
    elif expected != actual or type(expected) is not type(actual):
        yield path, f"{json.dumps(expected)[:60]} came back as {json.dumps(actual)[:60]}"


def lint_folder(folder: Path, schema_path: Path | None) -> list[str]:
    """Every problem in ``folder``'s YAML as ``file: path: message``."""
    schema = json.loads(schema_path.read_text()) if schema_path else None
    problems = []
    for path, doc in documents(folder):
        label = f"{path.name} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        found = hera_round_trip_problems(doc)
        if schema is not None:
            found = schema_problems(doc, schema) + found
        problems += [f"{label}: {p}" for p in found]
    return problems
