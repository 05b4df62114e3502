"""Ingest step: Parquet/CSV files -> one validated, idempotent Iceberg snapshot.

Every source file is opened once and fingerprinted by content through that handle
(cnai.sources.pinned), so the fingerprint describes exactly the bytes staged; a
file changed in place meanwhile fails the ingest. Files whose fingerprint is already
in the table's lineage are skipped; the rest are validated against the data
contract (cnai.contract) while being streamed into Parquet data files under the
table's location, and are then committed together as one append snapshot whose
summary records their fingerprints. A violation anywhere, or SIGTERM, removes the
staged files and commits nothing (SIGTERM during the commit itself is held until the
commit is decided). Files staged by killed attempts are collected at the next ingest
(cnai.staging). A concurrent commit is retried here, after a refresh that re-checks
fingerprints (PyIceberg's own blind retry is switched off for it), so no file is lost
or ingested twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from tenacity import RetryCallState

from cnai.catalog import (
    DATA_VERSION_KEY,
    FINGERPRINTS_KEY,
    SOURCES_KEY,
    arrow_schema,
    data_version,
    data_version_of,
    ensure_table,
    ingested_fingerprints,
    lineage,
    open_catalog,
    source_schema,
    total_rows,
)
from cnai.config import ROW_HASH_COLUMN, DatasetSpec, Settings, load_settings
from cnai.contract import ContractError, check_batch, check_schema
from cnai.cpus import usable_cpus
from cnai.errors import CnaiError, UsageError
from cnai.progress import Progress
from cnai.retrying import commit_policy
from cnai.sources import (
    PinnedSource,
    SourceFile,
    ValueTypeError,
    iter_batches,
    pinned,
    read_schema,
    resolve_source,
)
from cnai.staging import StagingAttempt, collect_orphans

if TYPE_CHECKING:
    from pyiceberg.table import Table

DATA_SUFFIXES = frozenset({".parquet", ".pq", ".parq", ".csv"})
"""File name endings the landing folder is searched for."""

STAGING_THREADS = 2
"""Most source files staged at once (one per core, see :func:`staging_threads`). Each
holds at most two batches, so the peak memory of an ingest grows with this, not with
the number of files; two measured best on this project's 2-core machine
(docs/performance.md)."""


@dataclass
class _Staged:
    source: SourceFile
    fingerprint: str
    path: str
    rows: int
    committed: bool = False


class Terminated(SystemExit):
    """SIGTERM arrived while ingesting; staged files were removed (exit 143)."""


class _TermGuard:
    """Turns SIGTERM into :class:`Terminated`, held back while a commit is deciding.

    Installed only in the main thread (Python delivers signals there); elsewhere it
    does nothing and the process's own handling applies.
    """

    def __init__(self) -> None:
        self.pending = False
        self.holding = False
        self.previous: Any = None
        self.installed = False

    def __enter__(self) -> _TermGuard:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.holding:
            self.pending = True
            return
        raise Terminated(128 + signal.SIGTERM)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Defer SIGTERM for the block; raise it right after."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            raise Terminated(128 + signal.SIGTERM)


def ingest(
    source: str | None = None,
    table: str | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Append new source files to the Iceberg table as one snapshot.

    Args:
        source: a Parquet/CSV file or folder (path, ``file://`` or any PyArrow URI);
            default: the home's landing folder; when it holds no data file, the
            configured ``dataset.sample`` function writes sample data there first
            (without one: UsageError, and nothing is written).
        table: ``NAMESPACE.NAME``; default: the configured dataset table.
        settings: where the stores are; default: resolved from the environment.
        progress: where to report progress; default: plain lines on stderr.

    Returns:
        The summary documented for ``cnai ingest --json``.
    """
    settings = (settings or load_settings()).with_table(table)
    progress = progress or Progress()
    spec = settings.dataset.require()
    if source is None:
        source = str(fill_landing(settings.landing_dir, spec, progress))
    files = resolve_source(source)
    if not files:
        raise ContractError(f"--source {source}: no .parquet or .csv file found")

    table_obj = ensure_table(open_catalog(settings), spec)
    try:
        collected = collect_orphans(table_obj)
    except (OSError, ValueError, pa.ArrowException) as exc:  # best effort: never blocks ingest
        progress.info(f"{spec.table}: could not collect files of killed ingests ({exc})")
        collected = []
    if collected:
        progress.info(f"{spec.table}: removed {len(collected)} data file(s) left by killed ingests")
    previous = table_obj.current_snapshot()
    already = ingested_fingerprints(table_obj)
    skipped: list[str] = []
    staged: list[_Staged] = []
    attempt = StagingAttempt(table_obj)
    with _TermGuard() as guard:
        try:
            _stage_all(table_obj, files, already, spec, progress, attempt, staged, skipped)
            progress.info(
                f"{spec.table}: {len(staged)} new file(s), {len(skipped)} already ingested"
            )
            committed = _commit(table_obj, staged, progress, attempt, guard) if staged else []
        except BaseException as exc:
            _discard(table_obj, staged)
            if isinstance(exc, Terminated):
                progress.info(f"{spec.table}: terminated; staged files removed, nothing committed")
            raise
        finally:
            attempt.release()
    skipped += [s.source.uri for s in staged if s not in committed]

    current = table_obj.current_snapshot()
    changed = bool(committed)
    return {
        "table": spec.table,
        "snapshot_id": current.snapshot_id if current else None,
        "previous_snapshot_id": previous.snapshot_id if previous else None,
        "changed": changed,
        "rows_added": sum(s.rows for s in committed),
        "total_rows": total_rows(current),
        "data_version": data_version(table_obj),
        "files_ingested": [s.source.uri for s in committed],
        "files_skipped": skipped,
    }


