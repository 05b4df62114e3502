"""Load ``events/*.yaml`` into what the local gateway serves and evaluates.

The gateway honours, from the same files the cluster runs:

- each EventSource's webhook ``endpoint``, ``method``, ``port`` and ``maxPayloadSize``
  (GitHub ``github.<event>.webhook`` and generic ``webhook.<event>``);
- the secret each one names (``webhookSecret`` / ``authSecret``), read locally from the
  environment variable :func:`secret_env` derives from the Secret's name and key;
- the Sensor's dependencies and their filters, the trigger's ``conditions`` (an OR of
  dependencies) and its ``argoWorkflow`` parameter mapping.

Anything the gateway could not honour faithfully (other filter kinds, transforms,
templates beyond the supported subset, other trigger types) is refused here, at
start-up, with the file and field that caused it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnai.errors import UsageError
from cnai.events.filters import Decision, DependencyFilter, FilterSpecError, compile_filters
from cnai.events.limits import RateLimit, parse_rate_limit
from cnai.events.params import (
    ParamSpecError,
    TriggerParameter,
    apply_parameters,
    compile_parameter,
    workflow_arguments,
)

_EVENT_SOURCE_FIELDS = {
    "github",
    "webhook",
    "calendar",
    "eventBusName",
    "replicas",
    "service",
    "template",
}
DEFAULT_MAX_PAYLOAD = 1024 * 1024
"""Argo Events' webhook payload limit when ``maxPayloadSize`` is not set."""


def default_events_dir() -> Path:
    """The project's ``events/`` folder (see :mod:`cnai.project`); without a project,
    ``./events`` when it exists, else the ``events/`` folder next to the cnai package."""
    from cnai.project import find_project

    project = find_project()
    if project is not None and (project.root / "events").is_dir():
        return project.root / "events"
    here = Path.cwd() / "events"
    if (here / "sensor-retrain.yaml").exists():
        return here
    return Path(__file__).resolve().parents[2] / "events"


def secret_env(name: str, key: str) -> str:
    """The env var holding Secret ``name``/``key`` locally.

    ``cnai-github-webhook``/``secret`` -> ``CNAI_GITHUB_WEBHOOK_SECRET``;
    ``cnai-data-webhook``/``token`` -> ``CNAI_DATA_WEBHOOK_TOKEN``.
    """
    stem = name.removeprefix("cnai-")
    return re.sub(r"[^A-Z0-9]+", "_", f"CNAI_{stem}_{key}".upper())


@dataclass(frozen=True)
class Route:
    """One webhook endpoint of an EventSource."""

    source: str
    """EventSource name."""
    event: str
    """Event name inside the EventSource."""
    kind: str
    """``github`` (HMAC-signed) or ``webhook`` (optional bearer token)."""
    endpoint: str
    """URL path, e.g. ``/push``."""
    method: str
    """Accepted HTTP method."""
    port: int
    """Port in the EventSource."""
    max_payload: int
    """Largest accepted body in bytes (413 above)."""
    secret_env: str | None
    """Env var holding the webhook secret / bearer token; None when none is configured."""


@dataclass(frozen=True)
class Dependency:
    """One Sensor dependency."""

    name: str
    """Dependency name (what ``conditions`` and parameters refer to)."""
    source: str
    """EventSource name."""
    event: str
    """Event name."""
    filter: DependencyFilter
    """Its compiled filters."""


@dataclass(frozen=True)
class WorkflowTrigger:
    """The Sensor's ``argoWorkflow`` trigger."""

    name: str
    """Trigger template name."""
    workflow_template: str
    """``spec.workflowTemplateRef.name`` of the submitted Workflow."""
    resource: dict[str, Any]
    """The Workflow resource before parameters are applied."""
    parameters: tuple[TriggerParameter, ...]
    """The compiled parameters."""
    conditions: tuple[str, ...]
    """Dependencies any one of which fires the trigger."""
    rate_limit: RateLimit | None = None
    """The trigger's ``rateLimit`` (the gateway applies it per branch)."""


@dataclass(frozen=True)
class Evaluation:
    """What the Sensor does with one event."""

    decision: Decision
    """Passed, or the reason it was filtered."""
    dependency: str | None = None
    """The dependency that passed."""
    arguments: dict[str, str] = field(default_factory=dict)
    """The Workflow arguments the trigger would submit (when it passed)."""


