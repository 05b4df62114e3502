"""Executes one Workflow (the instantiated, compiled YAML) on this machine.

Semantics follow the Argo controller for the features the spec checker accepts:
DAG order with independent tasks in parallel (``parallelism`` bounds concurrent
leaf tasks), ``depends``/``dependencies``, fail-fast, ``when``, ``withItems`` and
``withParam`` fan-out with aggregated outputs, input/output parameters,
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnai.argo.semantics.durations import parse_backoff_duration as parse_duration
from cnai.argo.semantics.durations import parse_go_duration
from cnai.argo.semantics.graph import find_cycle
from cnai.engine.executors import Attempt, ProcessExecutor, ResourceExecutor, TaskContext
from cnai.engine.expr import (
    depends_tasks,
    evaluate_depends,
    evaluate_when,
    substitute,
)
from cnai.engine.memo import MemoCache, check_key
from cnai.engine.raylocal import LocalRay
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
    """Modules the zygote imports ahead of the tasks."""
    reuse: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Node records from an earlier attempt of this run (retry) or run (resubmit)."""
    reuse_as_memoized: bool = False
    """Mark reused nodes as memoized (``resubmit --memoized``)."""
    namespace: str = DEFAULT_NAMESPACE


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
        self.cancelled = threading.Event()
        self.cancel_reason = ""
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
        with self.lock:
            self.record["tasks"] = sorted(
                self.nodes.values(), key=lambda n: (n.get("started_at") or 1e18, n["id"])
            )
            self.store.save(self.record)

    def _node(self, node_id: str, task: str, template: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
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
            if self.options.warm:
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
        return self.record

    def _finish(self, phase: str, message: str, started: float) -> None:
        self.cancelled.set()
        # Task threads kill their process groups as soon as they see the cancellation.
        wait_until = time.time() + 10
        while time.time() < wait_until and any(
            n["phase"] == "Running" and "dag" not in self.templates.get(n["template"], {})
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
        if "dag" not in template:
            attempt = self._execute(name, {}, name, name)
            return attempt.phase, attempt.message
        try:
            inputs = self._inputs(template, {}, f"template {name}")
        except UsageError as exc:
            return "Error", str(exc)
        phase, message = self._run_dag(template, inputs, prefix="")
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
        self.cancelled.clear()
        self.cancel_reason = ""
        attempt = self._execute(str(name), {}, "onExit", "onExit")
        if attempt.phase in FAILED and phase == "Succeeded":
            return "Failed", f"exit handler failed: {attempt.message}"
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
        self, template_name: str, arguments: dict[str, str], node_id: str, task: str
    ) -> Attempt:
        """Run one template invocation as node ``node_id``."""
        template = self.templates.get(template_name)
        node = self._node(node_id, task, template_name)
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
            "dag" not in template
            and previous
            and previous.get("phase") == "Succeeded"
            and previous.get("inputs") == inputs
        ):
            return self._reuse(node, previous)
        self._set(node, phase="Running", inputs=inputs)
        if "dag" in template:
            phase, message = self._run_dag(template, inputs, prefix=f"{node_id}.")
            attempt = Attempt(phase, message)
        else:
            attempt = self._run_leaf(node, template, inputs)
        self._set(node, phase=attempt.phase, message=attempt.message, outputs=attempt.outputs)
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
        self, template: dict[str, Any], inputs: dict[str, str], prefix: str
    ) -> tuple[str, str]:
        tasks = {t["name"]: t for t in template["dag"]["tasks"]}
        where = f"template {template['name']}"
        deps: dict[str, list[str]] = {}
        handled: set[str] = set()
        for name, task in tasks.items():
            if "depends" in task:
                deps[name] = depends_tasks(str(task["depends"]), f"{where} task {name}")
                handled.update(
                    re.findall(
                        r"([A-Za-z0-9][-A-Za-z0-9_]*)\.(?:Failed|Errored|AllFailed)",
                        str(task["depends"]),
                    )
                )
            else:
                deps[name] = list(task.get("dependencies") or [])
            missing = [d for d in deps[name] if d not in tasks]
            if missing:
                return "Error", f"{where}: task {name} depends on unknown task {missing[0]!r}"
        cycle = find_cycle(deps)
        if cycle:
            return "Error", f"{where}: dependency cycle {' -> '.join(cycle)}"

        scope = self._template_scope(template, inputs)
        phases: dict[str, list[str]] = {}
        state = {name: "waiting" for name in tasks}
        cond = threading.Condition(self.lock)
        failure: list[str] = []
        threads: list[threading.Thread] = []

        def finish(name: str, result: list[Attempt], outputs: dict[str, Any]) -> None:
            with cond:
                phases[name] = [a.phase for a in result] or ["Skipped"]
                self._publish(scope, name, outputs, phases[name])
                bad = [a for a in result if a.phase in FAILED]
                if bad and name not in handled:
                    failure.append(f"task {prefix}{name}: {bad[0].message}")
                state[name] = "done"
                cond.notify_all()

        def worker(name: str, local_scope: dict[str, str]) -> None:
            try:
                result, outputs = self._run_task(tasks[name], local_scope, prefix)
            except Exception as exc:  # noqa: BLE001 - becomes the task's Error
                node = self._node(f"{prefix}{name}", name, str(tasks[name].get("template")))
                self._set(node, phase="Error", message=f"{type(exc).__name__}: {exc}")
                result, outputs = [Attempt("Error", str(exc))], {}
            finish(name, result, outputs)

        with cond:
            while True:
                self._check_deadline()
                for name, task in tasks.items():
                    if state[name] != "waiting" or any(state[d] != "done" for d in deps[name]):
                        continue
                    expression = str(task.get("depends") or " && ".join(deps[name]))
                    run_it = not failure and not self.cancelled.is_set()
                    reason = "not run: " + (
                        self.cancel_reason or "an earlier task failed (failFast)"
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
                    thread = threading.Thread(target=worker, args=(name, dict(scope)), daemon=True)
                    threads.append(thread)
                    thread.start()
                if all(s == "done" for s in state.values()):
                    break
                cond.wait(0.2)
        for thread in threads:
            thread.join()
        if failure:
            return "Failed", failure[0]
        return "Succeeded", ""

    def _publish(
        self, scope: dict[str, str], name: str, outputs: dict[str, Any], phases: list[str]
    ) -> None:
        scope[f"tasks.{name}.status"] = phases[0] if len(phases) == 1 else json.dumps(phases)
        for key, value in (outputs.get("parameters") or {}).items():
            scope[f"tasks.{name}.outputs.parameters.{key}"] = value
        if "result" in outputs:
            scope[f"tasks.{name}.outputs.result"] = outputs["result"]

    def _run_task(
        self, task: dict[str, Any], scope: dict[str, str], prefix: str
    ) -> tuple[list[Attempt], dict[str, Any]]:
        """Run one DAG task (expanded over its items); returns attempts and outputs."""
        name = task["name"]
        where = f"task {prefix}{name}"
        items: list[Any] | None = None
        if "withItems" in task:
            items = list(task["withItems"])
        elif "withParam" in task:
            text = substitute(str(task["withParam"]), scope, f"{where}.withParam")
            try:
                items = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"{where}.withParam: not a JSON list: {text[:80]!r}") from exc
            if not isinstance(items, list):
                raise UsageError(f"{where}.withParam: not a JSON list: {text[:80]!r}")
        if items is None:
            attempt = self._run_one(task, scope, f"{prefix}{name}")
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
            results[index] = self._run_one(task, local, f"{prefix}{name}({index}:{label})")

        threads = [
            threading.Thread(target=one, args=(i, item), daemon=True)
            for i, item in enumerate(items)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
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

    def _run_one(self, task: dict[str, Any], scope: dict[str, str], node_id: str) -> Attempt:
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
        return self._execute(str(task["template"]), arguments, node_id, task["name"])

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
        with self._mutexes(template.get("synchronization"), scope, where):
            attempt = self._with_retries(node, template, scope)
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
        backoff: dict[str, Any] = {}
        if strategy is not None:
            raw_limit = strategy.get("limit")
            limit = None if raw_limit is None else int(substitute(str(raw_limit), scope, where))
            policy = str(strategy.get("retryPolicy") or "OnFailure")
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
            delay = 0.0
            if backoff.get("duration"):
                delay = parse_duration(str(backoff["duration"]), f"{where}.backoff.duration")
                factor = float(substitute(str(backoff.get("factor", 1)), scope, where))
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
            seconds = float(substitute(str(template["activeDeadlineSeconds"]), scope, "deadline"))
            deadline = min(d for d in (deadline, time.time() + seconds) if d is not None)
        env = dict(self.options.base_env)
        process = template.get("script") or template.get("container") or {}
        if process.get("envFrom") or "resource" in template:
            env.update(self.options.settings_env)
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
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        self._check_deadline()
                        if self.cancelled.wait(0.2):
                            raise CnaiError(f"gave up waiting for mutex {name}") from None
                self.record["message"] = ""
            handle.seek(0)
            handle.truncate()
            handle.write(self.record["run_id"])
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _safe(name: str) -> str:
    """A node or mutex name as one safe file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:200]


def new_uid() -> str:
    """A workflow uid (Kubernetes objects carry a UUID)."""
    return str(uuid.uuid4())
