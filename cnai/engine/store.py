"""Run records under ``<home>/runs/<run-id>/``.

Each run folder holds ``run.json`` (parameters, phase, per-task phase, timing,
memoized flag, inputs and outputs), ``workflow.yaml`` (the exact Workflow that was
executed) and ``tasks/<node>/`` with each task's ``main.log`` and sandbox.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from pathlib import Path
from typing import Any

from cnai.errors import UsageError

RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
FINISHED = ("Succeeded", "Failed", "Error")


def check_run_id(run_id: str) -> None:
    """Raise UsageError unless ``run_id`` is a valid Kubernetes object name (<= 63)."""
    if not RUN_ID.match(run_id):
        raise UsageError(
            f"--run-id {run_id!r}: must be lowercase letters, digits, '-' or '.', "
            "start and end with a letter or digit, at most 63 characters"
        )


def generate_run_id(prefix: str) -> str:
    """Argo's generateName rule: the prefix plus five random lowercase characters."""
    alphabet = string.ascii_lowercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(5))


class RunStore:
    """Reads and writes run records of one home."""

    def __init__(self, runs_dir: Path) -> None:
        self.root = runs_dir

    def path(self, run_id: str) -> Path:
        """The folder of run ``run_id``."""
        check_run_id(run_id)
        return self.root / run_id

    def create(self, run_id: str) -> Path:
        """Make a new run folder; UsageError when the id is taken."""
        folder = self.path(run_id)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError as exc:
            raise UsageError(f"--run-id {run_id}: a run with this id already exists") from exc
        return folder

    def save(self, record: dict[str, Any]) -> None:
        """Atomically write ``run.json`` of ``record['run_id']``."""
        folder = self.path(record["run_id"])
        tmp = folder / f"run.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record, indent=1, default=str))
        os.replace(tmp, folder / "run.json")

    def load(self, run_id: str) -> dict[str, Any]:
        """The record of run ``run_id``; UsageError when there is none."""
        path = self.path(run_id) / "run.json"
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise UsageError(f"run {run_id}: no such run under {self.root}") from exc

    def list(self) -> list[dict[str, Any]]:
        """Every run record, newest first."""
        records = []
        for path in self.root.glob("*/run.json") if self.root.is_dir() else []:
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(records, key=lambda r: r.get("started_at") or 0, reverse=True)


def engine_alive(record: dict[str, Any]) -> bool:
    """True when the engine process that owns a Running record is still alive."""
    pid, started = record.get("engine_pid"), record.get("engine_started")
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(int(pid))
        return abs(proc.create_time() - float(started or 0)) < 1.0
    except (psutil.Error, ValueError):
        return False