@dataclass(frozen=True)
class EventsSpec:
    """Everything the gateway needs from the YAML."""

    directory: Path
    """Folder the YAML came from."""
    routes: tuple[Route, ...]
    """Webhook endpoints served."""
    dependencies: tuple[Dependency, ...]
    """Sensor dependencies."""
    trigger: WorkflowTrigger
    """The Workflow trigger."""
    repository: str | None
    """``owner/name`` of the first repository the GitHub EventSource lists."""
    schedules: tuple[str, ...] = ()
    """``source/event: schedule`` of calendar events (not run by the gateway)."""

    def route(self, endpoint: str) -> Route | None:
        """The route serving ``endpoint``."""
        return next((r for r in self.routes if r.endpoint == endpoint), None)

    def evaluate(self, route: Route, data: Any) -> Evaluation:
        """Apply the Sensor to one event arriving on ``route`` (data: the event's JSON)."""
        reasons = []
        for dependency in self.dependencies:
            if (dependency.source, dependency.event) != (route.source, route.event):
                continue
            if dependency.name not in self.trigger.conditions:
                continue
            decision = dependency.filter.evaluate(data)
            if decision.passed:
                resource = apply_parameters(
                    self.trigger.resource, list(self.trigger.parameters), {dependency.name: data}
                )
                return Evaluation(decision, dependency.name, workflow_arguments(resource))
            reasons.append(decision.reason)
        if not reasons:
            return Evaluation(Decision(False, f"no dependency on {route.source}/{route.event}"))
        return Evaluation(Decision(False, "; ".join(reasons)))


def load_spec(directory: Path | None = None, workflow_template: str | None = None) -> EventsSpec:
    """Read and check every YAML file in ``directory``; UsageError naming the problem.

    The gateway evaluates one Sensor: the one whose trigger submits
    ``workflow_template`` (the pipeline it runs); None: the first Sensor by file name.
    """
    folder = Path(directory) if directory is not None else default_events_dir()
    if not folder.is_dir():
        raise UsageError(f"--events-dir {folder}: not a folder")
    documents: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"{path}: cannot read YAML: {exc}") from exc
        for doc in loaded:
            if not isinstance(doc, dict) or "kind" not in doc:
                raise UsageError(f"{path}: every document needs a kind")
            name = str((doc.get("metadata") or {}).get("name") or "")
            documents[(str(doc["kind"]), name)] = (path, doc)
    sensors = _pick_sensor(
        [(p, d) for (kind, _), (p, d) in documents.items() if kind == "Sensor"],
        folder,
        workflow_template,
    )
    sources = {name: pd for (kind, name), pd in documents.items() if kind == "EventSource"}
    routes, schedules, repository = _routes(sources)
    sensor_path, sensor = sensors[0]
    try:
        dependencies = _dependencies(sensor, sources, sensor_path)
        trigger = _trigger(sensor, {d.name for d in dependencies}, sensor_path)
    except (FilterSpecError, ParamSpecError) as exc:
        raise UsageError(f"{sensor_path}: {exc}") from exc
    return EventsSpec(folder, tuple(routes), dependencies, trigger, repository, tuple(schedules))


def _pick_sensor(
    sensors: list[tuple[Path, dict[str, Any]]], folder: Path, workflow_template: str | None
) -> list[tuple[Path, dict[str, Any]]]:
    """The one Sensor (as a one-item list) the gateway evaluates."""
    if not sensors:
        raise UsageError(f"{folder}: no Sensor found")
    if workflow_template is None:
        return sorted(sensors, key=lambda pd: str(pd[0]))[:1]
    found = [(p, d) for p, d in sensors if workflow_template in _submitted_templates(d)]
    if len(found) != 1:
        raise UsageError(
            f"{folder}: expected one Sensor submitting WorkflowTemplate "
            f"{workflow_template!r}, found {len(found)}"
        )
    return found


def _submitted_templates(sensor: Mapping[str, Any]) -> set[str]:
    names = set()
    for trigger in (sensor.get("spec") or {}).get("triggers") or []:
        workflow = ((trigger or {}).get("template") or {}).get("argoWorkflow") or {}
        resource = (workflow.get("source") or {}).get("resource") or {}
        ref = ((resource.get("spec") or {}).get("workflowTemplateRef") or {}).get("name")
        if ref:
            names.add(str(ref))
    return names


def _routes(
    sources: Mapping[str, tuple[Path, dict[str, Any]]],
) -> tuple[list[Route], list[str], str | None]:
    routes: list[Route] = []
    schedules: list[str] = []
    repository = None
    for name, (path, doc) in sorted(sources.items()):
        spec = doc.get("spec") or {}
        for event, github in (spec.get("github") or {}).items():
            where = f"{path}: spec.github.{event}"
            secret = github.get("webhookSecret")
            routes.append(_route(name, event, "github", github.get("webhook"), secret, where))
            for repo in github.get("repositories") or []:
                if repository is None and repo.get("owner") and repo.get("names"):
                    repository = f"{repo['owner']}/{repo['names'][0]}"
        for event, hook in (spec.get("webhook") or {}).items():
            where = f"{path}: spec.webhook.{event}"
            routes.append(_route(name, event, "webhook", hook, hook.get("authSecret"), where))
        for event, calendar in (spec.get("calendar") or {}).items():
            schedules.append(
                f"{name}/{event}: {calendar.get('schedule') or calendar.get('interval')}"
            )
        other = sorted(set(spec) - _EVENT_SOURCE_FIELDS)
        if other:
            raise UsageError(f"{path}: spec.{other[0]}: event source not supported locally")
    endpoints = [r.endpoint for r in routes]
    duplicate = next((e for e in endpoints if endpoints.count(e) > 1), None)
    if duplicate:
        raise UsageError(f"endpoint {duplicate} is served by two EventSources")
    return routes, schedules, repository


