"""The gateway's persistent state: delivery log and run queue, in ``<home>/events/``.

One SQLite file (WAL) holds:

- ``deliveries``: every authenticated delivery id with its decision and run id; the
  primary key makes a replayed ``X-GitHub-Delivery`` id a no-op, across restarts;
- ``runs``: every run the gateway accepted (queued, running, succeeded, failed,
  interrupted) with its Workflow arguments, so queued runs survive a restart.

Every write commits before the gateway answers, so a 202 means the run is on disk.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    event TEXT NOT NULL,
    decision TEXT NOT NULL,
    run_id TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    delivery_id TEXT,
    branch TEXT NOT NULL,
    arguments TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    phase TEXT,
    log_path TEXT
);
"""

ACTIVE_STATUSES = ("queued", "running")


@dataclass(frozen=True)
class RunRecord:
    """One run the gateway accepted."""

    id: str
    """Run id passed to ``cnai run --run-id``."""
    delivery_id: str | None
    """The delivery that caused it."""
    branch: str
    """Queue key: runs on the same branch run one at a time."""
    arguments: dict[str, str]
    """Workflow parameters."""
    status: str
    """queued, running, succeeded, failed or interrupted."""
    created_at: float
    """When it was accepted (epoch seconds)."""
    started_at: float | None
    """When its process was started."""
    finished_at: float | None
    """When its process ended."""
    exit_code: int | None
    """The launcher's exit code."""
    phase: str | None
    """``phase`` from the engine's ``--json`` summary, when it printed one."""
    log_path: str | None
    """File holding the run's output."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


class EventStore:
    """SQLite-backed deliveries and runs; use from one thread (the gateway's event loop)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "gateway.db"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def claim_delivery(self, delivery_id: str, source: str, event: str) -> str | None:
        """Record a new delivery id; if it was seen before return its decision, else None."""
        row = self._db.execute(
            "INSERT OR IGNORE INTO deliveries (id, received_at, source, event, decision) "
            "VALUES (?, ?, ?, ?, 'pending') RETURNING id",
            (delivery_id, time.time(), source, event),
        ).fetchone()
        if row is not None:
            return None
        seen = self._db.execute(
            "SELECT decision, run_id FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
        decision, run_id = seen
        return f"{decision} (run {run_id})" if run_id else str(decision)

    def delivery_run(self, delivery_id: str) -> str | None:
        """The run id a delivery started, if any."""
        row = self._db.execute(
            "SELECT run_id FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
        return row[0] if row else None

    def decide(self, delivery_id: str, decision: str, run: RunRecord | None = None) -> None:
        """Record a delivery's decision and, atomically, the run it queued."""
        with self._transaction():
            if run is not None:
                self._db.execute(
                    "INSERT INTO runs (id, delivery_id, branch, arguments, status, created_at) "
                    "VALUES (?, ?, ?, ?, 'queued', ?)",
                    (run.id, delivery_id, run.branch, json.dumps(run.arguments), run.created_at),
                )
            self._db.execute(
                "UPDATE deliveries SET decision = ?, run_id = ? WHERE id = ?",
                (decision, run.id if run else None, delivery_id),
            )

    def mark_started(self, run_id: str, log_path: Path) -> None:
        """The run's process is starting."""
        self._db.execute(
            "UPDATE runs SET status = 'running', started_at = ?, log_path = ? WHERE id = ?",
            (time.time(), str(log_path), run_id),
        )

    def mark_finished(
        self, run_id: str, status: str, exit_code: int | None, phase: str | None
    ) -> None:
        """The run's process ended (or could not start)."""
        self._db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, phase = ? WHERE id = ?",
            (status, time.time(), exit_code, phase, run_id),
        )

    def run(self, run_id: str) -> RunRecord | None:
        """One run by id."""
        row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        found = row.fetchone()
        return _record(found) if found else None

    def runs(self, statuses: tuple[str, ...] | None = None) -> list[RunRecord]:
        """Runs in acceptance order, optionally only those with one of ``statuses``."""
        query = f"SELECT {_RUN_COLUMNS} FROM runs"
        args: tuple[str, ...] = ()
        if statuses:
            query += f" WHERE status IN ({','.join('?' for _ in statuses)})"
            args = statuses
        return [_record(r) for r in self._db.execute(query + " ORDER BY seq", args)]

    def interrupt_running(self) -> list[str]:
        """Mark runs left ``running`` by a stopped gateway as interrupted; their ids."""
        ids = [r.id for r in self.runs(("running",))]
        for run_id in ids:
            self.mark_finished(run_id, "interrupted", None, None)
        return ids

    def counts(self) -> dict[str, int]:
        """Number of runs per status."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
        return {status: count for status, count in rows}

    def _transaction(self) -> Any:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


_RUN_COLUMNS = (
    "id, delivery_id, branch, arguments, status, created_at, started_at, finished_at, "
    "exit_code, phase, log_path"
)


def _record(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    values[3] = json.loads(values[3])
    return RunRecord(*values)
