"""Reading training data from the Iceberg table at a snapshot, without pandas.

Two readers share one conversion path (Arrow record batch -> numpy arrays):

- :func:`read_split` reads one split (train / validation / test) of the whole
  table, e.g. for evaluation in the register step;
- :func:`plan_partitions` (driver) cuts the snapshot's rows into one contiguous
  row range per worker over its data files, and :func:`iter_partition` /
  :func:`load_partition` (worker) stream only the files of one range, batch by
  batch, into arrays tagged with their split.

Splits come from :func:`cnai.splits.assign_splits` (a stable hash of each row's
key), so every reader agrees on which rows are test rows, however the data is
partitioned and whatever is appended later.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cnai.catalog import load_table, snapshot_at
from cnai.config import DatasetSpec, Settings
from cnai.errors import CnaiError, UsageError
from cnai.splits import SPLIT_NAMES, TEST, TRAIN, VALIDATION, assign_splits

if TYPE_CHECKING:
    from pyiceberg.table import DataScan, FileScanTask, Table

SPLIT_CODES = {"train": TRAIN, "validation": VALIDATION, "test": TEST}
"""Split name -> code stored by :func:`cnai.splits.assign_splits`."""


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of one data file (positions after the scan's filters)."""

    file_path: str
    """The data file's URI as the table's manifests record it."""
    start: int
    """First row of the file this piece covers."""
    stop: int
    """One past the last row of the file this piece covers."""


@dataclass(frozen=True)
class DataPlan:
    """Which rows of a snapshot each worker reads; built by :func:`plan_partitions`."""

    table: str
    """Iceberg identifier ``NS.NAME``."""
    snapshot_id: int
    """The snapshot every worker reads (never "current": a plan is pinned)."""
    partitions: tuple[tuple[Piece, ...], ...]
    """One tuple of pieces per rank."""
    total_rows: int
    """Rows of the snapshot across all partitions."""

    @property
    def world_size(self) -> int:
        """Number of partitions (one per worker)."""
        return len(self.partitions)


@dataclass
class SplitArrays:
    """Features and labels of one partition, grouped by split."""

    features: dict[str, np.ndarray] = field(default_factory=dict)
    """Split name -> float32 features (n, d) in the dataset's feature order."""
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    """Split name -> int64 class indices into ``DatasetSpec.classes``."""

    def rows(self, split: str) -> int:
        """Number of rows of ``split``."""
        return len(self.labels.get(split, ()))