def staging_threads(files: int) -> int:
    """How many source files are staged at once: one per core, at most STAGING_THREADS."""
    return max(1, min(files, STAGING_THREADS, usable_cpus()))


def _stage_all(
    table: Table,
    files: list[SourceFile],
    already: set[str],
    spec: DatasetSpec,
    progress: Progress,
    attempt: StagingAttempt,
    staged: list[_Staged],
    skipped: list[str],
) -> None:
    """Stage every file not ingested yet into ``staged`` (file order), the rest into ``skipped``.

    Files are staged :func:`staging_threads` at a time (Parquet decoding and encoding,
    hashing and the checks release the GIL, so each file's writer gets a core of its
    own). What the caller sees is what staging one file after the other gives: files
    in order, the first of several with the same bytes kept and the others (staged,
    then removed) skipped, and on a failure the error of the first failing file in
    order. A failure (or SIGTERM in the calling thread) cancels the other threads at
    their next batch and waits for them; everything they staged is in ``staged`` for
    the caller to discard.
    """

    def one(file: SourceFile) -> _Staged | None:
        attempt.check_cancelled()
        with pinned(file) as pin:
            fingerprint = pin.fingerprint()
            if fingerprint in already:
                return None
            return _stage_pinned(table, pin, fingerprint, spec, progress, attempt)

    results: list[_Staged | None] = []
    with ThreadPoolExecutor(staging_threads(len(files)), "cnai-ingest-stage") as pool:
        futures = [pool.submit(one, file) for file in files]
        try:
            results = [future.result() for future in futures]
        except BaseException:
            attempt.cancel()
            concurrent.futures.wait(futures)
            for future in futures:
                done = None if future.exception() else future.result()
                if done is not None:
                    staged.append(done)
            raise
    firsts: dict[str, _Staged] = {}
    kept = [
        r if r is not None and firsts.setdefault(r.fingerprint, r) is r else None for r in results
    ]
    _discard(table, [r for r, k in zip(results, kept, strict=True) if r is not None and k is None])
    staged += [k for k in kept if k is not None]
    skipped += [f.uri for f, k in zip(files, kept, strict=True) if k is None]


