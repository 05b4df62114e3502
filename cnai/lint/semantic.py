"""Semantic checks of an Argo spec that neither the models nor the schema make.

- the entrypoint, ``onExit`` and every DAG task's template exist;
- DAG dependencies name tasks of the same DAG and form no cycle; a task that uses
  another task's outputs depends on it (directly or through others);
- template recursion is accepted, as Argo accepts it (``coinflip-recursive.yaml``); the
  local engine bounds it with ``engine.max_template_depth``;
- every ``{{...}}`` reference resolves in its scope (workflow globals, the
  template's declared inputs, declared outputs of tasks in the same DAG, ``item``
  only with ``withItems``/``withParam``);
- ``when`` and ``depends`` expressions parse;
- template names, DAG task names and step names are unique, every step's template
  exists, ``retryPolicy`` is one Argo knows and every input parameter without a
  value or default is supplied by its caller (argo-workflows v4.1.2
  ``workflow/validate/validate.go``: 1350-1391 unique names, 1062-1076 steps,
  689-693 retry policy; ``workflow/common/util.go:189`` unsupplied input);

Variable scoping mirrors ``resolveAllVariables`` (validate.go:797-836): only tags with
one of Argo's prefixes (``workflow/common/common.go:303``: ``item.``, ``steps.``,
``inputs.``, ``outputs.``, ``pod.``, ``workflow.``, ``tasks.``; plus the bare ``item``)
are checked, other ``{{...}}`` text (Go templates, ``retries``, metric ``status``) is
Argo's to skip; ``outputs.*`` self-references, ``workflow.creationTimestamp*``,
``workflow.scheduledTime``, ``workflow.duration``, ``tasks.name``, ``steps.name`` and
``node.name`` always resolve, and a WorkflowTemplate may name any
``workflow.parameters.*`` (its caller supplies them). Simplifications, all towards
accepting: any ``tasks.X.*`` of a task of the same DAG and any ``steps.X.*`` of a step
of the same template resolve (Argo narrows to ancestors/earlier groups and the fields
each node type has), and ``item.*`` resolves under ``withParam``/``withSequence``.
- memoize keys have Argo's key format once references are filled, ``maxAge`` is a
  duration and the cache ConfigMap name is valid;
- RayJob manifests parse and are valid against the project's strict RayJob schema
  (:mod:`cnai.lint.rayjob`), and against the upstream KubeRay CRD when a folder of
  upstream schemas is given.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cnai.argo.semantics.depends import depends_tasks
from cnai.argo.semantics.durations import parse_go_duration
from cnai.argo.semantics.graph import find_cycle
from cnai.argo.semantics.when import WhenNotSupportedError, evaluate_when
from cnai.engine.expr import REFERENCE, references
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
POD_LOCALS = {"pod.name", "node.name", "retries", "inputs.parameters", "tasks.name", "steps.name"}
ARGO_PREFIXES = ("item.", "steps.", "inputs.", "outputs.", "pod.", "workflow.", "tasks.")
"""``GlobalVarValidWorkflowVariablePrefix`` (argo-workflows v4.1.2 common.go:303)."""
ALWAYS_RESOLVED = (
    "outputs.",
    "workflow.creationTimestamp",
    "workflow.scheduledTime",
    "workflow.duration",
    "workflow.labels",
    "workflow.annotations",
)
"""Prefixes ``resolveAllVariables`` lets through (validate.go:815-830); labels and
annotations are scoped by their keys in Argo, here by the prefix."""
RETRY_POLICIES = {"Always", "OnError", "OnFailure", "OnTransientError", ""}
"""validate.go:689-693."""
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
        self.kind = doc.get("kind")
        self.globals = set(GLOBALS)
        if _params(self.spec.get("arguments")):
            self.globals.add("workflow.parameters.json")  # validate.go:208-211
        for param in _params(self.spec.get("arguments")):
            self.globals.add(f"workflow.parameters.{param.get('name')}")
        for _, template in self.templates.values():
            for out in _params(template.get("outputs")):
                if out.get("globalName"):
                    self.globals.add(f"workflow.outputs.parameters.{out['globalName']}")
            artifacts = (template.get("outputs") or {}).get("artifacts") or []
            for art in artifacts if isinstance(artifacts, list) else []:
                if isinstance(art, dict) and art.get("globalName"):
                    self.globals.add(f"workflow.outputs.artifacts.{art['globalName']}")

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def resolves(self, name: str, scope: set[str]) -> bool:
        """Whether ``{{name}}`` resolves in ``scope`` by Argo's rules (validate.go:797)."""
        if name in scope or name.startswith(ALWAYS_RESOLVED):
            return True
        if self.kind != "Workflow" and name.startswith("workflow.parameters"):
            return True  # validate.go:831: a template's caller may supply them
        return any(s.endswith(".*") and name.startswith(s[:-1]) for s in scope)

    def check_refs(self, text: str, scope: set[str], path: str) -> None:
        for name in references(text):
            if name.startswith("="):
                continue  # expression templates are Argo's; the engine refuses them
            if name != "item" and not name.startswith(ARGO_PREFIXES):
                continue  # not a workflow variable: Argo leaves it alone (common.go:303)
            if not self.resolves(name, scope):
                self.add(path, f"{{{{{name}}}}} does not resolve here")

    def run(self) -> list[tuple[str, str]]:
        for field in ("entrypoint", "onExit"):
            name = self.spec.get(field)
            if self.spec.get("workflowTemplateRef"):
                break  # the referenced template holds them (validate.go:167-186)
            if name and name not in self.templates:
                self.add(f"spec.{field}", f"template {name!r} does not exist")
        library = self.kind in ("WorkflowTemplate", "ClusterWorkflowTemplate")
        if not (self.spec.get("entrypoint") or self.spec.get("workflowTemplateRef") or library):
            self.add("spec.entrypoint", "required")
        seen: set[Any] = set()
        for index, template in enumerate(self.spec.get("templates") or []):
            name = template.get("name") if isinstance(template, dict) else None
            if name in seen:
                self.add(f"spec.templates[{index}].name", f"{name!r} is not unique")
            seen.add(name)
        for index, template in self.templates.values():
            self.check_template(template, f"spec.templates[{index}]")
        self.check_entry_inputs()
        self.check_unconditional_recursion()
        return self.problems

    def check_unconditional_recursion(self) -> None:
        """Refuse a template that always calls itself again, directly or through others.

        Argo accepts recursion (examples/coinflip-recursive.yaml ends when a ``when`` is
        false), so only a cycle of calls none of which can be left out is refused: no
        ``when``, no ``withParam``/``withSequence`` (possibly empty) and no ``depends``
        on anything but success. Such a run can only end by failing or by hitting the
        engine's ``engine.max_template_depth`` / ``engine.max_nodes``.
        """
        calls: dict[str, list[str]] = {}
        for name, (_, template) in self.templates.items():
            if not isinstance(name, str):
                continue
            nodes = list((template.get("dag") or {}).get("tasks") or [])
            for group in template.get("steps") or []:
                nodes += group if isinstance(group, list) else []
            calls[name] = [
                node["template"]
                for node in nodes
                if isinstance(node, dict)
                and node.get("template") in self.templates
                and not _conditional(node)
            ]
        cycle = find_cycle(calls)
        if cycle:
            index = self.templates[cycle[0]][0]
            what = (
                f"template {cycle[0]!r} calls itself"
                if len(cycle) == 2
                else f"templates call each other in a cycle {' -> '.join(cycle)}"
            )
            self.add(
                f"spec.templates[{index}]",
                f"{what} unconditionally: a run would never end (guard the call with `when`)",
            )

    def check_entry_inputs(self) -> None:
        """A Workflow's arguments supply its entrypoint's unset inputs (util.go:189)."""
        if self.kind != "Workflow" or self.spec.get("workflowTemplateRef"):
            return
        entry = self.templates.get(self.spec.get("entrypoint"))
        if entry is not None:
            self.check_supplied(entry[1], self.spec.get("arguments"), "spec.arguments")

    def check_supplied(self, target: dict[str, Any], arguments: Any, path: str) -> None:
        """Every input parameter of ``target`` with no value/default is in ``arguments``."""
        given = {p.get("name") for p in _params(arguments)}
        for param in _params(target.get("inputs")):
            unset = not any(k in param for k in ("value", "default", "valueFrom"))
            if unset and param.get("name") not in given:
                self.add(
                    path,
                    f"inputs.parameters.{param.get('name')} of template "
                    f"{target.get('name')!r} was not supplied (it has no value or default)",
                )

    def check_template(self, template: dict[str, Any], path: str) -> None:
        declared = template.get("inputs") or {}
        inputs = {f"inputs.parameters.{p.get('name')}" for p in _params(declared)}
        inputs |= {
            f"inputs.artifacts.{a.get('name')}{suffix}"
            for a in declared.get("artifacts") or []
            if isinstance(a, dict)
            for suffix in ("", ".path")
        }
        scope = self.globals | POD_LOCALS | inputs
        if isinstance(template.get("retryStrategy"), dict):
            policy = template["retryStrategy"].get("retryPolicy", "")
            if policy not in RETRY_POLICIES:
                self.add(
                    f"{path}.retryStrategy.retryPolicy",
                    f"{policy!r} is not a valid RetryPolicy (one of "
                    f"{', '.join(sorted(p for p in RETRY_POLICIES if p))})",
                )
        if "steps" in template:  # each group sees only the groups before it
            self.check_steps(template, scope, f"{path}.steps")
        dag = template.get("dag") or {}
        for task in dag.get("tasks") or [] if isinstance(dag, dict) else []:
            if isinstance(task, dict):
                scope = scope | self.node_scope("tasks", task)
        for group in template.get("steps") or []:
            for step in group if isinstance(group, list) else []:
                if isinstance(step, dict):
                    scope = scope | self.node_scope("steps", step)
        body = {k: v for k, v in template.items() if k not in ("dag", "steps")}
        for sub_path, text in _strings(body, path):
            self.check_refs(text, scope, sub_path)
        memo = template.get("memoize")
        if memo:
            self.check_memoize(memo, f"{path}.memoize")
        if "dag" in template:
            self.check_dag(template, scope, f"{path}.dag")
        resource = template.get("resource")
        if resource:
            self.check_resource(resource, f"{path}.resource")

    def node_scope(self, kind: str, call: dict[str, Any]) -> set[str]:
        """What ``{{tasks.X...}}``/``{{steps.X...}}`` may name of a called template.

        Mirrors ``addOutputsToScope`` (validate.go:1186-1242): the node's id, ip, status,
        startedAt, finishedAt, hostNodeName, exitCode, ``outputs.result``, its declared
        output parameters and artifacts, and the aggregated ``outputs.parameters`` of a
        loop. A ``templateRef``/``inline`` target is not read here: anything resolves.
        """
        base = f"{kind}.{call.get('name')}"
        target = self.templates.get(call.get("template"))
        if "templateRef" in call or "inline" in call:
            return {f"{base}.*"}
        fields = ["id", "ip", "status", "startedAt", "finishedAt", "hostNodeName", "exitCode"]
        fields += ["outputs.result", "outputs.exitCode", "outputs.parameters"]
        found = {f"{base}.{f}" for f in fields}
        outputs = (target[1].get("outputs") if target else None) or {}
        for out in _params(outputs):
            found.add(f"{base}.outputs.parameters.{out.get('name')}")
        for art in outputs.get("artifacts") or []:
            if isinstance(art, dict):
                found.add(f"{base}.outputs.artifacts.{art.get('name')}")
        return found

    def loop_scope(self, task: dict[str, Any]) -> set[str]:
        """What ``withItems``/``withParam``/``withSequence`` add (validate.go:1139)."""
        local: set[str] = set()
        if "withParam" in task or "withSequence" in task:
            local |= {"item", "item.*"}
        if "withItems" in task:
            local.add("item")
            for item in task.get("withItems") or []:
                if isinstance(item, dict):
                    local |= {f"item.{k}" for k in item} | {f"item.{k}.*" for k in item}
        return local

    def check_call(self, task: dict[str, Any], path: str) -> None:
        """The called template exists and gets every input it has no value for."""
        if "templateRef" in task or "inline" in task:
            return  # resolved by Argo at submission time / defined in place
        target = self.templates.get(task.get("template"))
        if target is None:
            self.add(f"{path}.template", f"template {task.get('template')!r} does not exist")
            return
        self.check_supplied(target[1], task.get("arguments"), f"{path}.arguments")

    def check_steps(self, template: dict[str, Any], scope: set[str], path: str) -> None:
        """Steps: unique names, existing templates, references in scope (validate.go:1062).

        A group sees the ``steps.X`` variables of the groups before it, not of its own
        (the outputs of a group are added to the scope after it is validated).
        """
        seen: set[Any] = set()
        for g, group in enumerate(template.get("steps") or []):
            earlier = scope
            for step in group if isinstance(group, list) else []:
                if isinstance(step, dict):
                    scope = scope | self.node_scope("steps", step)
            for s, step in enumerate(group if isinstance(group, list) else []):
                if not isinstance(step, dict):
                    continue
                step_path = f"{path}[{g}][{s}]"
                if step.get("name") in seen:
                    self.add(f"{step_path}.name", f"{step.get('name')!r} is not unique")
                seen.add(step.get("name"))
                self.check_call(step, step_path)
                local = earlier | self.loop_scope(step)
                rest = {
                    k: v
                    for k, v in step.items()
                    if k not in ("name", "template", "inline", "hooks")
                }
                for sub_path, text in _strings(rest, step_path):
                    self.check_refs(text, local, sub_path)
                # A step's hooks run after it: they see its own outputs too.
                for sub_path, text in _strings(step.get("hooks") or {}, f"{step_path}.hooks"):
                    self.check_refs(text, scope | self.loop_scope(step), sub_path)
                if step.get("when") and not _bare_reference(str(step["when"])):
                    problem = _when_problem(str(step["when"]), f"{step_path}.when")
                    if problem:
                        self.add(f"{step_path}.when", problem)

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
        names: dict[Any, int] = {}
        for i, task in enumerate(tasks):
            if task.get("name") in names:
                self.add(f"{path}.tasks[{i}].name", f"{task.get('name')!r} is not unique")
            names.setdefault(task.get("name"), i)
        deps: dict[str, list[str]] = {}
        outputs: set[str] = set()
        for task in tasks:
            outputs |= self.node_scope("tasks", task)
        for index, task in enumerate(tasks):
            task_path = f"{path}.tasks[{index}]"
            name = str(task.get("name"))
            self.check_call(task, task_path)
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
            local = scope | outputs | self.loop_scope(task)
            for sub_path, text in _strings(
                {
                    k: v
                    for k, v in task.items()
                    if k not in ("name", "template", "depends", "inline")
                },
                task_path,
            ):
                self.check_refs(text, local, sub_path)
            if task.get("when") and not _bare_reference(str(task["when"])):
                problem = _when_problem(str(task["when"]), f"{task_path}.when")
                if problem:
                    self.add(f"{task_path}.when", problem)
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

    def check_resource(self, resource: dict[str, Any], path: str) -> None:
        if not resource.get("manifest"):
            return  # e.g. ``action: delete`` with ``flags`` only
        text = REFERENCE.sub("1", str(resource.get("manifest") or ""))
        try:
            manifest = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            self.add(f"{path}.manifest", f"not YAML: {exc}")
            return
        if isinstance(manifest, list) and resource.get("action") == "patch":
            return  # a JSON patch (mergeStrategy: json) is a list of operations
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


