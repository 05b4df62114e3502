"""Semantic checks of an Argo spec that neither the models nor the schema make.

- the entrypoint, ``onExit`` and every DAG task's template exist;
- DAG dependencies name tasks of the same DAG and form no cycle; a task that uses
  another task's outputs depends on it (directly or through others);
- no template calls itself, directly or through other templates (recursion grows a
  run without bound; the local engine also stops at ``engine.max_template_depth``);
- every ``{{...}}`` reference resolves in its scope (workflow globals, the
  template's declared inputs, declared outputs of tasks in the same DAG, ``item``
  only with ``withItems``/``withParam``);
- ``when`` and ``depends`` expressions parse;
- memoize keys have Argo's key format once references are filled, ``maxAge`` is a
  duration and the cache ConfigMap name is valid;
- RayJob manifests parse and are valid against the project's strict RayJob schema
  (:mod:`cnai.lint.rayjob`), and against the upstream KubeRay CRD when a folder of
  upstream schemas is given.
"""

from __future__ import annotations

import graphlib
import re
from pathlib import Path
from typing import Any

import yaml

from cnai.argo.semantics.durations import parse_go_duration
from cnai.argo.semantics.graph import find_cycle
from cnai.engine.expr import REFERENCE, depends_tasks, evaluate_when, references
from cnai.engine.memo import KEY_PATTERN
from cnai.errors import UsageError

GLOBALS = {
    "workflow.name",
    "workflow.namespace",
    "workflow.uid",
    "workflow.serviceAccountName",
    "workflow.mainEntrypoint",
    "workflow.creationTimestamp",
    "workflow.parameters",
    "workflow.status",
    "workflow.failures",
    "workflow.duration",
    "workflow.priority",
}
POD_LOCALS = {"pod.name", "node.name", "retries", "inputs.parameters"}
_CONFIGMAP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}")]
    return []


def _params(block: Any) -> list[dict[str, Any]]:
    return [p for p in ((block or {}).get("parameters") or []) if isinstance(p, dict)]


