"""Executes one Workflow (the instantiated, compiled YAML) on this machine.

Semantics follow the Argo controller for the features the spec checker accepts:
DAG order with independent tasks in parallel (``parallelism`` bounds concurrent
leaf tasks), ``depends``/``dependencies``, the DAG phase and fail-fast as
``dag.go`` decides, steps templates (groups in order, steps of a group in
parallel), ``when``, ``withItems``/``withParam``/``withSequence`` fan-out with
aggregated outputs, input/output parameters (workflow arguments bound to the
entrypoint's inputs, ``valueFrom.parameter`` outputs of DAG/steps templates),
``retryStrategy`` (limit, policy, backoff), ``memoize`` (local cache, ``maxAge``),
``activeDeadlineSeconds`` (workflow and template), mutexes, and the ``onExit``
handler with ``workflow.status``/``workflow.failures``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnai.argo.semantics.depends import depends_tasks, evaluate_depends
from cnai.argo.semantics.durations import parse_backoff_duration as parse_duration
from cnai.argo.semantics.durations import parse_go_duration
from cnai.argo.semantics.graph import find_cycle
from cnai.argo.semantics.when import evaluate_when
from cnai.engine.executors import (
    BAD_INPUT_EXIT_CODE,
    Attempt,
    ProcessExecutor,
    ResourceExecutor,
    TaskContext,
)
from cnai.engine.expr import substitute
from cnai.engine.limits import DEFAULT_LIMITS, EngineLimits
from cnai.engine.memo import MemoCache, check_key
from cnai.engine.raylocal import LocalRay
from cnai.engine.retryexpr import retry_scope, should_retry
from cnai.engine.spec import parameter_text
from cnai.engine.store import RunStore
from cnai.engine.view import RunView
from cnai.engine.zygote import Zygote
from cnai.errors import CnaiError, UsageError

DONE = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")
FAILED = ("Failed", "Error")
DEFAULT_NAMESPACE = "cnai"


@dataclass
class EngineOptions:
    """How the engine runs tasks (not part of the spec)."""

    base_env: dict[str, str]
    """Environment every task process starts from (PATH, the home's settings, ...)."""
    settings_env: dict[str, str]
    """What ``envFrom`` the pipeline ConfigMap/Secret gives a pod, from the home's settings."""
    ray_address: str | None = None
    """An existing Ray cluster; None starts one local runtime on first use."""
    warm: bool = True
    """Fork ``python -m`` tasks from a warm zygote instead of a fresh interpreter."""
    preload: list[str] = field(default_factory=list)
    """Modules the zygote imports ahead of the tasks: ``EARLY... [-- LATER...]``; the
    later ones once the run starts a second task (see cnai.engine.zygote)."""
    zygote: Zygote | None = None
    """A zygote started ahead of the run (``cnai run`` starts it before compiling, so its
    imports overlap the command's own work); the engine adds ``preload`` to it and
    closes it. None: the engine starts one when ``warm``."""
    reuse: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Node records from an earlier attempt of this run (retry) or run (resubmit)."""
    reuse_as_memoized: bool = False
    """Mark reused nodes as memoized (``resubmit --memoized``)."""
    namespace: str = DEFAULT_NAMESPACE
    limits: EngineLimits = DEFAULT_LIMITS
    """Bounds on nodes, template nesting and worker threads (config section ``engine``)."""
    reap_holder: Callable[[str], None] | None = None
    """Called with the run id recorded in a mutex this run waits for: it ends the leftover
    task processes of that run when its engine is gone (they keep the mutex held)."""


class Engine:
    """Runs a Workflow document and keeps its run record up to date."""

    def __init__(
        self,
        workflow: dict[str, Any],
        store: RunStore,
        record: dict[str, Any],
        memo: MemoCache,
        locks_dir: Path,
        view: RunView,
        options: EngineOptions,
    ) -> None:
        self.workflow = workflow
        self.spec = workflow["spec"]
        self.templates = {t["name"]: t for t in self.spec.get("templates") or []}
        self.store = store
        self.record = record
        self.folder = store.path(record["run_id"])
        self.memo = memo
        self.locks_dir = locks_dir
        self.view = view
        self.options = options
        self.lock = threading.RLock()
        self.nodes: dict[str, dict[str, Any]] = {}
        self.limits = options.limits
        self.node_budget = self.limits.max_nodes
        self.save_error = ""
        self.held_fds: set[int] = set()
        """Descriptors of the mutex files this engine holds; task processes inherit them so
        a mutex stays held while a task of a killed engine still runs."""
        self.cancelled = threading.Event()
        self.cancel_reason = ""
        self.leaf_starts = 0
        """Leaf attempts started so far, outside the exit handler."""
        self.in_exit_handler = False
        parallelism = self.spec.get("parallelism")
        self.slots = threading.BoundedSemaphore(int(parallelism)) if parallelism else None
        self.deadline: float | None = None
        self.ray = LocalRay(options.ray_address, env=options.base_env, log=self.folder / "ray.log")
        self.zygote: Zygote | None = None
        self.process_executor = ProcessExecutor(None)
        self.resource_executor = ResourceExecutor()
        params = (self.spec.get("arguments") or {}).get("parameters") or []
        meta = workflow.get("metadata") or {}
        self.scope: dict[str, str] = {
            "workflow.name": str(meta.get("name", "")),
            "workflow.uid": str(meta.get("uid", "")),
            "workflow.namespace": options.namespace,
            "workflow.serviceAccountName": str(self.spec.get("serviceAccountName", "")),
            "workflow.mainEntrypoint": str(self.spec.get("entrypoint", "")),
            "workflow.creationTimestamp": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.get("started_at") or time.time())
            ),
            "workflow.parameters": json.dumps(
                [{"name": p["name"], "value": p.get("value", "")} for p in params]
            ),
        }
        for param in params:
            self.scope[f"workflow.parameters.{param['name']}"] = str(param.get("value", ""))

    # ------------------------------------------------------------ record keeping

    def _save(self) -> None:
        """Write the run record; the first failure to write stops the run (never raises)."""
        with self.lock:
            self.record["tasks"] = sorted(
                self.nodes.values(), key=lambda n: (n.get("started_at") or 1e18, n["id"])
            )
            if self.save_error:
                return
            try:
                self.store.save(self.record)
            except (OSError, CnaiError) as exc:
                self.save_error = str(exc)
                self._cancel(f"stopped: {exc}")

    def _node(self, node_id: str, task: str, template: str, **fields: Any) -> dict[str, Any]:
        """A new node record; past ``max_nodes`` it is not recorded and the run stops."""
        with self.lock:
            over = node_id not in self.nodes and len(self.nodes) >= self.node_budget
            if over:
                self._cancel(
                    f"the run reached {self.limits.max_nodes} nodes, the most one run may "
                    "create (setting engine.max_nodes)"
                )
            node = {
                "id": node_id,
                "name": node_id,
                "task": task,
                "template": template,
                "phase": "Pending",
                "memoized": False,
                "skipped": False,
                "started_at": time.time(),
                "finished_at": None,
                "duration_seconds": None,
                "inputs": {},
                "outputs": {},
                "message": "",
                "attempts": 0,
                "log": f"tasks/{_safe(node_id)}/main.log",
                **fields,
            }
            if over:
                node["over_limit"] = True
            else:
                self.nodes[node_id] = node
        return node

    def _set(self, node: dict[str, Any], **fields: Any) -> None:
        with self.lock:
            node.update(fields)
            if fields.get("phase") in DONE:
                node["finished_at"] = time.time()
                node["duration_seconds"] = round(node["finished_at"] - node["started_at"], 3)
                node["skipped"] = node["phase"] == "Skipped"
            self._save()
        self.view.update(node)

    # ------------------------------------------------------------ run

    def run(self) -> dict[str, Any]:
        """Execute the workflow (and its exit handler); returns the final record."""
        started = time.time()
        self.record.update(phase="Running", message="", finished_at=None)
        self.record.setdefault("started_at", started)
        if self.spec.get("activeDeadlineSeconds"):
            self.deadline = started + float(self.spec["activeDeadlineSeconds"])
        self._save()
        self.view.start(self.record["run_id"])
        phase, message = "Error", ""
        try:
            if self.options.zygote is not None:
                self.zygote = self.options.zygote
                self.zygote.load(self.options.preload)
            elif self.options.warm:
                self.zygote = Zygote(self.options.preload, self.options.base_env, Path(os.getcwd()))
            self.process_executor.zygote = self.zygote
            with self._mutexes(self.spec.get("synchronization"), self.scope, "workflow"):
                phase, message = self._run_entrypoint()
                phase, message = self._run_exit_handler(phase, message)
        except KeyboardInterrupt:
            self._cancel("terminated")
            phase, message = "Failed", "terminated"
            raise
        finally:
            self._finish(phase, message, started)
        if self.save_error:
            raise CnaiError(
                f"run {self.record['run_id']}: cannot write its record, the run was stopped: "
                f"{self.save_error}"
            )
        return self.record

    def _finish(self, phase: str, message: str, started: float) -> None:
        self.cancelled.set()
        # Task threads kill their process groups as soon as they see the cancellation.
        wait_until = time.time() + 10
        while time.time() < wait_until and any(
            n["phase"] == "Running" and not _is_group(self.templates.get(n["template"], {}))
            for n in list(self.nodes.values())
        ):
            time.sleep(0.05)
        if self.zygote is not None:
            self.zygote.close()
        self.ray.shutdown()
        with self.lock:
            for node in self.nodes.values():
                if node["phase"] not in DONE:
                    node.update(phase="Failed", message=message or "the run ended")
                    node["finished_at"] = time.time()
                    node["duration_seconds"] = round(node["finished_at"] - node["started_at"], 3)
            finished = time.time()
            self.record.update(
                phase=phase,
                message=message,
                finished_at=finished,
                duration_seconds=round(finished - float(self.record["started_at"]), 3),
            )
            self._save()
        self.view.stop(phase, finished - started)

    def _cancel(self, reason: str) -> None:
        self.cancel_reason = self.cancel_reason or reason
        self.cancelled.set()

    def _run_entrypoint(self) -> tuple[str, str]:
        name = str(self.spec.get("entrypoint", ""))
        template = self.templates.get(name)
        if template is None:
            return "Error", f"entrypoint template {name!r} does not exist"
        # operator.go:422 executes the entrypoint with spec.arguments as its arguments:
        # the entrypoint's inputs take the workflow parameters of the same name.
        arguments = {
            str(p["name"]): str(p.get("value", ""))
            for p in (self.spec.get("arguments") or {}).get("parameters") or []
        }
        if "dag" not in template:
            attempt = self._execute(name, arguments, name, name, depth=1)
            return attempt.phase, attempt.message
        try:
            inputs = self._inputs(template, arguments, f"template {name}")
        except UsageError as exc:
            return "Error", str(exc)
        phase, message, _ = self._run_dag(template, inputs, prefix="", depth=1)
        if self.cancel_reason:
            return "Failed", self.cancel_reason
        return phase, message

    def _run_exit_handler(self, phase: str, message: str) -> tuple[str, str]:
        name = self.spec.get("onExit")
        if not name:
            return phase, message
        failures = [
            {
                "displayName": n["name"],
                "message": n["message"],
                "templateName": n["template"],
                "phase": n["phase"],
                "podName": n["id"],
                "finishedAt": n["finished_at"],
            }
            for n in self.nodes.values()
            if n["phase"] in FAILED
        ]
        self.scope.update(
            {
                "workflow.status": phase,
                "workflow.failures": json.dumps(failures),
                "workflow.duration": f"{time.time() - float(self.record['started_at']):.3f}",
            }
        )
        if self.save_error:
            return phase, message
        self.in_exit_handler = True
        self.cancelled.clear()
        self.cancel_reason = ""
        # The exit handler gets a node budget of its own, so a run stopped by the limit
        # still reports its outcome.
        self.node_budget = len(self.nodes) + self.limits.max_nodes
        attempt = self._execute(str(name), {}, "onExit", "onExit", depth=1)
        if attempt.phase in FAILED and phase == "Succeeded":
            # operator.go:552-561: a failed exit handler fails a succeeded workflow, an
            # errored one makes it Error.
            return attempt.phase, f"exit handler failed: {attempt.message}"
        return phase, message

    # ------------------------------------------------------------ templates

    def _inputs(
        self, template: dict[str, Any], arguments: dict[str, str], where: str
    ) -> dict[str, str]:
        values: dict[str, str] = {}
        for param in (template.get("inputs") or {}).get("parameters") or []:
            name = param["name"]
            if name in arguments:
                value = arguments[name]
            elif "value" in param:
                value = substitute(parameter_text(param["value"]), self.scope, where)
            elif "default" in param:
                value = parameter_text(param["default"])
            else:
                raise UsageError(f"{where}: inputs.parameters.{name} was not supplied")
            enum = param.get("enum")
            if enum and value not in [parameter_text(v) for v in enum]:
                raise UsageError(f"{where}: inputs.parameters.{name}={value!r} is not in {enum}")
            values[name] = value
        return values

    def _template_scope(self, template: dict[str, Any], inputs: dict[str, str]) -> dict[str, str]:
        scope = dict(self.scope)
        declared = (template.get("inputs") or {}).get("parameters") or []
        scope["inputs.parameters"] = json.dumps(
            [{"name": p["name"], "value": inputs[p["name"]]} for p in declared]
        )
        for name, value in inputs.items():
            scope[f"inputs.parameters.{name}"] = value
        return scope

    def _execute(
        self, template_name: str, arguments: dict[str, str], node_id: str, task: str, depth: int
    ) -> Attempt:
        """Run one template invocation as node ``node_id`` (``depth``: 1 for the entrypoint)."""
        template = self.templates.get(template_name)
        node = self._node(node_id, task, template_name)
        if node.get("over_limit"):
            return Attempt("Error", self.cancel_reason)
        if depth > self.limits.max_template_depth:
            reason = (
                f"templates nested more than {self.limits.max_template_depth} deep "
                "(recursion?; setting engine.max_template_depth)"
            )
            self._cancel(reason)
            self._set(node, phase="Error", message=reason)
            return Attempt("Error", reason)
        if template is None:
            attempt = Attempt("Error", f"template {template_name!r} does not exist")
            self._set(node, phase=attempt.phase, message=attempt.message)
            return attempt
        try:
            inputs = self._inputs(template, arguments, f"task {node_id}")
        except UsageError as exc:
            self._set(node, phase="Error", message=str(exc))
            return Attempt("Error", str(exc))
        previous = self.options.reuse.get(node_id)
        if (
            not _is_group(template)
            and previous
            and previous.get("phase") == "Succeeded"
            and previous.get("inputs") == inputs
        ):
            return self._reuse(node, previous)
        self._set(node, phase="Running", inputs=inputs)
        if _is_group(template):
            if "dag" in template:
                phase, message, scope = self._run_dag(
                    template, inputs, prefix=f"{node_id}.", depth=depth
                )
            else:
                phase, message, scope = self._run_steps(template, inputs, node_id, depth)
            attempt = Attempt(phase, message)
            if phase == "Succeeded":
                attempt = self._group_outputs(template, scope, f"task {node_id}")
        else:
            attempt = self._run_leaf(node, template, inputs)
        extra: dict[str, Any] = {}
        if attempt.exit_code is not None:
            extra["exit_code"] = attempt.exit_code
        if attempt.exit_code == BAD_INPUT_EXIT_CODE and attempt.phase in FAILED:
            extra["bad_input"] = True
        self._set(
            node, phase=attempt.phase, message=attempt.message, outputs=attempt.outputs, **extra
        )
        return attempt

    def _reuse(self, node: dict[str, Any], previous: dict[str, Any]) -> Attempt:
        """Take a Succeeded node of an earlier attempt (retry) or run (resubmit)."""
        with self.lock:
            node.update({k: v for k, v in previous.items() if k != "id"})
            if self.options.reuse_as_memoized:
                node["memoized"] = True
                node["message"] = "memoized: reused from the resubmitted run"
            self._save()
        self.view.update(node)
        return Attempt("Succeeded", "", dict(previous.get("outputs") or {}))

    # ------------------------------------------------------------ DAG

    def _run_dag(
        self, template: dict[str, Any], inputs: dict[str, str], prefix: str, depth: int
    ) -> tuple[str, str, dict[str, str]]:
        """Run a DAG template; returns its phase, message and final scope.

        Scheduling and the phase follow argo-workflows v4.1.2 ``workflow/controller/dag.go``:
        the DAG's phase is decided by its target tasks (``dag.target``, else the tasks no
        other task depends on, dag.go:301-306), an Omitted task taking the phase of the
        branch above it with Failed/Error preferred (``assessDAGPhase``, dag.go:140-245);
        with ``failFast`` (default true, dag.go:217) the DAG fails, and schedules nothing
        more, as soon as one target's branch has failed.
        """
        tasks = {t["name"]: t for t in template["dag"]["tasks"]}
        where = f"template {template['name']}"
        scope = self._template_scope(template, inputs)
        deps: dict[str, list[str]] = {}
        for name, task in tasks.items():
            if "depends" in task:
                deps[name] = depends_tasks(str(task["depends"]), f"{where} task {name}")
            else:
                deps[name] = list(task.get("dependencies") or [])
            missing = [d for d in deps[name] if d not in tasks]
            if missing:
                return (
                    "Error",
                    f"{where}: task {name} depends on unknown task {missing[0]!r}",
                    scope,
                )
        cycle = find_cycle(deps)
        if cycle:
            return "Error", f"{where}: dependency cycle {' -> '.join(cycle)}", scope
        target = str(template["dag"].get("target") or "").split()
        unknown = [t for t in target if t not in tasks]
        if unknown:
            return "Error", f"{where}: dag.target names unknown task {unknown[0]!r}", scope
        targets = target or [n for n in tasks if not any(n in d for d in deps.values())]
        fail_fast = template["dag"].get("failFast") is not False

        phases: dict[str, list[str]] = {}
        messages: dict[str, str] = {}
        state = {name: "waiting" for name in tasks}
        cond = threading.Condition(self.lock)
        pool = ThreadPoolExecutor(
            max_workers=min(self.limits.max_workers, max(1, len(tasks))),
            thread_name_prefix="cnai-task",
        )

        def finish(name: str, result: list[Attempt], outputs: dict[str, Any]) -> None:
            with cond:
                try:
                    phases[name] = [a.phase for a in result] or ["Skipped"]
                    bad = [a for a in result if a.phase in FAILED]
                    if bad:
                        messages[name] = f"task {prefix}{name}: {bad[0].message}"
                    self._publish(scope, "tasks", name, outputs, phases[name])
                finally:  # a pool thread's exception is silent: never leave the DAG waiting
                    state[name] = "done"
                    cond.notify_all()

        def worker(name: str, local_scope: dict[str, str]) -> None:
            try:
                result, outputs = self._run_task(tasks[name], local_scope, prefix, depth)
            except Exception as exc:  # noqa: BLE001 - becomes the task's Error
                result, outputs = [self._task_error(prefix, tasks[name], exc)], {}
            finish(name, result, outputs)

        def assessed() -> str:
            return _dag_phase(targets, deps, phases, fail_fast)

        try:
            with cond:
                while True:
                    self._check_deadline()
                    for name, task in tasks.items():
                        if state[name] != "waiting" or any(state[d] != "done" for d in deps[name]):
                            continue
                        expression = str(task.get("depends") or " && ".join(deps[name]))
                        stopped = fail_fast and assessed() in FAILED
                        run_it = not stopped and not self.cancelled.is_set()
                        reason = "not run: " + (
                            self.cancel_reason or "the DAG has failed (failFast)"
                        )
                        if run_it and expression:
                            run_it = evaluate_depends(
                                expression, lambda n: phases.get(n, []), f"{where} task {name}"
                            )
                            reason = f"depends {expression!r} is false"
                        if not run_it:
                            node = self._node(f"{prefix}{name}", name, str(task.get("template")))
                            self._set(node, phase="Omitted", message=reason)
                            phases[name] = ["Omitted"]
                            state[name] = "done"
                            continue
                        state[name] = "running"
                        pool.submit(worker, name, dict(scope))
                    if all(s == "done" for s in state.values()):
                        break
                    cond.wait(0.2)
        except BaseException as exc:
            # Stop the tasks already started (they see the cancellation) before leaving.
            stopped = isinstance(exc, KeyboardInterrupt)
            self._cancel("terminated" if stopped else f"{type(exc).__name__}: {exc}")
            raise
        finally:
            pool.shutdown(wait=True)
        phase = assessed()
        if phase in FAILED:
            failed = [m for n, m in messages.items()]
            return phase, failed[0] if failed else "a target task's branch failed", scope
        return "Succeeded", "", scope

    def _run_steps(
        self, template: dict[str, Any], inputs: dict[str, str], node_id: str, depth: int
    ) -> tuple[str, str, dict[str, str]]:
        """Run a steps template: its groups in order, the steps of one group in parallel.

        As argo-workflows v4.1.2 ``workflow/controller/steps.go`` decides: group ``i`` is
        node ``<node>[i]`` and its steps ``<node>[i].<step>`` (steps.go:71, 139); a group
        fails when one of its steps Failed or Errored (steps.go:364-377), and then the
        template fails with no later group run (steps.go:121-128); after each group its
        steps' outputs and status enter the scope as ``steps.<name>...`` (steps.go:137-167).
        """
        scope = self._template_scope(template, inputs)
        for index, group in enumerate(template.get("steps") or []):
            self._check_deadline()
            if self.cancelled.is_set():
                return "Failed", self.cancel_reason or "cancelled", scope
            prefix = f"{node_id}[{index}]."
            group_node = self._node(f"{node_id}[{index}]", f"[{index}]", template["name"])
            if group_node.get("over_limit"):
                return "Error", self.cancel_reason, scope
            self._set(group_node, phase="Running")
            steps = list(group or [])
            with ThreadPoolExecutor(
                max_workers=min(self.limits.max_workers, max(1, len(steps))),
                thread_name_prefix="cnai-step",
            ) as pool:
                futures = [
                    pool.submit(self._run_step, step, dict(scope), prefix, depth) for step in steps
                ]
            results = [f.result() for f in futures]
            failed = ""
            for step, (attempts, _) in zip(steps, results, strict=True):
                bad = [a for a in attempts if a.phase in FAILED]
                if bad and not failed:
                    failed = f"child '{prefix}{step['name']}' failed: {bad[0].message}"
            if failed:
                self._set(group_node, phase="Failed", message=failed)
                return "Failed", failed, scope
            for step, (attempts, outputs) in zip(steps, results, strict=True):
                step_phases = [a.phase for a in attempts] or ["Skipped"]
                self._publish(scope, "steps", str(step["name"]), outputs, step_phases)
            self._set(group_node, phase="Succeeded")
        return "Succeeded", "", scope

    def _run_step(
        self, step: dict[str, Any], scope: dict[str, str], prefix: str, depth: int
    ) -> tuple[list[Attempt], dict[str, Any]]:
        """One step of a group (expanded over its items); an exception becomes its Error."""
        try:
            return self._run_task(step, scope, prefix, depth)
        except Exception as exc:  # noqa: BLE001 - becomes the step's Error
            return [self._task_error(prefix, step, exc)], {}

    def _group_outputs(
        self, template: dict[str, Any], scope: dict[str, str], where: str
    ) -> Attempt:
        """A DAG/steps template's own outputs: ``valueFrom.parameter`` over its final scope."""
        parameters: dict[str, str] = {}
        for output in (template.get("outputs") or {}).get("parameters") or []:
            source = (output.get("valueFrom") or {}).get("parameter")
            if source is None:
                continue
            try:
                parameters[str(output["name"])] = substitute(
                    str(source), scope, f"{where}.outputs.parameters.{output['name']}"
                )
            except UsageError as exc:
                if "default" in (output.get("valueFrom") or {}):
                    parameters[str(output["name"])] = parameter_text(output["valueFrom"]["default"])
                    continue
                return Attempt("Error", str(exc))
        return Attempt("Succeeded", "", {"parameters": parameters} if parameters else {})

    def _publish(
        self,
        scope: dict[str, str],
        kind: str,
        name: str,
        outputs: dict[str, Any],
        phases: list[str],
    ) -> None:
        """Put a finished task's (``kind`` "tasks") or step's ("steps") status and outputs
        in ``scope``."""
        scope[f"{kind}.{name}.status"] = phases[0] if len(phases) == 1 else json.dumps(phases)
        for key, value in (outputs.get("parameters") or {}).items():
            scope[f"{kind}.{name}.outputs.parameters.{key}"] = value
        if "result" in outputs:
            scope[f"{kind}.{name}.outputs.result"] = outputs["result"]

    def _task_error(self, prefix: str, task: dict[str, Any], exc: Exception) -> Attempt:
        """An unexpected exception of one task as that task's Error (never raises)."""
        message = str(exc) if isinstance(exc, CnaiError) else f"{type(exc).__name__}: {exc}"
        node = self._node(f"{prefix}{task.get('name')}", str(task.get("name")), "")
        if not node.get("over_limit"):
            node["template"] = str(task.get("template"))
            self._set(node, phase="Error", message=message)
        return Attempt("Error", message)

    def _run_task(
        self, task: dict[str, Any], scope: dict[str, str], prefix: str, depth: int
    ) -> tuple[list[Attempt], dict[str, Any]]:
        """Run one DAG task (expanded over its items); returns attempts and outputs."""
        name = task["name"]
        where = f"task {prefix}{name}"
        items: list[Any] | None = None
        if "withItems" in task:
            items = list(task["withItems"])
        elif "withSequence" in task:
            items = _sequence(task["withSequence"], scope, f"{where}.withSequence")
        elif "withParam" in task:
            text = substitute(str(task["withParam"]), scope, f"{where}.withParam")
            try:
                items = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"{where}.withParam: not a JSON list: {text[:80]!r}") from exc
            if not isinstance(items, list):
                raise UsageError(f"{where}.withParam: not a JSON list: {text[:80]!r}")
        if items is None:
            attempt = self._run_one(task, scope, f"{prefix}{name}", depth)
            return [attempt], attempt.outputs
        if not items:
            node = self._node(f"{prefix}{name}", name, str(task.get("template")))
            self._set(node, phase="Skipped", message="Skipped, empty params")
            return [], {}
        results: list[Attempt | None] = [None] * len(items)

        def one(index: int, item: Any) -> None:
            local = dict(scope)
            local["item"] = parameter_text(item)
            if isinstance(item, dict):
                for key, value in item.items():
                    local[f"item.{key}"] = parameter_text(value)
            label = parameter_text(item)
            node_id = f"{prefix}{name}({index}:{label})"
            try:
                results[index] = self._run_one(task, local, node_id, depth)
            except Exception as exc:  # noqa: BLE001 - becomes the item's Error
                results[index] = self._task_error("", {**task, "name": node_id}, exc)

        # A bounded pool: a fan-out of thousands of items never starts thousands of threads.
        with ThreadPoolExecutor(
            max_workers=min(self.limits.max_workers, len(items)),
            thread_name_prefix="cnai-item",
        ) as pool:
            for index, item in enumerate(items):
                pool.submit(one, index, item)
        done = [r if r is not None else Attempt("Error", "no result") for r in results]
        names = {key for r in done for key in (r.outputs.get("parameters") or {})}
        aggregated: dict[str, Any] = {
            "parameters": {
                key: json.dumps([(r.outputs.get("parameters") or {}).get(key) for r in done])
                for key in names
            }
        }
        if any("result" in r.outputs for r in done):
            aggregated["result"] = json.dumps([r.outputs.get("result") for r in done])
        return done, aggregated

    def _run_one(
        self, task: dict[str, Any], scope: dict[str, str], node_id: str, depth: int
    ) -> Attempt:
        when = task.get("when")
        if when:
            text = substitute(str(when), scope, f"task {node_id}.when")
            if not evaluate_when(text, f"task {node_id}.when"):
                node = self._node(node_id, task["name"], str(task.get("template")))
                attempt = Attempt("Skipped", f"when '{text}' evaluated false")
                self._set(node, phase="Skipped", message=attempt.message)
                return attempt
        arguments = {
            str(p["name"]): substitute(
                parameter_text(p.get("value", "")), scope, f"task {node_id}.arguments"
            )
            for p in (task.get("arguments") or {}).get("parameters") or []
        }
        return self._execute(str(task["template"]), arguments, node_id, task["name"], depth + 1)

    # ------------------------------------------------------------ leaves

    def _run_leaf(
        self, node: dict[str, Any], template: dict[str, Any], inputs: dict[str, str]
    ) -> Attempt:
        scope = self._template_scope(template, inputs)
        where = f"task {node['id']}"
        memo = template.get("memoize")
        key = cache = ""
        if memo:
            try:
                key = substitute(str(memo["key"]), scope, f"{where}.memoize.key")
                check_key(key, f"{where}.memoize.key")
                cache = str(memo["cache"]["configMap"]["name"])
                max_age = parse_go_duration(str(memo.get("maxAge", "0")), f"{where}.memoize.maxAge")
                hit = self.memo.load(cache, key, max_age)
            except UsageError as exc:
                return Attempt("Error", str(exc))
            if hit is not None:
                self._set(node, memoized=True, memo_key=key)
                return Attempt("Succeeded", "", hit)
            self._set(node, memo_key=key)
        try:
            with self._mutexes(template.get("synchronization"), scope, where):
                attempt = self._with_retries(node, template, scope)
        except UsageError as exc:
            return Attempt("Error", str(exc))
        if attempt.phase == "Succeeded" and memo:
            self.memo.save(cache, key, node["id"], attempt.outputs)
        return attempt

    def _with_retries(
        self, node: dict[str, Any], template: dict[str, Any], scope: dict[str, str]
    ) -> Attempt:
        where = f"task {node['id']}"
        strategy = template.get("retryStrategy")
        limit: int | None = 0
        policy = "OnFailure"
        expression = ""
        backoff: dict[str, Any] = {}
        if strategy is not None:
            raw_limit = strategy.get("limit")
            limit = (
                None
                if raw_limit is None
                else int(_number(substitute(str(raw_limit), scope, where), f"{where}.limit"))
            )
            expression = str(strategy.get("expression") or "")
            # Argo: with an expression and no policy, the policy is Always.
            policy = str(strategy.get("retryPolicy") or ("Always" if expression else "OnFailure"))
            backoff = dict(strategy.get("backoff") or {})
        first = time.time()
        attempt_no = 0
        folder = self.folder / "tasks" / _safe(node["id"])
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "main.log"
        while True:
            attempt_no += 1
            self._set(node, attempts=attempt_no)
            if attempt_no > 1:
                with open(log, "a") as handle:
                    handle.write(f"\n--- attempt {attempt_no} ---\n")
            began = time.time()
            attempt = self._attempt(node, template, scope, folder, log)
            if attempt.phase == "Succeeded" or self.cancelled.is_set():
                return attempt
            retryable = (
                policy == "Always"
                or (policy == "OnFailure" and attempt.phase == "Failed")
                or (policy == "OnError" and attempt.phase == "Error")
            )
            if not retryable or (limit is not None and attempt_no > limit):
                if attempt_no > 1:
                    attempt.message = f"{attempt.message} (after {attempt_no} attempts)"
                return attempt
            if expression:
                variables = retry_scope(
                    attempt_no - 1,
                    attempt.exit_code,
                    attempt.phase,
                    time.time() - began,
                    attempt.message,
                )
                if not should_retry(expression, variables, f"{where}.retryStrategy.expression"):
                    note = "not retried: retryStrategy.expression evaluated to false"
                    if attempt_no > 1:
                        note += f", after {attempt_no} attempts"
                    attempt.message = f"{attempt.message} ({note})"
                    return attempt
            delay = 0.0
            if backoff.get("duration"):
                delay = parse_duration(str(backoff["duration"]), f"{where}.backoff.duration")
                factor = _number(
                    substitute(str(backoff.get("factor", 1)), scope, where), f"{where}.factor"
                )
                delay *= factor ** (attempt_no - 1)
                if backoff.get("cap"):
                    delay = min(delay, parse_duration(str(backoff["cap"]), f"{where}.backoff.cap"))
            if backoff.get("maxDuration"):
                budget = parse_duration(str(backoff["maxDuration"]), f"{where}.maxDuration")
                if time.time() + delay - first > budget:
                    attempt.message = f"{attempt.message} (retry maxDuration {budget:g}s reached)"
                    return attempt
            self._set(node, message=f"retrying in {delay:g}s after: {attempt.message}")
            if self.cancelled.wait(delay):
                return attempt

    def _attempt(
        self,
        node: dict[str, Any],
        template: dict[str, Any],
        scope: dict[str, str],
        folder: Path,
        log: Path,
    ) -> Attempt:
        deadline = self.deadline
        if template.get("activeDeadlineSeconds"):
            where = f"task {node['id']}.activeDeadlineSeconds"
            text = substitute(str(template["activeDeadlineSeconds"]), scope, where)
            seconds = _number(text, where)
            deadline = min(d for d in (deadline, time.time() + seconds) if d is not None)
        env = dict(self.options.base_env)
        process = template.get("script") or template.get("container") or {}
        if process.get("envFrom") or "resource" in template:
            env.update(self.options.settings_env)
        self._count_leaf_start()
        ctx = TaskContext(
            node_id=node["id"],
            template=template,
            scope=scope,
            sandbox=folder / "sandbox",
            log=log,
            env=env,
            deadline=deadline,
            cancelled=self.cancelled,
            ray_env=self.ray.env,
            on_start=lambda pid: self._started_process(node, pid),
            keep_fds=self._held_fds(),
        )
        with self._slot():
            if self.cancelled.is_set():
                return Attempt("Failed", self.cancel_reason or "cancelled")
            try:
                if "resource" in template:
                    return self.resource_executor.run(ctx)
                return self.process_executor.run(ctx)
            except UsageError as exc:
                return Attempt("Error", str(exc))

    def _count_leaf_start(self) -> None:
        """From the second leaf attempt on (exit handler aside), preload the later modules.

        The first task only needs the early modules; a run that goes no further (every
        later task skipped by its ``when``) never imports the rest.
        """
        with self.lock:
            if self.in_exit_handler:
                return
            self.leaf_starts += 1
            second = self.leaf_starts == 2
        if second and self.zygote is not None:
            self.zygote.load_later()

    def _held_fds(self) -> tuple[int, ...]:
        with self.lock:
            return tuple(sorted(self.held_fds))

    def _started_process(self, node: dict[str, Any], pid: int) -> None:
        import psutil

        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            created = None
        self._set(node, pid=pid, pid_started=created)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if self.slots is None:
            yield
            return
        with self.slots:
            yield

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.time() > self.deadline:
            self._cancel("Step exceeded its deadline (workflow activeDeadlineSeconds)")

    @contextmanager
    def _mutexes(
        self, sync: dict[str, Any] | None, scope: dict[str, str], where: str
    ) -> Iterator[None]:
        names = [
            substitute(str(m["name"]), scope, f"{where}.synchronization")
            for m in (sync or {}).get("mutexes") or []
        ]
        with contextlib.ExitStack() as stack:
            for name in sorted(set(names)):
                stack.enter_context(self._mutex(name))
            yield

    @contextmanager
    def _mutex(self, name: str) -> Iterator[None]:
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        path = self.locks_dir / f"{_safe(name)}.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another run"
                self.view.info(f"waiting for mutex {name!r} held by {holder}")
                self.record["message"] = f"Waiting for mutex {name} (held by {holder})"
                self._save()
                next_reap = 0.0
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if self.options.reap_holder is not None and time.time() >= next_reap:
                            # A holder whose engine died keeps the mutex through its leftover
                            # task processes: end them rather than run beside them.
                            self.options.reap_holder(holder)
                            next_reap = time.time() + 1.0
                        self._check_deadline()
                        if self.cancelled.wait(0.2):
                            raise CnaiError(f"gave up waiting for mutex {name}") from None
                self.record["message"] = ""
            handle.seek(0)
            handle.truncate()
            handle.write(self.record["run_id"])
            handle.flush()
            with self.lock:
                self.held_fds.add(handle.fileno())
            try:
                yield
            finally:
                with self.lock:
                    self.held_fds.discard(handle.fileno())
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_group(template: dict[str, Any]) -> bool:
    """Whether ``template`` runs other templates (a DAG or steps) rather than a process."""
    return "dag" in template or "steps" in template