def _bare_reference(when: str) -> bool:
    """A ``when`` that is one ``{{...}}``: its value (true/false) is only known at run time."""
    return REFERENCE.fullmatch(when.strip()) is not None


def _when_problem(when: str, where: str) -> str:
    """Why ``when`` cannot evaluate for any value of its references ("" when it can).

    A reference's value is unknown before the run, and Argo substitutes it as text: a
    number (``1``) or a word, which Argo's ``when`` evaluation turns into a string
    (``shouldExecute``, workflow/controller/steps.go). Only an expression that fails
    both ways (a syntax error, an unknown operator) is reported.
    """
    first = ""
    for value in ("1", "x"):
        try:
            evaluate_when(REFERENCE.sub(value, when), where)
            return ""
        except WhenNotSupportedError:
            return ""  # valid for Argo; `cnai run` refuses it, lint does not
        except UsageError as exc:
            first = first or str(exc).split(": ", 1)[-1]
    return first


def _conditional(node: dict[str, Any]) -> bool:
    """Whether a step or DAG task may be left out at run time (see the recursion check)."""
    if node.get("when") or node.get("withParam") or node.get("withSequence"):
        return True
    if "withItems" in node and not node["withItems"]:
        return True
    depends = str(node.get("depends") or "")
    return bool(re.search(r"[!|]|\.(?!Succeeded\b)[A-Z]", depends))


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
