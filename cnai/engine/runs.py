"""Starting, retrying and resubmitting local runs (what ``cnai run``/``cnai runs`` call).

- start: instantiate a WorkflowTemplate (or Workflow) with parameters, record it
  under ``<home>/runs/<run-id>/`` and execute it;
- retry: re-run the failed (or interrupted) nodes of a Failed/Error run in place,
  keeping its Succeeded nodes and their outputs, as ``argo retry`` does;
- resubmit: a new run from the same Workflow spec; with ``memoized`` the
  Succeeded nodes of the old run whose inputs are unchanged are reused, as
  ``argo resubmit --memoized`` does.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from cnai.config import Settings
from cnai.engine.engine import Engine, EngineOptions, new_uid
from cnai.engine.limits import limits_for
from cnai.engine.memo import MemoCache
from cnai.engine.spec import ensure_supported, instantiate, load_document
from cnai.engine.store import RunStore, engine_alive, generate_run_id
from cnai.engine.view import RunView
from cnai.engine.zygote import Zygote, task_base_env
from cnai.errors import CnaiError, UsageError

WORKFLOW_FILE = "workflow.yaml"
RUNNER_MODULE = "hera.workflows._runner.util"


def store_for(settings: Settings) -> RunStore:
    """The run store of the settings' home."""
    return RunStore(settings.runs_dir)


def memo_for(settings: Settings) -> MemoCache:
    """The memoization cache of the settings' home."""
    return MemoCache(settings.runs_dir / ".memo")