def _group_phase(phases: list[str]) -> str:
    """One task's phase, a fanned-out task group's being Failed/Error when a child's is."""
    bad = [p for p in phases if p in FAILED]
    if bad:
        return bad[0]
    return phases[0] if len(phases) == 1 else "Succeeded"


def _dag_phase(
    targets: list[str], deps: dict[str, list[str]], phases: dict[str, list[str]], fail_fast: bool
) -> str:
    """A DAG's phase from its target tasks, as ``assessDAGPhase`` (dag.go:140-245) decides.

    Each task's branch phase is its own once it completed; an Omitted task inherits the
    branch phase of its dependencies, Failed/Error preferred (dag.go:148-152, 193-205).
    A target with no phase yet keeps the DAG Running; a failed one makes it Failed,
    at once with ``fail_fast`` (dag.go:217-244).
    """
    branch: dict[str, str] = {}

    def phase_of(name: str) -> str:
        if name in branch:
            return branch[name]
        own = _group_phase(phases[name]) if name in phases else ""
        if own and own != "Omitted":
            branch[name] = own
            return own
        inherited = [phase_of(d) for d in deps.get(name, [])] if own == "Omitted" else []
        bad = [p for p in inherited if p in FAILED]
        result = bad[0] if bad else ("Succeeded" if own == "Omitted" else "")
        branch[name] = result
        return result

    result = "Succeeded"
    for name in targets:
        phase = phase_of(name)
        if phase == "":
            result = "Running"
            if not fail_fast:
                break
        elif phase in FAILED:
            result = phase
            if fail_fast:
                break
    return result