def class_indices(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Each row's label as an int64 index into ``spec.classes``."""
    labels = batch.column(spec.label)
    positions = pc.index_in(labels, value_set=pa.array(list(spec.classes), type=labels.type))
    if positions.null_count:
        raise CnaiError(
            f"table {spec.table}: column {spec.label!r} holds values outside the declared classes"
        )
    if isinstance(positions, pa.ChunkedArray):
        positions = positions.combine_chunks()
    return positions.to_numpy(zero_copy_only=False).astype(np.int64)


def feature_columns(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Features column-major, float32 (d, n): one contiguous copy per column, no pandas."""
    return np.array(
        [batch.column(name).to_numpy(zero_copy_only=False) for name in spec.features],
        dtype=np.float32,
    ).reshape(len(spec.features), batch.num_rows)


def batch_to_arrays(
    batch: pa.RecordBatch | pa.Table, spec: DatasetSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, d) float32 row-major and class indices (n,) int64 of one Arrow batch."""
    return np.ascontiguousarray(feature_columns(batch, spec).T), class_indices(batch, spec)


def _scan(settings: Settings, table: str | None, snapshot_id: int | None) -> tuple[Table, DataScan]:
    """The table and a scan of the dataset's columns at the snapshot (validated)."""
    spec = settings.with_table(table).dataset
    iceberg = load_table(settings, spec.table)
    snapshot = snapshot_at(iceberg, snapshot_id)
    return iceberg, iceberg.scan(
        snapshot_id=snapshot.snapshot_id, selected_fields=tuple(spec.columns)
    )


def _arrow_scan(iceberg: Table, scan: DataScan) -> object:
    from pyiceberg.io.pyarrow import ArrowScan

    return ArrowScan(iceberg.metadata, iceberg.io, scan.projection(), scan.row_filter)


def read_split(
    settings: Settings,
    split: str,
    snapshot_id: int | None = None,
    table: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One split of the table at a snapshot (default: current).

    Args:
        settings: where the catalog is and the dataset's declared columns.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        snapshot_id: the snapshot to read; UsageError when it does not exist.
        table: ``NS.NAME``; default: the configured dataset table.

    Returns:
        Features float32 (n, d) in ``spec.features`` order and labels int64 class
        indices into ``spec.classes``.
    """
    if split not in SPLIT_CODES:
        raise UsageError(f"split {split!r}: expected one of {', '.join(SPLIT_NAMES)}")
    spec = settings.with_table(table).dataset
    iceberg, scan = _scan(settings, table, snapshot_id)
    reader = _arrow_scan(iceberg, scan)
    wanted = SPLIT_CODES[split]
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for batch in reader.to_record_batches(scan.plan_files()):  # type: ignore[attr-defined]
        keep = assign_splits(batch, spec) == wanted
        x, y = batch_to_arrays(batch, spec)
        features.append(x[keep])
        labels.append(y[keep])
    if not features:
        return np.empty((0, len(spec.features)), np.float32), np.empty(0, np.int64)
    return np.concatenate(features), np.concatenate(labels)


def plan_partitions(
    settings: Settings,
    world_size: int,
    snapshot_id: int | None = None,
    table: str | None = None,
) -> DataPlan:
    """Cut the snapshot's rows into ``world_size`` balanced, contiguous row ranges.

    Files are ordered by path and laid end to end; rank ``r`` gets rows
    ``[r*n/w, (r+1)*n/w)`` of that sequence, so a worker opens only the files its
    range touches (whole files when the boundaries fall between files). Files with
    row-level deletes are assigned whole, to the least loaded rank, since their
    live row count is only known after reading them.
    """
    if world_size < 1:
        raise UsageError(f"--workers {world_size}: must be at least 1")
    spec = settings.with_table(table).dataset
    _, scan = _scan(settings, table, snapshot_id)
    tasks = sorted(scan.plan_files(), key=lambda t: t.file.file_path)
    plain = [t for t in tasks if not t.delete_files]
    with_deletes = [t for t in tasks if t.delete_files]
    counts = [int(t.file.record_count) for t in plain]
    total = sum(counts)
    parts: list[list[Piece]] = [[] for _ in range(world_size)]
    loads = [0] * world_size
    bounds = [total * r // world_size for r in range(world_size + 1)]
    offset = 0
    for task, count in zip(plain, counts, strict=True):
        for rank in range(world_size):
            lo, hi = max(bounds[rank], offset), min(bounds[rank + 1], offset + count)
            if lo < hi:
                parts[rank].append(Piece(task.file.file_path, lo - offset, hi - offset))
                loads[rank] += hi - lo
        offset += count
    for task in with_deletes:
        rank = loads.index(min(loads))
        count = int(task.file.record_count)
        parts[rank].append(Piece(task.file.file_path, 0, count))
        loads[rank] += count
        total += count
    if total == 0:
        raise UsageError(f"table {spec.table}: has no rows at snapshot {scan.snapshot_id}")
    assert scan.snapshot_id is not None
    return DataPlan(spec.table, scan.snapshot_id, tuple(tuple(p) for p in parts), total)


def _fast_path_ok(iceberg: Table, task: FileScanTask) -> bool:
    """True when a data file can be read with plain pyarrow.parquet, no Iceberg projection.

    That holds for a Parquet file without row-level deletes in a table whose schema
    never changed (so column names in the file mean what the table says they mean).
    """
    from pyiceberg.manifest import FileFormat

    return (
        not task.delete_files
        and task.file.file_format == FileFormat.PARQUET
        and len(iceberg.metadata.schemas) == 1
    )


def _piece_batches(
    iceberg: Table, reader: object, task: FileScanTask, piece: Piece, spec: DatasetSpec
) -> Iterator[pa.RecordBatch]:
    """The rows of one piece as Arrow batches of the dataset's columns (table types)."""
    import pyarrow.parquet as pq

    from cnai.catalog import arrow_schema

    target = arrow_schema(spec)
    if _fast_path_ok(iceberg, task):
        with iceberg.io.new_input(task.file.file_path).open() as handle:
            parquet = pq.ParquetFile(handle)
            names = set(parquet.schema_arrow.names)
            if all(name in names for name in target.names):
                # Only the row groups overlapping the piece are read.
                groups, first, offset = [], None, 0
                for index in range(parquet.metadata.num_row_groups):
                    rows = parquet.metadata.row_group(index).num_rows
                    if offset < piece.stop and offset + rows > piece.start:
                        groups.append(index)
                        first = offset if first is None else first
                    offset += rows
                if not groups or first is None:
                    return
                data = parquet.read_row_groups(groups, columns=target.names, use_threads=True)
                data = data.slice(piece.start - first, piece.stop - piece.start)
                if data.schema != target:
                    data = data.cast(target, safe=True)
                yield from data.to_batches()
                return
    first_row = 0  # file row of the batch's first row
    for batch in reader.to_record_batches([task]):  # type: ignore[attr-defined]
        lo, hi = max(piece.start, first_row), min(piece.stop, first_row + batch.num_rows)
        part = batch.slice(lo - first_row, hi - lo) if lo < hi else None
        first_row += batch.num_rows
        if part is not None:
            yield part
        if first_row >= piece.stop:
            break


def _partition_batches(
    settings: Settings, plan: DataPlan, rank: int
) -> Iterator[Iterator[pa.RecordBatch]]:
    """One iterator of Arrow batches per piece of rank ``rank``'s partition, in order."""
    spec = settings.with_table(plan.table).dataset
    pieces = plan.partitions[rank]
    if not pieces:
        return
    iceberg, scan = _scan(settings, plan.table, plan.snapshot_id)
    by_path: dict[str, FileScanTask] = {t.file.file_path: t for t in scan.plan_files()}
    reader = _arrow_scan(iceberg, scan)
    for piece in pieces:
        task = by_path.get(piece.file_path)
        if task is None:
            raise CnaiError(f"table {plan.table}: data file {piece.file_path} left the snapshot")
        yield _piece_batches(iceberg, reader, task, piece, spec)


def iter_partition(
    settings: Settings, plan: DataPlan, rank: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Stream rank ``rank``'s rows as ``(features, labels, split codes)`` batches."""
    spec = settings.with_table(plan.table).dataset
    for batches in _partition_batches(settings, plan, rank):
        for batch in batches:
            x, y = batch_to_arrays(batch, spec)
            yield x, y, assign_splits(batch, spec)


_Chunk = dict[int, tuple[np.ndarray, np.ndarray]]


def _split_chunk(batch: pa.RecordBatch, spec: DatasetSpec) -> _Chunk:
    """One batch as {split code: (features column-major (d, k) float32, labels (k,))}."""
    codes = assign_splits(batch, spec)
    columns = feature_columns(batch, spec)
    labels = class_indices(batch, spec)
    out: _Chunk = {}
    for code in (TRAIN, VALIDATION, TEST):
        index = np.flatnonzero(codes == code)
        out[code] = (columns[:, index], labels[index])
    return out


def load_partition(settings: Settings, plan: DataPlan, rank: int) -> SplitArrays:
    """Every row of rank ``rank``'s partition, as arrays grouped by split.

    Pieces are read and converted on a small thread pool (Parquet decoding and
    numpy release the GIL); features are gathered column-major per split and
    transposed once at the end into row-major float32.
    """
    from concurrent.futures import ThreadPoolExecutor

    spec = settings.with_table(plan.table).dataset

    def convert(batches: Iterator[pa.RecordBatch]) -> list[_Chunk]:
        return [_split_chunk(batch, spec) for batch in batches]

    threads = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(threads, thread_name_prefix="cnai-read") as pool:
        per_piece = list(pool.map(convert, _partition_batches(settings, plan, rank)))
    chunks = [chunk for piece in per_piece for chunk in piece]
    out = SplitArrays()
    for name, code in SPLIT_CODES.items():
        parts = [chunk[code] for chunk in chunks]
        if parts:
            columns = np.concatenate([p[0] for p in parts], axis=1)
            out.features[name] = np.ascontiguousarray(columns.T)
            out.labels[name] = np.concatenate([p[1] for p in parts])
        else:
            out.features[name] = np.empty((0, len(spec.features)), np.float32)
            out.labels[name] = np.empty(0, np.int64)
    return out