def _route(source: str, event: str, kind: str, webhook: Any, secret: Any, where: str) -> Route:
    if not isinstance(webhook, dict):
        raise UsageError(f"{where}: needs webhook settings")
    endpoint = str(webhook.get("endpoint") or "")
    if not endpoint.startswith("/"):
        raise UsageError(f"{where}.endpoint: must start with '/'")
    try:
        port = int(webhook.get("port") or 0)
        max_payload = int(webhook.get("maxPayloadSize") or DEFAULT_MAX_PAYLOAD)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: port and maxPayloadSize must be integers") from exc
    if max_payload <= 0:
        raise UsageError(f"{where}.maxPayloadSize: must be positive")
    env = None
    if secret:
        if not secret.get("name") or not secret.get("key"):
            raise UsageError(f"{where}: secret reference needs name and key")
        env = secret_env(str(secret["name"]), str(secret["key"]))
    method = str(webhook.get("method") or "POST").upper()
    return Route(source, event, kind, endpoint, method, port, max_payload, env)


def _dependencies(
    sensor: Mapping[str, Any], sources: Mapping[str, Any], path: Path
) -> tuple[Dependency, ...]:
    out = []
    for i, raw in enumerate((sensor.get("spec") or {}).get("dependencies") or []):
        where = f"spec.dependencies[{i}]"
        if raw.get("transform"):
            raise FilterSpecError(f"{where}.transform: not supported by the local gateway")
        source = str(raw.get("eventSourceName") or "")
        if source not in sources:
            raise FilterSpecError(f"{where}.eventSourceName: no EventSource {source!r} here")
        out.append(
            Dependency(
                name=str(raw.get("name") or ""),
                source=source,
                event=str(raw.get("eventName") or ""),
                filter=compile_filters(
                    raw.get("filters"), raw.get("filtersLogicalOperator"), where
                ),
            )
        )
    if not out:
        raise FilterSpecError("spec.dependencies: the Sensor has none")
    return tuple(out)


def _trigger(sensor: Mapping[str, Any], dependencies: set[str], path: Path) -> WorkflowTrigger:
    triggers = (sensor.get("spec") or {}).get("triggers") or []
    if len(triggers) != 1:
        raise ParamSpecError(f"spec.triggers: expected one trigger, found {len(triggers)}")
    trigger = triggers[0]
    if trigger.get("parameters"):
        raise ParamSpecError("spec.triggers[0].parameters: template parameters not supported")
    template = trigger.get("template") or {}
    where = "spec.triggers[0].template"
    workflow = template.get("argoWorkflow")
    if not isinstance(workflow, dict):
        raise ParamSpecError(f"{where}: only argoWorkflow triggers are supported locally")
    if str(workflow.get("operation") or "submit") != "submit":
        raise ParamSpecError(f"{where}.argoWorkflow.operation: only submit is supported")
    resource = (workflow.get("source") or {}).get("resource")
    if not isinstance(resource, dict) or resource.get("kind") != "Workflow":
        raise ParamSpecError(f"{where}.argoWorkflow.source.resource: needs an inline Workflow")
    ref = ((resource.get("spec") or {}).get("workflowTemplateRef") or {}).get("name")
    if not ref:
        raise ParamSpecError(f"{where}: the Workflow needs spec.workflowTemplateRef.name")
    conditions = _conditions(template.get("conditions"), dependencies, where)
    parameters = tuple(
        compile_parameter(raw, f"{where}.argoWorkflow.parameters[{i}]")
        for i, raw in enumerate(workflow.get("parameters") or [])
    )
    for parameter in parameters:
        if parameter.dependency not in dependencies:
            raise ParamSpecError(f"{where}: parameter names unknown {parameter.dependency!r}")
    try:
        rate_limit = parse_rate_limit(trigger.get("rateLimit"), "spec.triggers[0].rateLimit")
    except UsageError as exc:
        raise ParamSpecError(str(exc)) from exc
    return WorkflowTrigger(
        str(template.get("name") or ""), str(ref), resource, parameters, conditions, rate_limit
    )


def _conditions(text: Any, dependencies: set[str], where: str) -> tuple[str, ...]:
    if not text:
        if len(dependencies) > 1:
            # Argo then waits for ALL dependencies; the gateway handles one event at a time.
            raise ParamSpecError(f"{where}.conditions: needed with several dependencies")
        return tuple(dependencies)
    names = [n.strip() for n in str(text).split("||")]
    for name in names:
        if name not in dependencies:
            raise ParamSpecError(
                f"{where}.conditions: only 'a || b' of dependency names is supported locally; "
                f"{name!r} is not a dependency"
            )
    return tuple(names)