def fill_landing(landing: Path, spec: DatasetSpec, progress: Progress) -> Path:
    """``landing`` when it holds a data file; else let ``spec.sample`` write some there.

    Without a ``dataset.sample`` function an empty landing folder is bad input
    (UsageError) and nothing is created or written.
    """
    if _holds_data(landing):
        return landing
    if not spec.sample:
        raise UsageError(
            f"--source: not given and the landing folder {landing} holds no .parquet or .csv "
            "file (rule: pass --source, put files there, or configure dataset.sample)"
        )
    from cnai.resolve import resolve_callable

    writer = resolve_callable(spec.sample, what="dataset.sample")
    landing.mkdir(parents=True, exist_ok=True)
    writer(landing)
    if not _holds_data(landing):
        raise UsageError(
            f"dataset.sample {spec.sample}: wrote no .parquet or .csv file into {landing}"
        )
    progress.info(f"seeded {landing} with sample data from {spec.sample}")
    return landing


def _holds_data(folder: Path) -> bool:
    """True when ``folder`` exists and holds a data file (at any depth)."""
    return folder.is_dir() and any(p.suffix.lower() in DATA_SUFFIXES for p in folder.rglob("*"))


def _stage(
    table: Table,
    file: SourceFile,
    fingerprint: str | None,
    spec: DatasetSpec,
    progress: Progress,
    attempt: StagingAttempt | None = None,
) -> _Staged:
    """Validate ``file`` while streaming it into a new data file under the table.

    The staged file's fingerprint is that of the bytes read (``fingerprint``, the
    caller's earlier hash, is only a hint and is not trusted).
    """
    with pinned(file) as pin:
        return _stage_pinned(
            table, pin, pin.fingerprint(), spec, progress, attempt or StagingAttempt(table)
        )


def _stage_pinned(
    table: Table,
    pin: PinnedSource,
    fingerprint: str,
    spec: DatasetSpec,
    progress: Progress,
    attempt: StagingAttempt,
) -> _Staged:
    """Stage the file behind ``pin``, whose bytes hash to ``fingerprint``."""
    try:
        return _stage_checked(table, pin, fingerprint, spec, progress, attempt)
    except UsageError as exc:
        # A file rewritten under the reader reads as garbage or as breaking the
        # contract; report the change it is (runtime failure, exit 1), not bad input.
        pin.check_unchanged()
        if isinstance(exc, ValueTypeError) and exc.column == spec.label:
            raise ContractError(
                f"{exc.uri}: column {exc.column!r}: label value {exc.value!r} is not "
                f"{spec.label_type} (rule: labels of the declared dataset.label_type "
                f"{spec.label_type}; string labels need label_type: string)"
            ) from exc
        raise


