"""Run records under ``<home>/runs/<run-id>/``.

Each run folder holds ``run.json`` (parameters, phase, per-task phase, timing,
memoized flag, inputs and outputs), ``workflow.yaml`` (the exact Workflow that was
executed) and ``tasks/<node>/`` with each task's ``main.log`` and sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import string
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cnai.errors import CnaiError, UsageError

RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
FINISHED = ("Succeeded", "Failed", "Error")


def write_json_atomically(path: Path, text: str, what: str) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file, then a rename).

    CnaiError naming ``what`` and ``path`` (one line) when it cannot be written; no
    temporary file is left behind.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CnaiError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


class CorruptRecordError(CnaiError):
    """A ``run.json`` that is not a run record (truncated, hand-edited, not an object)."""


class _NodeShape(BaseModel):
    """The fields of a node record every reader relies on."""

    model_config = ConfigDict(extra="allow")
    id: str
    phase: str


class _RecordShape(BaseModel):
    """The fields of a run record every reader relies on."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    phase: str
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    parameters: dict[str, Any] = {}
    tasks: list[_NodeShape] = []


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
        """Atomically write ``run.json`` of ``record['run_id']``.

        CnaiError (one line) when it cannot be written; no temporary file is left.
        """
        path = self.path(record["run_id"]) / "run.json"
        write_json_atomically(path, json.dumps(record, indent=1, default=str), "run record")

    def load(self, run_id: str) -> dict[str, Any]:
        """The record of run ``run_id``.

        UsageError when there is none; CorruptRecordError when ``run.json`` is not a
        run record of that id.
        """
        path = self.path(run_id) / "run.json"
        try:
            text = path.read_text()
        except FileNotFoundError as exc:
            raise UsageError(f"run {run_id}: no such run under {self.root}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(
                f"run {run_id}: cannot read its record {path}: {exc}"
            ) from None
        return _parse_record(text, run_id, path)

    def scan(self) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Readable run records (newest first) and corrupt ones (run id, path, problem)."""
        records: list[dict[str, Any]] = []
        corrupt: list[dict[str, str]] = []
        for path in sorted(self.root.glob("*/run.json")) if self.root.is_dir() else []:
            run_id = path.parent.name
            try:
                records.append(self.load(run_id))
            except CnaiError as exc:
                corrupt.append({"run_id": run_id, "path": str(path), "problem": str(exc)})
        records.sort(key=lambda r: r.get("started_at") or 0, reverse=True)
        return records, corrupt

    def list(self) -> list[dict[str, Any]]:
        """Every readable run record, newest first (corrupt ones are left out; see scan)."""
        return self.scan()[0]


def _parse_record(text: str, run_id: str, path: Path) -> dict[str, Any]:
    """``text`` as the run record of ``run_id``; CorruptRecordError naming the problem."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorruptRecordError(f"run {run_id}: corrupt record {path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptRecordError(
            f"run {run_id}: corrupt record {path}: a JSON {type(data).__name__}, not an object"
        )
    try:
        _RecordShape.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise CorruptRecordError(
            f"run {run_id}: corrupt record {path}: {where}: {first['msg']}"
        ) from None
    if data["run_id"] != run_id:
        raise CorruptRecordError(
            f"run {run_id}: corrupt record {path}: it names run {data['run_id']!r}"
        )
    return dict(data)


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