def parse_parameters(pairs: Sequence[str] | None) -> dict[str, str]:
    """``-p key=value`` pairs as a mapping; UsageError for a pair without ``=``."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-p {pair!r}: expected key=value")
        params[key.strip()] = value
    return params


def runner_modules(doc: dict[str, Any]) -> list[str]:
    """Modules the Hera runner templates of ``doc`` import (``-e module:function``)."""
    found: list[str] = []
    for template in (doc.get("spec") or {}).get("templates") or []:
        args = [str(a) for a in (template.get("script") or {}).get("args") or []]
        for flag, value in itertools.pairwise(args):
            if flag in ("-e", "--entrypoint") and ":" in value:
                module = value.split(":", 1)[0]
                if module not in found:
                    found.append(module)
    return found


def forks_warm(doc: dict[str, Any]) -> bool:
    """Whether any template of ``doc`` runs ``python -m ...`` (what the zygote can fork)."""
    from cnai.engine.executors import PYTHON_NAMES

    for template in (doc.get("spec") or {}).get("templates") or []:
        process = template.get("script") or template.get("container") or {}
        command = [str(c) for c in process.get("command") or []]
        args = [str(a) for a in process.get("args") or []]
        if len(command) == 1 and command[0] in PYTHON_NAMES and args[:1] == ["-m"]:
            return True
    return False


def _options(
    settings: Settings,
    doc: dict[str, Any],
    preload: Sequence[str],
    warm: bool,
    reuse: dict[str, dict[str, Any]] | None = None,
    reuse_as_memoized: bool = False,
    zygote: Zygote | None = None,
) -> EngineOptions:
    base = task_base_env()
    settings_env = {k: v for k, v in settings.env().items() if k != "RAY_ADDRESS"}
    runners = runner_modules(doc)
    modules = list(dict.fromkeys([*([RUNNER_MODULE, *runners] if runners else []), *preload]))
    # No zygote when no task could fork from it: it would only compete for the CPU.
    warm = warm and (zygote is not None or forks_warm(doc))
    return EngineOptions(
        base_env=base,
        settings_env=settings_env,
        ray_address=settings.ray_address,
        warm=warm,
        preload=modules,
        zygote=zygote if warm else None,
        reuse=reuse or {},
        reuse_as_memoized=reuse_as_memoized,
        limits=limits_for(settings),
        reap_holder=lambda run_id: reap_if_stale(settings, run_id),
    )


def _engine_identity() -> dict[str, Any]:
    import psutil

    return {"engine_pid": os.getpid(), "engine_started": psutil.Process().create_time()}


def _execute(
    settings: Settings,
    workflow: dict[str, Any],
    record: dict[str, Any],
    view: RunView,
    options: EngineOptions,
) -> dict[str, Any]:
    store = store_for(settings)
    try:
        engine = Engine(
            workflow,
            store,
            record,
            memo_for(settings),
            settings.runs_dir / ".locks",
            view,
            options,
        )
    except Exception:
        if record.get("phase") == "Pending" and not record.get("retries"):
            # Never started: leave no record behind.
            shutil.rmtree(store.path(record["run_id"]), ignore_errors=True)
        raise
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, terminate)
    try:
        return engine.run()
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


def start_run(
    settings: Settings,
    doc: dict[str, Any],
    parameters: dict[str, str],
    *,
    run_id: str | None = None,
    view: RunView | None = None,
    preload: Sequence[str] = (),
    warm: bool = True,
    source: str = "workflow",
    reuse: dict[str, dict[str, Any]] | None = None,
    reuse_as_memoized: bool = False,
    resubmitted_from: str | None = None,
    zygote: Zygote | None = None,
) -> dict[str, Any]:
    """Instantiate ``doc`` with ``parameters`` and run it; returns the run record.

    Everything that can be checked before a run starts (supported fields, typed
    values, parameters, the run id, the ``engine`` limits) is checked before anything
    is written; a refused run leaves no record. ``zygote``: one started ahead by the
    caller (see :func:`cnai.engine.zygote.start_zygote`); the run uses and closes it.
    """
    from cnai.argo.platform import platform_for
    from cnai.engine.spec import env_from_local

    ensure_supported(doc, source, env_from_local(platform_for(settings)))
    options = _options(settings, doc, preload, warm, reuse, reuse_as_memoized, zygote)
    store = store_for(settings)
    name = (doc.get("metadata") or {}).get("name") or "workflow"
    prefix = name if doc.get("kind") == "WorkflowTemplate" else name.rsplit("-", 1)[0]
    if run_id is None:
        run_id = generate_run_id(f"{prefix}-")
    store.path(run_id)  # validates the id before anything is written
    uid = new_uid()
    workflow = instantiate(doc, parameters, run_id, uid)
    folder = store.create(run_id)
    record: dict[str, Any] = {
        "run_id": run_id,
        "workflow_template": (workflow["metadata"]["labels"] or {}).get(
            "workflows.argoproj.io/workflow-template", name
        ),
        "uid": uid,
        "parameters": {
            p["name"]: p["value"]
            for p in (workflow["spec"].get("arguments") or {}).get("parameters") or []
        },
        "phase": "Pending",
        "message": "",
        "started_at": time.time(),
        "finished_at": None,
        "duration_seconds": None,
        "home": str(settings.home),
        "retries": 0,
        "resubmitted_from": resubmitted_from,
        "tasks": [],
        **_engine_identity(),
    }
    try:
        (folder / WORKFLOW_FILE).write_text(yaml.safe_dump(workflow, sort_keys=False))
        store.save(record)
    except (OSError, CnaiError):
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _execute(settings, workflow, record, view or RunView(), options)


def mark_stale(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    """A Running record whose engine is gone becomes Error (its open nodes too).

    Task processes the dead engine left running are killed first.
    """
    if record.get("phase") in ("Running", "Pending") and not engine_alive(record):
        now = time.time()
        for node in record.get("tasks") or []:
            if node.get("phase") in ("Running", "Pending"):
                _kill_leftover(node)
                node.update(
                    phase="Error",
                    message="the engine running this task stopped (killed?)",
                    finished_at=now,
                    duration_seconds=_elapsed(node.get("started_at"), now),
                )
        finished = record.get("finished_at") or now
        record.update(
            phase="Error",
            message="the engine running this workflow stopped before it finished",
            finished_at=finished,
            duration_seconds=_elapsed(record.get("started_at"), finished),
        )
        store_for(settings).save(record)
    return record


def _elapsed(started: Any, finished: float) -> float | None:
    try:
        return round(finished - float(started), 3)
    except (TypeError, ValueError):
        return None


def reap_if_stale(settings: Settings, run_id: str) -> None:
    """End the leftover tasks of run ``run_id`` when its engine is gone (mutex holders)."""
    with contextlib.suppress(CnaiError, OSError):
        mark_stale(settings, store_for(settings).load(run_id))


def _kill_leftover(node: dict[str, Any]) -> None:
    """Kill a task process group that outlived its engine (when it is still the same one)."""
    pid, started = node.get("pid"), node.get("pid_started")
    if not pid:
        return
    import psutil

    with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
        if abs(psutil.Process(int(pid)).create_time() - float(started or 0)) < 1.0:
            os.killpg(int(pid), signal.SIGKILL)


def retry_run(
    settings: Settings, run_id: str, *, view: RunView | None = None, preload: Sequence[str] = ()
) -> dict[str, Any]:
    """Re-run the failed nodes of a Failed/Error run in place."""
    store = store_for(settings)
    record = mark_stale(settings, store.load(run_id))
    if record["phase"] in ("Running", "Pending"):
        raise UsageError(f"run {run_id}: is still running (engine pid {record.get('engine_pid')})")
    if record["phase"] == "Succeeded":
        raise UsageError(f"run {run_id}: succeeded; only Failed or Error runs can be retried")
    workflow = _recorded_workflow(settings, run_id)
    reuse = {
        n["id"]: n
        for n in record.get("tasks") or []
        if n.get("phase") == "Succeeded" and n["id"] != "onExit"
    }
    record.update(
        phase="Pending",
        message="",
        retries=int(record.get("retries") or 0) + 1,
        tasks=[],
        **_engine_identity(),
    )
    store.save(record)
    options = _options(settings, workflow, preload, True, reuse, False)
    return _execute(settings, workflow, record, view or RunView(), options)


def resubmit_run(
    settings: Settings,
    run_id: str,
    parameters: dict[str, str],
    *,
    memoized: bool = False,
    new_run_id: str | None = None,
    view: RunView | None = None,
    preload: Sequence[str] = (),
) -> dict[str, Any]:
    """A new run from the Workflow of run ``run_id`` (optionally reusing its successes)."""
    store = store_for(settings)
    record = mark_stale(settings, store.load(run_id))
    if record["phase"] in ("Running", "Pending"):
        raise UsageError(f"run {run_id}: is still running; wait for it or retry it later")
    workflow = _recorded_workflow(settings, run_id)
    params = {**record.get("parameters", {}), **parameters}
    reuse = (
        {
            n["id"]: n
            for n in record.get("tasks") or []
            if n.get("phase") == "Succeeded" and n["id"] != "onExit"
        }
        if memoized
        else {}
    )
    return start_run(
        settings,
        workflow,
        params,
        run_id=new_run_id,
        view=view,
        preload=preload,
        source=f"run {run_id}",
        reuse=reuse,
        reuse_as_memoized=memoized,
        resubmitted_from=run_id,
    )


def _recorded_workflow(settings: Settings, run_id: str) -> dict[str, Any]:
    """The Workflow a run executed (bounded like any workflow document)."""
    path = store_for(settings).path(run_id) / WORKFLOW_FILE
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CnaiError(f"run {run_id}: cannot read {path}: {exc}") from None
    return load_document(text, str(path), limits_for(settings))


def task_log(settings: Settings, run_id: str, task: str | None) -> str:
    """The log text of one task (or of every task, in order) of a run."""
    store = store_for(settings)
    record = store.load(run_id)
    nodes = record.get("tasks") or []
    if task is not None:
        nodes = [n for n in nodes if n["id"] == task or n.get("task") == task]
        if not nodes:
            known = ", ".join(n["id"] for n in record.get("tasks") or [])
            raise UsageError(f"task {task!r}: not in run {run_id} (tasks: {known})")
    parts = []
    for node in nodes:
        path = store.path(run_id) / node["log"]
        text = path.read_text(errors="replace") if path.exists() else ""
        if task is None:
            parts.append(f"==> {node['id']} ({node['phase']}) <==\n{text}")
        else:
            parts.append(text)
    return "\n".join(parts)


def folder_of(settings: Settings, run_id: str) -> Path:
    """The folder of a run (validated id)."""
    return store_for(settings).path(run_id)
