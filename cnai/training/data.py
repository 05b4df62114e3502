"""Reading training data from the Iceberg table at a snapshot, without pandas.

Two readers share one conversion (Arrow record batch -> row-major float32):

- :func:`read_split` reads one split (train / validation / test) of the whole
  table, e.g. for evaluation in the register step;
- :func:`plan_partitions` (driver) cuts the snapshot's rows into one contiguous
  row range per worker over its data files, and :func:`load_partition` (worker)
  reads only the files of one range, each straight into its slot of one
  preallocated array, and records which rows belong to which split.

Splits come from :func:`cnai.splits.assign_splits` (a stable hash of each row's
key), so every reader agrees on which rows are test rows, however the data is
partitioned and whatever is appended later.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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
    direct: bool = False
    """Plain Parquet without row-level deletes under the table's only schema, so
    pyarrow.parquet can read it with no Iceberg projection and no catalog scan."""


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


@dataclass(frozen=True)
class SplitArrays:
    """One partition's rows, and which of them belong to which split.

    Rows are kept once, in file order; a split is a list of row positions, so the
    epoch loop gathers its shuffled batches straight from ``features`` and no
    per-split copy of the data is ever made.
    """

    features: np.ndarray
    """Float32 (n, d), row-major, in the dataset's feature order."""
    labels: np.ndarray
    """Int64 (n,) class indices into ``DatasetSpec.classes``."""
    index: dict[str, np.ndarray]
    """Split name -> ascending int64 positions of that split's rows."""

    def rows(self, split: str) -> int:
        """Number of rows of ``split``."""
        return len(self.index.get(split, ()))

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Copies of one split's features (k, d) and labels (k,)."""
        rows = self.index[name]
        return self.features[rows], self.labels[rows]


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


def feature_matrix(
    batch: pa.RecordBatch | pa.Table, spec: DatasetSpec, out: np.ndarray | None = None
) -> np.ndarray:
    """Features of one batch as row-major float32 (n, d), written into ``out`` if given.

    Each column is cast into one row of a column-major block, then one transposing
    copy fills ``out``; every step is a numpy copy that releases the GIL, so reading
    threads convert side by side. The fastest pure-numpy layout measured (see
    docs/training.md).
    """
    block = np.empty((len(spec.features), batch.num_rows), np.float32)
    for row, name in zip(block, spec.features, strict=True):
        np.copyto(row, batch.column(name).to_numpy(zero_copy_only=False), casting="same_kind")
    if out is None:
        return np.ascontiguousarray(block.T)
    out[...] = block.T
    return out


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
        keep = np.flatnonzero(assign_splits(batch, spec) == wanted)
        if len(keep) < batch.num_rows:
            batch = batch.take(pa.array(keep))
        features.append(feature_matrix(batch, spec))
        labels.append(class_indices(batch, spec))
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
    iceberg, scan = _scan(settings, table, snapshot_id)
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
        direct = _direct_ok(iceberg, task)
        for rank in range(world_size):
            lo, hi = max(bounds[rank], offset), min(bounds[rank + 1], offset + count)
            if lo < hi:
                parts[rank].append(Piece(task.file.file_path, lo - offset, hi - offset, direct))
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


def _direct_ok(iceberg: Table, task: FileScanTask) -> bool:
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


