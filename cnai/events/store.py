"""The gateway's persistent state: delivery log and run queue, in ``<home>/events/``.

One SQLite file (WAL) holds:

- ``deliveries``: every authenticated delivery id with its decision and run id, keyed
  by the route (EventSource and event) and the id, so a replayed ``X-GitHub-Delivery``
  is a no-op across restarts and the GitHub and data routes never share ids;
- ``runs``: every run the gateway accepted (queued, running, succeeded, failed,
  interrupted) with its Workflow arguments, its process id while it runs and the
  reason it failed, so queued runs survive a restart and a running one can be adopted.

A delivery is recorded only together with its final decision (and its run), in one
transaction: a delivery whose handling fails is not recorded at all, so a redelivery
is handled afresh. Every write commits before the gateway answers, so a 202 means the
run is on disk.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_DELIVERIES = """
CREATE TABLE IF NOT EXISTS deliveries (
    source TEXT NOT NULL,
    event TEXT NOT NULL,
    id TEXT NOT NULL,
    received_at REAL NOT NULL,
    decision TEXT NOT NULL,
    run_id TEXT,
    PRIMARY KEY (source, event, id)
);
"""
_SCHEMA = """
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
    log_path TEXT,
    pid INTEGER,
    pid_started REAL,
    message TEXT
);
"""
_RUN_EXTRA_COLUMNS = {"pid": "INTEGER", "pid_started": "REAL", "message": "TEXT"}

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
    pid: int | None = None
    """Process id of the run (its process group) while it runs."""
    pid_started: float | None = None
    """That process's start time (epoch seconds), to tell it from a reused pid."""
    message: str | None = None
    """Why it failed or was interrupted, when the gateway knows."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Admission:
    """What recording one delivery decided."""

    outcome: str
    """``recorded`` (decision stored, run queued if given), ``duplicate`` (id seen
    before), ``coalesced`` (an identical run is already queued) or ``full`` (the
    branch's queue is at its cap; nothing stored)."""
    run_id: str | None = None
    """The run queued, the earlier delivery's run, or the identical queued run."""
    previous: str | None = None
    """The earlier decision of a duplicate delivery."""
    queued: int = 0
    """Runs queued on the branch (for ``full``)."""


class EventStore:
    """SQLite-backed deliveries and runs; use from one thread (the gateway's event loop)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "gateway.db"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def _migrate(self) -> None:
        """Create the tables; bring a database of an earlier version up to date."""
        with self._transaction():
            columns = [r[1] for r in self._db.execute("PRAGMA table_info(deliveries)")]
            if columns and columns[0] == "id":
                # Earlier versions keyed deliveries by id alone (routes shared one namespace).
                self._db.execute("ALTER TABLE deliveries RENAME TO deliveries_old")
                self._db.execute(_DELIVERIES)
                self._db.execute(
                    "INSERT OR IGNORE INTO deliveries "
                    "SELECT source, event, id, received_at, decision, run_id FROM deliveries_old"
                )
                self._db.execute("DROP TABLE deliveries_old")
            self._db.execute(_DELIVERIES)
            self._db.execute(_SCHEMA)
            present = {r[1] for r in self._db.execute("PRAGMA table_info(runs)")}
            for name, kind in _RUN_EXTRA_COLUMNS.items():
                if name not in present:
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
            # Earlier versions claimed an id before deciding; a claim left 'pending' by a
            # failure is not a decision: forget it so a redelivery is handled.
            self._db.execute("DELETE FROM deliveries WHERE decision = 'pending'")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def seen(self, source: str, event: str, delivery_id: str) -> tuple[str, str | None] | None:
        """(decision, run id) of a delivery handled before on this route, else None."""
        row = self._db.execute(
            "SELECT decision, run_id FROM deliveries WHERE source = ? AND event = ? AND id = ?",
            (source, event, delivery_id),
        ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def record(
        self,
        source: str,
        event: str,
        delivery_id: str,
        decision: str,
        run: RunRecord | None = None,
        max_queued: int | None = None,
    ) -> Admission:
        """Store a delivery with its final decision and, atomically, the run it queues.

        A run identical to one already queued on its branch (same arguments) is not
        queued again: the delivery is recorded as coalesced into that run. With
        ``max_queued``, a run that would exceed the branch's queued runs stores nothing.
        """
        with self._transaction():
            seen = self.seen(source, event, delivery_id)
            if seen is not None:
                before, run_before = seen
                previous = f"{before} (run {run_before})" if run_before else before
                return Admission("duplicate", run_before, previous)
            outcome, run_id = "recorded", None
            if run is not None:
                arguments = json.dumps(run.arguments, sort_keys=True)
                same = self._db.execute(
                    "SELECT id, arguments FROM runs WHERE branch = ? AND status = 'queued' "
                    "ORDER BY seq",
                    (run.branch,),
                ).fetchall()
                twin = next((rid for rid, a in same if _canonical(a) == arguments), None)
                if twin is not None:
                    outcome, run_id, decision = "coalesced", twin, f"coalesced (run {twin})"
                elif max_queued is not None and len(same) >= max_queued:
                    return Admission("full", None, None, len(same))
                else:
                    run_id = run.id
                    self._db.execute(
                        "INSERT INTO runs (id, delivery_id, branch, arguments, status, "
                        "created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                        (run.id, delivery_id, run.branch, json.dumps(run.arguments),
                         run.created_at),
                    )  # fmt: skip
            self._db.execute(
                "INSERT INTO deliveries (source, event, id, received_at, decision, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (source, event, delivery_id, time.time(), decision, run_id),
            )
            return Admission(outcome, run_id)

    def mark_started(
        self, run_id: str, log_path: Path, pid: int | None = None, pid_started: float | None = None
    ) -> None:
        """The run's process has started."""
        self._db.execute(
            "UPDATE runs SET status = 'running', started_at = ?, log_path = ?, pid = ?, "
            "pid_started = ? WHERE id = ?",
            (time.time(), str(log_path), pid, pid_started, run_id),
        )

    def mark_finished(
        self,
        run_id: str,
        status: str,
        exit_code: int | None,
        phase: str | None,
        message: str | None = None,
    ) -> None:
        """The run's process ended (or could not start)."""
        self._db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, phase = ?, "
            "message = ? WHERE id = ?",
            (status, time.time(), exit_code, phase, message, run_id),
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

    def starts_since(self, branch: str, since: float) -> list[float]:
        """Start times (oldest first) of the branch's runs started at or after ``since``."""
        rows = self._db.execute(
            "SELECT started_at FROM runs WHERE branch = ? AND started_at >= ? ORDER BY started_at",
            (branch, since),
        )
        return [float(r[0]) for r in rows]

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
    "exit_code, phase, log_path, pid, pid_started, message"
)


def _canonical(arguments: str) -> str:
    return json.dumps(json.loads(arguments), sort_keys=True)


def _record(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    values[3] = json.loads(values[3])
    return RunRecord(*values)
