"""The ``cnai run --json`` summary of a run record and its human rendering.

The summary lists every task (phase, memoized, skipped, duration, outputs) and, when
the pipeline registers a model, the model: the ``register`` task's outputs
(``model_name``, ``version``, ``promoted``), else the ``model`` JSON an ``ingest`` task
recorded when it found nothing new to train on. Pipelines without those tasks get
``"model": null``.
"""

from __future__ import annotations

import json
from typing import Any


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """The ``cnai run --json`` object for a run record."""
    tasks = []
    by_task: dict[str, dict[str, Any]] = {}
    for node in record.get("tasks") or []:
        by_task[node.get("task") or node["id"]] = node
        tasks.append(
            {
                "name": node["id"],
                "phase": node["phase"],
                "memoized": bool(node.get("memoized")),
                "skipped": node["phase"] == "Skipped",
                "duration_seconds": node.get("duration_seconds"),
                "outputs": (node.get("outputs") or {}).get("parameters") or {},
            }
        )
    model: dict[str, Any] | None = None
    register = by_task.get("register")
    if register and register["phase"] == "Succeeded":
        out = (register.get("outputs") or {}).get("parameters") or {}
        model = {
            "name": out.get("model_name"),
            "version": out.get("version"),
            "promoted": out.get("promoted") == "true",
        }
    else:
        ingest = by_task.get("ingest")
        raw = ((ingest or {}).get("outputs") or {}).get("parameters", {}).get("model")
        recorded = json.loads(raw) if raw else {}
        if recorded:
            model = {
                "name": recorded.get("name"),
                "version": recorded.get("version"),
                "promoted": bool(recorded.get("promoted")),
            }
    return {
        "run_id": record["run_id"],
        "phase": record["phase"],
        "message": record.get("message", ""),
        "duration_seconds": record.get("duration_seconds"),
        "parameters": record.get("parameters", {}),
        "tasks": tasks,
        "model": model,
    }


def render(summary: dict[str, Any]) -> str:
    """Human rendering of a run summary."""
    duration = summary.get("duration_seconds")
    took = f" in {float(duration):.1f}s" if duration is not None else ""
    lines = [f"run {summary['run_id']}: {summary['phase']}{took}"]
    if summary.get("message"):
        lines.append(f"  {summary['message']}")
    for task in summary["tasks"]:
        note = "memoized" if task["memoized"] else ""
        seconds = task["duration_seconds"] or 0
        lines.append(f"  {task['name']:<16} {task['phase']:<10} {seconds:>7.1f}s {note}")
    model = summary.get("model")
    if model:
        state = "champion" if model["promoted"] else "not promoted"
        lines.append(f"model {model['name']} version {model['version']} ({state})")
    return "\n".join(lines)
