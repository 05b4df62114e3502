"""What ``cnai run`` needs around the engine for the retrain pipeline.

- the compiled WorkflowTemplate, cached per home by a hash of the pipeline's
  sources and the Hera version (compiling imports Hera: ~2 s saved per run);
- git defaults for ``git_sha``/``git_branch`` when the caller gives none (a dirty
  tree gets a ``-dirty-<hash>`` suffix so uncommitted code changes count as changes);
- the ``--json`` summary of a run record.
"""

from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from cnai import __version__
from cnai.config import Settings

PIPELINE_DIR = Path(__file__).resolve().parent
SOURCES = ("retrain.py", "tasks.py")


def pipeline_options(settings: Settings) -> tuple[str | None, str | None]:
    """Image and tag from the config file's ``pipeline`` section (None: defaults)."""
    section = settings.sections.get("pipeline") or {}
    image, tag = section.get("image"), section.get("tag")
    return (str(image) if image else None, str(tag) if tag else None)


def compiled_template(settings: Settings) -> str:
    """The compiled ``cnai-retrain`` YAML, from the home's cache when the sources match."""
    image, tag = pipeline_options(settings)
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((PIPELINE_DIR / name).read_bytes())
    digest.update(f"{metadata.version('hera')}|{__version__}|{image}|{tag}".encode())
    cache = settings.runs_dir / ".compiled" / f"{digest.hexdigest()[:24]}.yaml"
    if cache.exists():
        return cache.read_text()
    from pipelines.retrain import TEMPLATE_NAME, compile_manifests

    text = compile_manifests(image, tag)[f"{TEMPLATE_NAME}.yaml"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(cache)
    return text


def _git(*args: str, cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_defaults(cwd: Path, home: Path) -> dict[str, str]:
    """``git_sha`` and ``git_branch`` of the checkout at ``cwd`` (empty outside git)."""
    sha = _git("rev-parse", "HEAD", cwd=cwd)
    if not sha:
        return {}
    branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd) or ""
    status = _git("status", "--porcelain", "--untracked-files=all", cwd=cwd) or ""
    try:
        home_rel = str(home.resolve().relative_to(cwd.resolve()))
    except ValueError:
        home_rel = None
    changed = [
        line
        for line in status.splitlines()
        if not (home_rel and line[3:].startswith(home_rel.rstrip("/") + "/"))
    ]
    if changed:
        diff = _git("diff", "HEAD", "--binary", cwd=cwd) or ""
        untracked = sorted(line[3:] for line in changed if line.startswith("??"))
        digest = hashlib.sha256(diff.encode())
        for name in untracked:
            path = cwd / name
            digest.update(name.encode())
            if path.is_file():
                digest.update(path.read_bytes())
        sha = f"{sha}-dirty-{digest.hexdigest()[:12]}"
    return {"git_sha": sha, "git_branch": branch if branch != "HEAD" else ""}


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
        import json

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
