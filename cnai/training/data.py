"""Reading training data from the Iceberg table at a snapshot, without pandas.

Two readers share one conversion (Arrow columns -> a feature-major float32 block,
one cast per column, see :func:`copy_features`):

- :func:`read_split` reads one split (train / validation / test) of the whole
  table, e.g. for evaluation in the register step, as a row-major array;
- :func:`plan_partitions` (driver) cuts the snapshot's rows into one contiguous
  row range per worker over its data files, and :func:`load_partition` (worker)
  reads only the files of one range, each straight into its slot of one
  preallocated feature-major block, and records which rows belong to which split.

Splits come from :func:`cnai.splits.assign_splits` (a stable hash of each row's
key), so every reader agrees on which rows are test rows, however the data is
partitioned and whatever is appended later.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cnai.catalog import load_table, snapshot_at
from cnai.config import ROW_HASH_COLUMN, DatasetSpec, Settings
from cnai.cpus import usable_cpus
from cnai.errors import CnaiError, UsageError
from cnai.splits import SPLIT_NAMES, TEST, TRAIN, VALIDATION, assign_splits, stored_hashes

if TYPE_CHECKING:
    from pyiceberg.table import DataScan, FileScanTask, Table

SPLIT_CODES = {"train": TRAIN, "validation": VALIDATION, "test": TEST}
"""Split name -> code stored by :func:`cnai.splits.assign_splits`."""

READ_GROUP_BYTES = 2 << 20
"""About how much decoded data one direct read returns: feature columns are read in
groups this size, so each group is cast while it is still in the CPU's own cache
(one whole file at once decodes to far more than the cache holds). 2 MB took about
10% less CPU than 8 MB for the same load on this project's 2-core machine, and no
more than 1 MB or 512 KB (docs/performance.md)."""

Part = tuple[int, "pa.RecordBatch | pa.Table"]
"""``(first row within the piece, columns)``: some columns of some rows of a piece."""


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
    """Float32 (n, d) in the dataset's feature order, stored feature-major: it is the
    transposed view of a C-contiguous (d, n) block, as Parquet stores columns, so
    loading never transposes. Indexing rows (a batch) gathers a fresh (k, d) array;
    ``torch.from_numpy`` takes the view as it is (no copy)."""
    labels: np.ndarray
    """Int64 (n,) class indices into ``DatasetSpec.classes``; float32 (n,) target values
    for a regression task (see :func:`label_values`)."""
    index: dict[str, np.ndarray]
    """Split name -> ascending int64 positions of that split's rows."""

    def rows(self, split: str) -> int:
        """Number of rows of ``split``."""
        return len(self.index.get(split, ()))

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Copies of one split's features (k, d) and labels (k,)."""
        rows = self.index[name]
        return self.features[rows], self.labels[rows]


def label_dtype(spec: DatasetSpec) -> type[np.generic]:
    """The labels' array type: float32 targets for regression, else int64 class indices."""
    return np.float32 if spec.is_regression else np.int64


