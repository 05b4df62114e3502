"""Ingest step: Parquet/CSV files -> one validated, idempotent Iceberg snapshot.

Every source file is fingerprinted by content. Files whose fingerprint is already
in the table's lineage are skipped; the rest are validated against the data
contract (cnai.contract) while being streamed into Parquet data files under the
table's location, and are then committed together as one append snapshot whose
summary records their fingerprints. A violation anywhere removes the staged files
and commits nothing. A concurrent commit is retried here, after a refresh that
re-checks fingerprints (PyIceberg's own blind retry is switched off for it), so no
file is lost or ingested twice.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

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
from cnai.config import DatasetSpec, Settings, load_settings
from cnai.contract import ContractError, check_batch, check_schema
from cnai.errors import CnaiError
from cnai.progress import Progress
from cnai.sources import SourceFile, iter_batches, read_schema, resolve_source

if TYPE_CHECKING:
    from pyiceberg.table import Table

COMMIT_ATTEMPTS = 8
SEED_FILE = "digits.parquet"


@dataclass
class _Staged:
    source: SourceFile
    fingerprint: str
    path: str
    rows: int


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
            default: the home's landing folder, seeded with the digits data when empty.
        table: ``NAMESPACE.NAME``; default: the configured dataset table.
        settings: where the stores are; default: resolved from the environment.
        progress: where to report progress; default: plain lines on stderr.

    Returns:
        The summary documented for ``cnai ingest --json``.
    """
    settings = (settings or load_settings()).with_table(table)
    progress = progress or Progress()
    spec = settings.dataset
    if source is None:
        source = str(seed_landing(settings.landing_dir, progress))
    files = resolve_source(source)
    if not files:
        raise ContractError(f"--source {source}: no .parquet or .csv file found")

    table_obj = ensure_table(open_catalog(settings), spec)
    previous = table_obj.current_snapshot()
    already = ingested_fingerprints(table_obj)
    todo: list[tuple[SourceFile, str]] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for file in files:
        fingerprint = file.fingerprint()
        if fingerprint in already or fingerprint in seen:
            skipped.append(file.uri)
            continue
        seen.add(fingerprint)
        todo.append((file, fingerprint))
    progress.info(f"{spec.table}: {len(todo)} new file(s), {len(skipped)} already ingested")

    staged: list[_Staged] = []
    try:
        for file, fingerprint in todo:
            staged.append(_stage(table_obj, file, fingerprint, spec, progress))
        committed = _commit(table_obj, staged, progress) if staged else []
    except BaseException:
        _discard(table_obj, staged)
        raise
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


def seed_landing(landing: Path, progress: Progress) -> Path:
    """Make sure the landing folder holds data; write the digits set when it is empty."""
    landing.mkdir(parents=True, exist_ok=True)
    if any(p.suffix.lower() in {".parquet", ".pq", ".parq", ".csv"} for p in landing.rglob("*")):
        return landing
    from sklearn.datasets import load_digits

    digits = load_digits()
    columns: dict[str, Any] = {
        f"pixel_{i}": pa.array(digits.data[:, i], type=pa.float64()) for i in range(64)
    }
    columns["label"] = pa.array(digits.target, type=pa.int64())
    pq.write_table(pa.table(columns), landing / SEED_FILE)
    progress.info(
        f"seeded {landing / SEED_FILE} with the digits data set ({len(digits.target)} rows)"
    )
    return landing


def _stage(
    table: Table, file: SourceFile, fingerprint: str, spec: DatasetSpec, progress: Progress
) -> _Staged:
    """Validate ``file`` while streaming it into a new data file under the table."""
    target = arrow_schema(spec)
    declared = {f.name: f.type for f in source_schema(spec)}
    check_schema(file.uri, read_schema(file, declared), spec)
    path = f"{table.location().rstrip('/')}/data/cnai-{uuid.uuid4().hex}.parquet"
    staged = _Staged(file, fingerprint, path, 0)
    try:
        with table.io.new_output(path).create() as out, pq.ParquetWriter(out, target) as writer:
            for batch in iter_batches(file, declared):
                try:
                    checked = check_batch(file.uri, batch, spec, staged.rows)
                except pa.ArrowInvalid as exc:
                    raise ContractError(
                        f"{file.uri}: values do not cast safely to the declared types ({exc}) "
                        "(rule: types equal or safely castable)"
                    ) from exc
                writer.write_batch(checked)
                staged.rows += checked.num_rows
    except BaseException:
        _discard(table, [staged])
        raise
    if staged.rows == 0:
        _discard(table, [staged])
        raise ContractError(f"{file.uri}: has no rows (rule: at least one row)")
    progress.info(f"checked {file.uri}: {staged.rows} rows")
    return staged


def _commit(table: Table, staged: list[_Staged], progress: Progress) -> list[_Staged]:
    """Commit staged files as one append; retry on concurrent commits. Returns what landed."""
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(1, COMMIT_ATTEMPTS + 1):
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
        try:
            with _single_attempt(table).transaction() as tx:
                tx.add_files(
                    [s.path for s in keep],
                    snapshot_properties=properties,
                    check_duplicate_files=False,
                )
        except CommitFailedException as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise CnaiError(
                    f"table {'.'.join(table.name())}: commit failed after {attempt} attempts "
                    f"of concurrent writers ({exc})"
                ) from exc
            delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
            progress.info(f"concurrent commit; retrying in {delay:.2f}s ({attempt})")
            time.sleep(delay)
            table.refresh()
            continue
        table.refresh()
        _discard(table, [s for s in staged if s not in keep])
        return keep
    return []  # unreachable: the loop returns or raises


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
    for item in staged:
        with contextlib.suppress(OSError, FileNotFoundError):
            table.io.delete(item.path)