class _PartitionReader:
    """Reads the pieces of a plan: direct ones with pyarrow.parquet, others via PyIceberg.

    The catalog scan that PyIceberg's reader needs is planned only when a piece
    needs it, once, shared by the reading threads.
    """

    def __init__(self, settings: Settings, plan: DataPlan) -> None:
        from cnai.catalog import arrow_schema

        self.plan = plan
        self.spec = settings.with_table(plan.table).dataset
        self.table = load_table(settings, plan.table)
        snapshot_at(self.table, plan.snapshot_id)  # UsageError once it has expired
        self.target = arrow_schema(self.spec)
        self._lock = threading.Lock()
        self._scan: tuple[dict[str, FileScanTask], object] | None = None

    def batches(self, piece: Piece) -> Iterator[pa.RecordBatch]:
        """The rows of one piece as Arrow batches of the dataset's columns (table types)."""
        data = self._read_direct(piece) if piece.direct else None
        if data is not None:
            yield from data.to_batches()
            return
        tasks, reader = self._planned()
        task = tasks.get(piece.file_path)
        if task is None:
            raise CnaiError(
                f"table {self.plan.table}: data file {piece.file_path} left the snapshot"
            )
        first_row = 0  # file row of the batch's first row
        for batch in reader.to_record_batches([task]):  # type: ignore[attr-defined]
            lo, hi = max(piece.start, first_row), min(piece.stop, first_row + batch.num_rows)
            part = batch.slice(lo - first_row, hi - lo) if lo < hi else None
            first_row += batch.num_rows
            if part is not None:
                yield part
            if first_row >= piece.stop:
                break

    def _read_direct(self, piece: Piece) -> pa.Table | None:
        """The piece's rows read straight from Parquet; None when the file lacks a column."""
        import pyarrow.parquet as pq

        try:
            handle = self.table.io.new_input(piece.file_path).open()
        except FileNotFoundError as exc:
            raise CnaiError(
                f"table {self.plan.table}: data file {piece.file_path} is gone ({exc})"
            ) from exc
        with handle:
            parquet = pq.ParquetFile(handle)
            if not set(self.target.names) <= set(parquet.schema_arrow.names):
                return None
            # Only the row groups overlapping the piece are read.
            groups: list[int] = []
            first = offset = 0
            for index in range(parquet.metadata.num_row_groups):
                rows = parquet.metadata.row_group(index).num_rows
                if offset < piece.stop and offset + rows > piece.start:
                    if not groups:
                        first = offset  # file row where the data read starts
                    groups.append(index)
                offset += rows
            data = parquet.read_row_groups(groups, columns=self.target.names, use_threads=True)
        data = data.slice(piece.start - first, piece.stop - piece.start)
        return data if data.schema == self.target else data.cast(self.target, safe=True)

    def _planned(self) -> tuple[dict[str, FileScanTask], object]:
        with self._lock:
            if self._scan is None:
                scan = self.table.scan(
                    snapshot_id=self.plan.snapshot_id, selected_fields=tuple(self.spec.columns)
                )
                tasks = {t.file.file_path: t for t in scan.plan_files()}
                self._scan = (tasks, _arrow_scan(self.table, scan))
            return self._scan


def load_partition(settings: Settings, plan: DataPlan, rank: int) -> SplitArrays:
    """Every row of rank ``rank``'s partition, and each split's row positions.

    The output arrays are allocated once, sized from the plan; pieces are read on a
    small thread pool (Parquet decoding and numpy release the GIL), each converted
    batch by batch into its own slot. Only pieces with row-level deletes can come
    up short of their planned size; the gaps they leave are closed at the end.
    """
    from concurrent.futures import ThreadPoolExecutor

    spec = settings.with_table(plan.table).dataset
    pieces = plan.partitions[rank]
    starts = [0]
    for piece in pieces:
        starts.append(starts[-1] + piece.stop - piece.start)
    features = np.empty((starts[-1], len(spec.features)), np.float32)
    labels = np.empty(starts[-1], np.int64)
    codes = np.empty(starts[-1], np.int8)

    def fill(slot: int, batches: Iterator[pa.RecordBatch]) -> int:
        at, end = starts[slot], starts[slot + 1]
        for batch in batches:
            stop = at + batch.num_rows
            if stop > end:
                raise CnaiError(
                    f"table {plan.table}: data file {pieces[slot].file_path} holds more rows "
                    "than the snapshot's manifests record"
                )
            feature_matrix(batch, spec, features[at:stop])
            labels[at:stop] = class_indices(batch, spec)
            codes[at:stop] = assign_splits(batch, spec)
            at = stop
        return at - starts[slot]

    filled: list[int] = []
    if pieces:
        reader = _PartitionReader(settings, plan)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, min(len(pieces), 4, cpus or 1))
        with ThreadPoolExecutor(threads, thread_name_prefix="cnai-read") as pool:
            filled = list(pool.map(fill, range(len(pieces)), map(reader.batches, pieces)))
    if any(f < p.stop - p.start for f, p in zip(filled, pieces, strict=True)):
        kept = np.concatenate([np.arange(s, s + f) for s, f in zip(starts, filled, strict=False)])
        features, labels, codes = features[kept], labels[kept], codes[kept]
    index = {name: np.flatnonzero(codes == code) for name, code in SPLIT_CODES.items()}
    return SplitArrays(features, labels, index)
