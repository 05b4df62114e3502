"""Staged ingest data files: naming, the attempt's lease, and collecting orphans.

An ingest attempt streams each new source into a data file under the table's
``data/`` folder before committing them together. A killed attempt (SIGKILL, a lost
pod) leaves those files behind, referenced by no snapshot. To collect them safely
while other ingests may be staging into the same folder, every attempt:

1. writes a lease ``data/_cnai_staging/<attempt>.json`` (its heartbeat time) before
   staging anything, refreshes it at least every :data:`HEARTBEAT_S` seconds while it
   stages and before each commit try, and removes it once its files are committed or
   deleted;
2. names its files ``data/cnai-<attempt>-<n>.parquet``.

:func:`collect_orphans` (run at the start of every ingest) deletes a staged file only
when its attempt holds no live lease (none, or a heartbeat older than the grace
period) *and* no snapshot of the table references it. It lists files, then leases,
then loads the table's references, in that order, so a file committed meanwhile is
seen as referenced. A file whose name does not follow the staged pattern is never
touched.

Hand-written because Iceberg's own orphan-file removal (Spark/Java
``DeleteOrphanFiles``) works on age alone and does not exist in PyIceberg 0.12; it
cannot tell a concurrent writer's not-yet-committed file from a dead one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cnai.errors import UsageError

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.table import Table

HEARTBEAT_S = 30.0
"""How often a staging attempt refreshes its lease."""
DEFAULT_ORPHAN_GRACE_S = 3600.0
"""Default age of a lease's heartbeat after which its attempt counts as dead."""
GRACE_ENV = "CNAI_INGEST_ORPHAN_GRACE_S"
"""Environment variable overriding :data:`DEFAULT_ORPHAN_GRACE_S`."""
LEASE_FOLDER = "_cnai_staging"

_STAGED_NAME = re.compile(r"^cnai-(?P<attempt>[0-9a-f]{32})(?:-\d+)?\.parquet$")


def orphan_grace_s(environ: dict[str, str] | None = None) -> float:
    """The grace period from ``CNAI_INGEST_ORPHAN_GRACE_S`` (seconds, >= 0)."""
    env = os.environ if environ is None else environ
    raw = env.get(GRACE_ENV)
    if raw is None or raw == "":
        return DEFAULT_ORPHAN_GRACE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UsageError(f"{GRACE_ENV} {raw!r}: must be a number of seconds >= 0")
    return value


def _data_dir(table: Table) -> str:
    return f"{table.location().rstrip('/')}/data"


class StagingCancelledError(Exception):
    """A staging thread stopped because another one failed or the ingest was terminated."""


@dataclass
class StagingAttempt:
    """One ingest attempt's staged files and lease."""

    table: Table
    """The table the files are staged for."""
    attempt: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Attempt id (32 hex digits) in every staged file name."""
    _count: int = 0
    _beat: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def lease_path(self) -> str:
        """Where this attempt's lease lives."""
        return f"{_data_dir(self.table)}/{LEASE_FOLDER}/{self.attempt}.json"

    def new_path(self) -> str:
        """A fresh data file path for this attempt (safe from several staging threads)."""
        with self._lock:
            self._count += 1
            count = self._count
        return f"{_data_dir(self.table)}/cnai-{self.attempt}-{count}.parquet"

    def cancel(self) -> None:
        """Ask every thread staging for this attempt to stop at its next batch."""
        self._cancelled.set()

    def check_cancelled(self) -> None:
        """Raise :class:`StagingCancelledError` once :meth:`cancel` was called."""
        if self._cancelled.is_set():
            raise StagingCancelledError(f"{self.attempt}: staging cancelled")

    @property
    def lease_written(self) -> bool:
        """True once the lease exists."""
        return self._beat > 0

    def heartbeat(self, force: bool = False) -> None:
        """Write the lease now (``force``) or when the last write is HEARTBEAT_S old."""
        now = time.time()
        if not force and now - self._beat < HEARTBEAT_S:
            return
        with self._lock:
            self._write_lease(now)

    def _write_lease(self, now: float) -> None:
        body = {
            "attempt": self.attempt,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "heartbeat": now,
        }
        with self.table.io.new_output(self.lease_path).create(overwrite=True) as out:
            out.write(json.dumps(body).encode())
        self._beat = now

    def release(self) -> None:
        """Remove the lease (its files are committed or deleted)."""
        if not self.lease_written:
            return
        with contextlib.suppress(OSError, FileNotFoundError):
            self.table.io.delete(self.lease_path)
        self._beat = 0.0


def collect_orphans(table: Table, grace_s: float | None = None) -> list[str]:
    """Delete staged files of dead attempts that no snapshot references; return them.

    Only works where the table's FileIO is PyIceberg's PyArrowFileIO (the default for
    local, S3, GCS, ADLS and HDFS locations); elsewhere nothing is collected.
    """
    from pyarrow import fs as pafs
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = table.io
    if not isinstance(io, PyArrowFileIO):
        return []
    grace = orphan_grace_s() if grace_s is None else grace_s
    data_dir = _data_dir(table)
    scheme, netloc, path = io.parse_location(data_dir)
    filesystem = io.fs_by_scheme(scheme, netloc)
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []
    staged = {}
    for entry in entries:
        match = _STAGED_NAME.match(entry.base_name)
        if entry.type == pafs.FileType.File and match:
            staged[entry.base_name] = match["attempt"]
    if not staged:
        return []
    live = _live_attempts(
        filesystem, io, f"{data_dir}/{LEASE_FOLDER}", f"{path}/{LEASE_FOLDER}", grace
    )
    candidates = {name for name, attempt in staged.items() if attempt not in live}
    if not candidates:
        return []
    table.refresh()
    candidates -= _referenced_names(table)
    deleted = []
    for name in sorted(candidates):
        with contextlib.suppress(OSError, FileNotFoundError):
            io.delete(f"{data_dir}/{name}")
            deleted.append(name)
    return deleted


def _live_attempts(
    filesystem: object, io: FileIO, lease_uri: str, lease_dir: str, grace: float
) -> set[str]:
    """Attempt ids whose lease heartbeat is younger than ``grace`` seconds.

    Leases older than that belong to dead attempts and are removed.
    """
    from pyarrow import fs as pafs

    assert isinstance(filesystem, pafs.FileSystem)
    live: set[str] = set()
    now = time.time()
    try:
        leases = filesystem.get_file_info(pafs.FileSelector(lease_dir, allow_not_found=True))
    except OSError:
        return live
    for lease in leases:
        if not lease.base_name.endswith(".json"):
            continue
        attempt = lease.base_name[: -len(".json")]
        try:
            with filesystem.open_input_stream(lease.path) as stream:
                beat = float(json.loads(stream.read(4096))["heartbeat"])
        except (OSError, ValueError, KeyError, TypeError):
            beat = now  # unreadable (being written): treat as live
        if now - beat < grace:
            live.add(attempt)
        else:
            with contextlib.suppress(OSError, FileNotFoundError):
                io.delete(f"{lease_uri}/{lease.base_name}")
    return live


def _referenced_names(table: Table) -> set[str]:
    """Base names of every data file any snapshot of ``table`` references."""
    names: set[str] = set()
    seen: set[str] = set()
    for snapshot in table.metadata.snapshots:
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in seen:
                continue
            seen.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                names.add(entry.data_file.file_path.rsplit("/", 1)[-1])
    return names