def _sequence(spec: Any, scope: dict[str, str], where: str) -> list[str]:
    """The items of ``withSequence`` (count or end, start, printf format), as Argo expands it
    (``expandSequence``, operator.go:4170-4219): ``end`` wins over ``count``, inclusive,
    counting down when end < start."""
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: must be a mapping")

    def number(key: str, default: int | None) -> int | None:
        if key not in spec:
            return default
        text = substitute(str(spec[key]), scope, f"{where}.{key}")
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{where}.{key}: {text!r} is not an integer") from None

    start = number("start", 0)
    count = number("count", None)
    end = number("end", None)
    assert start is not None
    if end is None and count is not None:
        if count == 0:
            return []
        end = start + count - 1
    if end is None:
        raise UsageError(f"{where}: one of count and end is required")
    step = 1 if end >= start else -1
    fmt = str(spec.get("format") or "%d")
    try:
        return [fmt % value for value in range(start, end + step, step)]
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}.format: {fmt!r} cannot format an integer ({exc})") from None


def _safe(name: str) -> str:
    """A node or mutex name as one safe file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:200]


def _number(text: str, where: str) -> float:
    """A substituted numeric field as a number; UsageError naming ``where`` otherwise."""
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{where}: {text!r} is not a number") from None


def new_uid() -> str:
    """A workflow uid (Kubernetes objects carry a UUID)."""
    return str(uuid.uuid4())