def label_values(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Each row's label as the model trains on it: the float32 target for a regression
    task, else the int64 index into ``spec.classes`` (:func:`class_indices`)."""
    if not spec.is_regression:
        return class_indices(batch, spec)
    labels = batch.column(spec.label)
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    return labels.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def class_indices(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Each row's label as an int64 index into ``spec.classes``."""
    labels = batch.column(spec.label)
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    if _dense_classes(spec) and pa.types.is_integer(labels.type) and not labels.null_count:
        # Classes 0..k-1: a label is its own index; only the range needs checking.
        values = labels.to_numpy().astype(np.int64, copy=False)
        if len(values) and (values.min() < 0 or values.max() >= len(spec.classes)):
            raise _outside_classes(spec)
        return values
    positions = pc.index_in(labels, value_set=pa.array(list(spec.classes), type=labels.type))
    if positions.null_count:
        raise _outside_classes(spec)
    return positions.to_numpy(zero_copy_only=False).astype(np.int64)


def _outside_classes(spec: DatasetSpec) -> CnaiError:
    """The error for labels that are not among ``spec.classes``."""
    return CnaiError(
        f"table {spec.table}: column {spec.label!r} holds values outside the declared classes"
    )


def copy_features(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec, out: np.ndarray) -> None:
    """Cast the feature columns ``batch`` carries into their rows of ``out``, (d, n) float32.

    Row ``j`` of ``out`` receives feature ``spec.features[j]``: one streaming cast per
    Arrow chunk, straight from Arrow's buffer (a zero-copy view when the column has
    no nulls). numpy releases the GIL for it, so reading threads convert side by side.
    A batch may carry only some features (a column group); the other rows are left.
    Only the batch's own columns are visited: a load calls this once per column group
    and file, and every Python step here holds the GIL the other reading threads need.
    """
    rows = feature_rows(spec.features)
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        row = rows.get(name)
        if row is None:
            continue
        target = out[row]
        if isinstance(column, pa.Array):
            np.copyto(target, column.to_numpy(zero_copy_only=False), casting="same_kind")
            continue
        at = 0
        for chunk in column.chunks:
            values = chunk.to_numpy(zero_copy_only=False)
            np.copyto(target[at : at + len(values)], values, casting="same_kind")
            at += len(values)


@functools.lru_cache(maxsize=16)
def feature_rows(features: tuple[str, ...]) -> dict[str, int]:
    """Feature name -> its row in a feature-major block (its position in ``features``)."""
    return {name: row for row, name in enumerate(features)}


def _dense_classes(spec: DatasetSpec) -> bool:
    """True when the declared classes are exactly the integers 0..k-1, in order."""
    return spec.classes == tuple(range(len(spec.classes)))


def feature_matrix(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Features of one batch as a row-major float32 (n, d) array."""
    block = np.empty((len(spec.features), batch.num_rows), np.float32)
    copy_features(batch, spec, block)
    return np.ascontiguousarray(block.T)


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
        Features float32 (n, d) in ``spec.features`` order and labels as
        :func:`label_values` gives them.
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
        labels.append(label_values(batch, spec))
    if not features:
        return np.empty((0, len(spec.features)), np.float32), np.empty(0, label_dtype(spec))
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

    Data files are immutable and the plan names them, so local direct pieces need
    no catalog at all; the table (for its FileIO) and the catalog scan that
    PyIceberg's reader needs are loaded only when a piece needs them, once, shared
    by the reading threads.
    """

    def __init__(self, settings: Settings, plan: DataPlan, decode_threads: bool = True) -> None:
        from cnai.catalog import arrow_schema

        self.decode_threads = decode_threads  # may one read also use Arrow's thread pool
        self.plan = plan
        self.settings = settings
        self.spec = settings.with_table(plan.table).dataset
        self.target = arrow_schema(self.spec)
        self._lock = threading.Lock()
        self._table: Table | None = None
        self._scan: tuple[dict[str, FileScanTask], object] | None = None
        self._schemas: dict[tuple[str, ...], pa.Schema] = {}

    def table(self) -> Table:
        """The plan's table, loaded on first use; UsageError once its snapshot expired."""
        with self._lock:
            if self._table is None:
                table = load_table(self.settings, self.plan.table)
                snapshot_at(table, self.plan.snapshot_id)
                self._table = table
            return self._table

    def parts(self, piece: Piece) -> Iterator[Part]:
        """One piece as parts, in the table's types, that together cover its rows and columns.

        A direct piece comes as column groups over all its rows; any other piece as
        batches of whole rows from PyIceberg's reader.
        """
        direct = self._direct_parts(piece) if piece.direct else None
        if direct is not None:
            yield from direct
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
                yield lo - piece.start, part
            if first_row >= piece.stop:
                break

    def _direct_parts(self, piece: Piece) -> Iterator[Part] | None:
        """The piece read straight from Parquet in column groups; None when it lacks a column."""
        import pyarrow.parquet as pq

        local = _local_path(piece.file_path)
        try:
            # A local file is memory-mapped: pages are decoded from the page cache
            # with no intermediate copy.
            handle = (
                pa.memory_map(local) if local else self.table().io.new_input(piece.file_path).open()
            )
        except FileNotFoundError as exc:
            raise CnaiError(
                f"table {self.plan.table}: data file {piece.file_path} is gone ({exc})"
            ) from exc
        try:
            parquet = pq.ParquetFile(handle)
            usable = set(self.target.names) <= set(parquet.schema_arrow.names)
        except BaseException:
            handle.close()
            raise
        if not usable:
            handle.close()
            return None
        return self._read_groups(handle, parquet, piece)

    def _read_groups(self, handle: pa.NativeFile, parquet: Any, piece: Piece) -> Iterator[Part]:
        """Column groups of the row groups overlapping ``piece``, sliced to its rows."""
        with handle:
            groups: list[int] = []
            first = offset = read_rows = 0
            for index in range(parquet.metadata.num_row_groups):
                rows = parquet.metadata.row_group(index).num_rows
                if offset < piece.stop and offset + rows > piece.start:
                    if not groups:
                        first = offset  # file row where the data read starts
                    groups.append(index)
                    read_rows += rows
                offset += rows

            whole = piece.start == first and piece.stop - piece.start == read_rows

            def read(names: list[str]) -> pa.Table:
                data = parquet.read_row_groups(
                    groups, columns=names, use_threads=self.decode_threads
                )
                if not whole:
                    data = data.slice(piece.start - first, piece.stop - piece.start)
                want = self._schema(names)
                return data if data.schema == want else data.cast(want, safe=True)

            for names in self._column_groups(read_rows):
                data = read(names)
                if ROW_HASH_COLUMN in names and not self.spec.key and stored_hashes(data) is None:
                    data = read(self.target.names)  # no stored hash: split by the whole row
                yield 0, data

    def _schema(self, names: list[str]) -> pa.Schema:
        """The table's schema of ``names``, built once per column group."""
        key = tuple(names)
        schema = self._schemas.get(key)
        if schema is None:
            schema = self._schemas[key] = pa.schema([self.target.field(n) for n in names])
        return schema

    def _column_groups(self, rows: int) -> list[list[str]]:
        """Features in groups of about READ_GROUP_BYTES decoded, then everything else.

        The last group carries the label, the stored row hash and any key columns,
        which is all a split needs unless a stored hash is missing.
        """
        features = list(self.spec.features)
        per = max(1, READ_GROUP_BYTES // (8 * max(rows, 1)))
        groups = [features[i : i + per] for i in range(0, len(features), per)]
        rest = [name for name in self.target.names if name not in self.spec.features]
        groups.append(rest)
        return groups

    def _planned(self) -> tuple[dict[str, FileScanTask], object]:
        table = self.table()
        with self._lock:
            if self._scan is None:
                scan = table.scan(
                    snapshot_id=self.plan.snapshot_id, selected_fields=tuple(self.spec.columns)
                )
                tasks = {t.file.file_path: t for t in scan.plan_files()}
                self._scan = (tasks, _arrow_scan(table, scan))
            return self._scan


def _local_path(uri: str) -> str | None:
    """The filesystem path of a ``file://`` URI or a bare absolute path, else None."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri if uri.startswith("/") else None


def _pooled(shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """An uninitialised array in memory from Arrow's pool, where the decoded columns live.

    The pool keeps freed memory for reuse, so a process that loads again (a tuning
    trial on a new snapshot, a benchmark round) writes into pages it already has
    instead of faulting in fresh zeroed ones; a first load costs the same as numpy's.
    """
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(pa.allocate_buffer(size), dtype=dtype).reshape(shape)


def load_partition(settings: Settings, plan: DataPlan, rank: int) -> SplitArrays:
    """Every row of rank ``rank``'s partition, and each split's row positions.

    The output arrays are allocated once, sized from the plan, features
    feature-major (see :class:`SplitArrays`); pieces are read on a small thread
    pool (Parquet decoding and numpy release the GIL), each cast batch by batch
    into its own columns. Only pieces with row-level deletes can come up short of
    their planned size; the gaps they leave are closed at the end.
    """
    from concurrent.futures import ThreadPoolExecutor

    spec = settings.with_table(plan.table).dataset
    pieces = plan.partitions[rank]
    starts = [0]
    for piece in pieces:
        starts.append(starts[-1] + piece.stop - piece.start)
    block = _pooled((len(spec.features), starts[-1]), np.float32)
    labels = _pooled((starts[-1],), label_dtype(spec))
    codes = np.empty(starts[-1], np.int8)

    def fill(slot: int, parts: Iterator[Part]) -> int:
        """Write one piece's parts into its slot; returns the rows it covered."""
        covered = 0
        for offset, part in parts:
            at = starts[slot] + offset
            stop = at + part.num_rows
            if stop > starts[slot + 1]:
                raise CnaiError(
                    f"table {plan.table}: data file {pieces[slot].file_path} holds more rows "
                    "than the snapshot's manifests record"
                )
            names = part.schema.names
            copy_features(part, spec, block[:, at:stop])
            if spec.label in names:
                labels[at:stop] = label_values(part, spec)
            if ROW_HASH_COLUMN in names:
                codes[at:stop] = assign_splits(part, spec)
            covered = max(covered, offset + part.num_rows)
        return covered

    filled: list[int] = []
    if pieces:
        cpus = usable_cpus()
        # Two threads a core: one decoding while another casts (measured best on 2 cores).
        threads = max(1, min(len(pieces), 2 * cpus, 8))
        # With a piece per core or more, the pool keeps every core busy; a read that
        # also fanned its columns out to Arrow's pool would only add hand-offs.
        reader = _PartitionReader(settings, plan, decode_threads=threads < cpus)
        with ThreadPoolExecutor(threads, thread_name_prefix="cnai-read") as pool:
            filled = list(pool.map(fill, range(len(pieces)), map(reader.parts, pieces)))
    if any(f < p.stop - p.start for f, p in zip(filled, pieces, strict=True)):
        kept = np.concatenate([np.arange(s, s + f) for s, f in zip(starts, filled, strict=False)])
        block, labels, codes = block[:, kept], labels[kept], codes[kept]
    index = {name: np.flatnonzero(codes == code) for name, code in SPLIT_CODES.items()}
    return SplitArrays(block.T, labels, index)