class _Checker:
    def __init__(self, doc: dict[str, Any], schemas_dir: Path | None) -> None:
        self.spec = doc.get("spec") or {}
        if doc.get("kind") == "CronWorkflow":
            self.spec = self.spec.get("workflowSpec") or {}
        self.schemas_dir = schemas_dir
        self.problems: list[tuple[str, str]] = []
        self.templates = {
            t.get("name"): (i, t) for i, t in enumerate(self.spec.get("templates") or [])
        }
        self.globals = set(GLOBALS)
        for param in _params(self.spec.get("arguments")):
            self.globals.add(f"workflow.parameters.{param.get('name')}")
        for _, template in self.templates.values():
            for out in _params(template.get("outputs")):
                if out.get("globalName"):
                    self.globals.add(f"workflow.outputs.parameters.{out['globalName']}")

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def check_refs(self, text: str, scope: set[str], path: str) -> None:
        for name in references(text):
            if name.startswith("="):
                continue  # expression templates are Argo's; the engine refuses them
            if name not in scope:
                self.add(path, f"{{{{{name}}}}} does not resolve here")

    def run(self) -> list[tuple[str, str]]:
        for field in ("entrypoint", "onExit"):
            name = self.spec.get(field)
            if name and name not in self.templates:
                self.add(f"spec.{field}", f"template {name!r} does not exist")
        if not self.spec.get("entrypoint") and not self.spec.get("workflowTemplateRef"):
            self.add("spec.entrypoint", "required")
        for index, template in self.templates.values():
            self.check_template(template, f"spec.templates[{index}]")
        self.check_recursion()
        return self.problems

    def check_recursion(self) -> None:
        """Refuse templates that call themselves, directly or through other templates."""
        calls: dict[str, set[str]] = {}
        for name, (_, template) in self.templates.items():
            if not isinstance(name, str):
                continue
            called: set[str] = set()
            for task in (template.get("dag") or {}).get("tasks") or []:
                if isinstance(task, dict) and isinstance(task.get("template"), str):
                    called.add(task["template"])
            for group in template.get("steps") or []:
                for step in group if isinstance(group, list) else []:
                    if isinstance(step, dict) and isinstance(step.get("template"), str):
                        called.add(step["template"])
            calls[name] = {c for c in called if c in self.templates}
        try:
            graphlib.TopologicalSorter(calls).prepare()
        except graphlib.CycleError as exc:
            cycle = [str(n) for n in reversed(exc.args[1])]
            index = self.templates[cycle[0]][0]
            what = (
                f"template {cycle[0]!r} calls itself"
                if len(cycle) == 2
                else f"templates call each other in a cycle {' -> '.join(cycle)}"
            )
            self.add(
                f"spec.templates[{index}]",
                f"{what}: recursion is refused (a run would grow without bound)",
            )

    def check_template(self, template: dict[str, Any], path: str) -> None:
        inputs = {f"inputs.parameters.{p.get('name')}" for p in _params(template.get("inputs"))}
        scope = self.globals | POD_LOCALS | inputs
        own = {k: v for k, v in template.items() if k != "dag"}
        if "steps" in template:  # checked with the steps' outputs in scope (check_steps)
            own = {k: v for k, v in own.items() if k not in ("steps", "outputs")}
            self.check_steps(template, scope, path)
        for sub_path, text in _strings(own, path):
            self.check_refs(text, scope, sub_path)
        memo = template.get("memoize")
        if memo:
            self.check_memoize(memo, f"{path}.memoize")
        if "dag" in template:
            self.check_dag(template, scope, f"{path}.dag")
        resource = template.get("resource")
        if resource:
            self.check_resource(resource, f"{path}.resource")

    def check_memoize(self, memo: dict[str, Any], path: str) -> None:
        filled = REFERENCE.sub("x", str(memo.get("key", "")))
        if not KEY_PATTERN.match(filled):
            self.add(f"{path}.key", f"does not match Argo's cache key rule {KEY_PATTERN.pattern}")
        try:
            parse_go_duration(str(memo.get("maxAge", "")), f"{path}.maxAge")
        except UsageError as exc:
            self.add(f"{path}.maxAge", str(exc).split(": ", 1)[-1])
        name = ((memo.get("cache") or {}).get("configMap") or {}).get("name", "")
        if not _CONFIGMAP_NAME.match(str(name)):
            self.add(f"{path}.cache.configMap.name", f"{name!r} is not a valid ConfigMap name")

    def check_dag(self, template: dict[str, Any], scope: set[str], path: str) -> None:
        tasks = [t for t in (template["dag"].get("tasks") or []) if isinstance(t, dict)]
        names = {t.get("name"): i for i, t in enumerate(tasks)}
        deps: dict[str, list[str]] = {}
        outputs: set[str] = set()
        for task in tasks:
            target = self.templates.get(task.get("template"))
            if target is None:
                continue
            _, body = target
            for out in _params(body.get("outputs")):
                outputs.add(f"tasks.{task['name']}.outputs.parameters.{out.get('name')}")
            if "script" in body or "container" in body:
                outputs.add(f"tasks.{task['name']}.outputs.result")
            outputs.add(f"tasks.{task['name']}.status")
            outputs.add(f"tasks.{task['name']}.id")
        for index, task in enumerate(tasks):
            task_path = f"{path}.tasks[{index}]"
            name = str(task.get("name"))
            if task.get("template") not in self.templates:
                self.add(
                    f"{task_path}.template", f"template {task.get('template')!r} does not exist"
                )
            try:
                listed = (
                    depends_tasks(str(task["depends"]), task_path)
                    if "depends" in task
                    else [str(d) for d in task.get("dependencies") or []]
                )
            except UsageError as exc:
                self.add(f"{task_path}.depends", str(exc).split(": ", 1)[-1])
                listed = []
            for dep in listed:
                if dep not in names:
                    self.add(f"{task_path}.depends", f"task {dep!r} is not in this DAG")
            deps[name] = [d for d in listed if d in names]
            local = scope | outputs
            if "withItems" in task or "withParam" in task:
                local = local | {"item"}
                for item in task.get("withItems") or []:
                    if isinstance(item, dict):
                        local |= {f"item.{k}" for k in item}
            for sub_path, text in _strings(
                {k: v for k, v in task.items() if k not in ("name", "template", "depends")},
                task_path,
            ):
                self.check_refs(text, local, sub_path)
            if task.get("when"):
                try:
                    evaluate_when(REFERENCE.sub("1", str(task["when"])), f"{task_path}.when")
                except UsageError as exc:
                    self.add(f"{task_path}.when", str(exc).split(": ", 1)[-1])
        cycle = find_cycle(deps)
        if cycle:
            self.add(f"{path}.tasks", f"dependency cycle {' -> '.join(cycle)}")
            return
        for index, task in enumerate(tasks):
            upstream = _closure(str(task.get("name")), deps)
            for sub_path, text in _strings(task.get("arguments") or {}, f"{path}.tasks[{index}]"):
                for ref in references(text):
                    match = re.match(r"tasks\.([^.]+)\.", ref)
                    if match and match.group(1) in names and match.group(1) not in upstream:
                        self.add(
                            sub_path,
                            f"uses outputs of task {match.group(1)!r} without depending on it",
                        )

    def check_steps(self, template: dict[str, Any], scope: set[str], path: str) -> None:
        """A steps template: each group sees the ``steps.X`` variables of earlier groups,
        a fanned-out step ``item``; the template's outputs see every step's."""
        known: set[str] = set()
        for group_index, group in enumerate(template.get("steps") or []):
            steps = [s for s in (group if isinstance(group, list) else []) if isinstance(s, dict)]
            for index, step in enumerate(steps):
                step_path = f"{path}.steps[{group_index}][{index}]"
                if step.get("template") not in self.templates:
                    self.add(
                        f"{step_path}.template",
                        f"template {step.get('template')!r} does not exist",
                    )
                local = scope | known
                fanned = any(k in step for k in ("withItems", "withParam", "withSequence"))
                if fanned:
                    local = local | {"item"}
                    for item in step.get("withItems") or []:
                        if isinstance(item, dict):
                            local |= {f"item.{k}" for k in item}
                for sub_path, text in _strings(
                    {k: v for k, v in step.items() if k not in ("name", "template")}, step_path
                ):
                    for name in references(text):
                        if "withParam" in step and name.startswith("item."):
                            continue  # the keys of a withParam item are known at run time
                        if not name.startswith("=") and name not in local:
                            self.add(sub_path, f"{{{{{name}}}}} does not resolve here")
            for step in steps:
                called = step.get("name")
                known |= {f"steps.{called}.status", f"steps.{called}.outputs.result"}
                _, body = self.templates.get(step.get("template"), (0, {}))
                for out in _params(body.get("outputs")):
                    known.add(f"steps.{called}.outputs.parameters.{out.get('name')}")
        for sub_path, text in _strings(template.get("outputs") or {}, f"{path}.outputs"):
            self.check_refs(text, scope | known, sub_path)

    def check_resource(self, resource: dict[str, Any], path: str) -> None:
        text = REFERENCE.sub("1", str(resource.get("manifest") or ""))
        try:
            manifest = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            self.add(f"{path}.manifest", f"not YAML: {exc}")
            return
        if not isinstance(manifest, dict):
            self.add(f"{path}.manifest", "must be one mapping")
            return
        if manifest.get("kind") == "RayJob":
            from cnai.lint.rayjob import rayjob_problems

            for sub, message in rayjob_problems(manifest):
                self.add(f"{path}.manifest:{sub}", f"RayJob {message}")
            if self.schemas_dir is not None:
                from cnai.lint.schema import rayjob_schema_problems

                for sub, message in rayjob_schema_problems(manifest, self.schemas_dir):
                    self.add(f"{path}.manifest:{sub}", f"RayJob upstream CRD {message}")


def _closure(name: str, deps: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(deps.get(name, []))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(deps.get(current, []))
    return seen


def semantic_problems(
    doc: dict[str, Any], schemas_dir: Path | None = None
) -> list[tuple[str, str]]:
    """(path, problem) for every semantic problem of ``doc``."""
    return _Checker(doc, schemas_dir).run()