def _stage_checked(
    table: Table,
    pin: PinnedSource,
    fingerprint: str,
    spec: DatasetSpec,
    progress: Progress,
    attempt: StagingAttempt,
) -> _Staged:
    """Validate the pinned file while streaming it into a new data file under the table."""
    file = pin.source
    target = arrow_schema(spec)
    declared = {f.name: f.type for f in source_schema(spec)}
    check_schema(file.uri, read_schema(file, declared, pin), spec)
    attempt.heartbeat(force=not attempt.lease_written)
    path = attempt.new_path()
    staged = _Staged(file, fingerprint, path, 0)
    try:
        with (
            table.io.new_output(path).create() as out,
            pq.ParquetWriter(out, target, use_dictionary=_dictionary_columns(target)) as writer,
            _BackgroundWriter(writer) as background,
        ):
            for batch in iter_batches(file, declared, pin):
                attempt.check_cancelled()
                attempt.heartbeat()
                try:
                    checked = check_batch(file.uri, batch, spec, staged.rows)
                except pa.ArrowInvalid as exc:
                    raise ContractError(
                        f"{file.uri}: values do not cast safely to the declared types ({exc}) "
                        "(rule: types equal or safely castable)"
                    ) from exc
                background.write(checked)
                staged.rows += checked.num_rows
            background.flush()
        pin.check_unchanged()
    except BaseException:
        _discard(table, [staged])
        raise
    if staged.rows == 0:
        _discard(table, [staged])
        raise ContractError(f"{file.uri}: has no rows (rule: at least one row)")
    progress.info(f"checked {file.uri}: {staged.rows} rows")
    return staged


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: all but the row hash.

    The row hash is unique per row, so a dictionary for it only fills up and falls
    back to plain encoding, after hashing every value of the first page into it.
    """
    return [name for name in schema.names if name != ROW_HASH_COLUMN]


class _BackgroundWriter:
    """Writes checked batches on one background thread, one batch behind the reader.

    Parquet encoding releases the GIL, so while batch ``k`` is encoded the calling
    thread reads and checks batch ``k + 1``; at most two batches are held. Errors of
    a write surface at the next :meth:`write` or at :meth:`flush`; leaving the block
    (normally, on a contract violation or on SIGTERM, which the calling thread
    receives) always waits for the write in flight, so the ParquetWriter is never
    closed under it.
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.writer = writer
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="cnai-ingest-write")
        self.pending: Future[None] | None = None

    def __enter__(self) -> _BackgroundWriter:
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        """Start writing ``batch`` once the previous write is done (raising its error)."""
        self.flush()
        self.pending = self.pool.submit(self.writer.write_batch, batch)

    def flush(self) -> None:
        """Wait for the write in flight; raise its error."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def __exit__(self, *exc: object) -> None:
        pending, self.pending = self.pending, None
        try:
            if pending is not None:
                concurrent.futures.wait([pending])  # already failing: its own error is moot
        finally:
            self.pool.shutdown(wait=True)


def _commit(
    table: Table,
    staged: list[_Staged],
    progress: Progress,
    lease: StagingAttempt | None = None,
    guard: _TermGuard | None = None,
) -> list[_Staged]:
    """Commit staged files as one append; retry on concurrent commits. Returns what landed."""
    from pyiceberg.exceptions import CommitFailedException

    tries = 0

    def attempt() -> list[_Staged]:
        nonlocal tries
        tries += 1
        if tries > 1:
            table.refresh()  # after the pause: the state the winner left
        if lease is not None:
            lease.heartbeat(force=True)
        done = ingested_fingerprints(table)
        keep = [s for s in staged if s.fingerprint not in done]
        if not keep:
            _discard(table, staged)  # another writer landed them all first
            return []
        properties = {
            FINGERPRINTS_KEY: json.dumps([s.fingerprint for s in keep]),
            SOURCES_KEY: json.dumps([s.source.uri for s in keep]),
            DATA_VERSION_KEY: data_version_of(lineage(table), [s.fingerprint for s in keep]),
        }
        with guard.hold() if guard else contextlib.nullcontext():
            with _single_attempt(table).transaction() as tx:
                tx.add_files(
                    [s.path for s in keep],
                    snapshot_properties=properties,
                    check_duplicate_files=False,
                )
            for item in keep:
                item.committed = True
        table.refresh()
        _discard(table, [s for s in staged if s not in keep])
        return keep

    def give_up(exc: BaseException, attempts: int) -> CnaiError:
        return CnaiError(
            f"table {'.'.join(table.name())}: commit failed after {attempts} attempts "
            f"of concurrent writers ({exc})"
        )

    def announce(state: RetryCallState) -> None:
        progress.info(
            f"concurrent commit; retrying in {state.upcoming_sleep:.2f}s ({state.attempt_number})"
        )

    conflict = lambda exc: isinstance(exc, CommitFailedException)  # noqa: E731
    return commit_policy(conflict, give_up, announce)(attempt)


def _single_attempt(table: Table) -> Table:
    """A view of ``table`` whose commits PyIceberg does not retry by itself.

    PyIceberg (0.10+) answers a concurrent commit by rebasing the append onto the new
    head and committing again, which would bypass the fingerprint re-check above and
    land the same source file twice. The override lives only in this in-memory view:
    the commit's updates carry no property change, so the table keeps its own
    ``commit.retry.*`` settings for every other writer.
    """
    from pyiceberg.table import Table as IcebergTable
    from pyiceberg.table import TableProperties

    properties = {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
    metadata = table.metadata.model_copy(update={"properties": properties})
    return IcebergTable(
        table.name(), metadata, table.metadata_location, table.io, table.catalog, table.config
    )


def _discard(table: Table, staged: list[_Staged]) -> None:
    """Delete staged files that no commit references (committed ones are kept)."""
    for item in staged:
        if item.committed:
            continue
        with contextlib.suppress(OSError, FileNotFoundError):
            table.io.delete(item.path)
