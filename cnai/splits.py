"""Deterministic train / validation / test assignment by a stable hash of each row's key.

A row's split depends only on its key (the declared key columns, or else its
feature and label values), never on its position or on what else is in the table,
so appending data never moves an existing row to another split. The train step and
the register step's evaluation both use this, so "the test split of snapshot S"
means the same rows everywhere.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pyarrow as pa

from cnai.config import ROW_HASH_COLUMN, DatasetSpec

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")

_SEED = np.uint64(0x243F6A8885A308D3)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (wrapping uint64 arithmetic)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _multiplier(index: int) -> np.uint64:
    """A fixed odd 64-bit multiplier per key column position."""
    value = _mix(np.array([index + 1], dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))[0]
    return np.uint64(value | np.uint64(1))


def _column_bits(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64 stable bits per value of one column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype != np.float64:
            values = values.astype(np.float64)
        return (values + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0
    # Strings and anything else: a real hash of the text form (keys are usually short).
    out = np.empty(len(column), dtype=np.uint64)
    for i, value in enumerate(column.to_pylist()):
        digest = hashlib.blake2b(str(value).encode(), digest_size=8).digest()
        out[i] = np.frombuffer(digest, dtype="<u8")[0]
    return out


def row_hashes(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """A uint64 hash per row of the row key (key columns, else features + label).

    Each column's bits are pre-mixed (xorshift), multiplied by a per-position odd
    constant and summed; the sum goes through the splitmix64 finaliser. Four
    vectorised passes per column keep this cheap enough to run at ingest.
    """
    names = list(spec.key) if spec.key else [*spec.features, spec.label]
    h = np.full(batch.num_rows, _SEED, dtype=np.uint64)
    scratch = np.empty(batch.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for index, name in enumerate(names):
            bits = _column_bits(batch.column(name))
            np.right_shift(bits, np.uint64(29), out=scratch)
            np.bitwise_xor(scratch, bits, out=scratch)
            np.multiply(scratch, _multiplier(index), out=scratch)
            np.add(h, scratch, out=h)
        return _mix(h)


def stored_hashes(batch: pa.RecordBatch | pa.Table) -> np.ndarray | None:
    """The row hashes ingest stored with the rows, when every row has one."""
    if ROW_HASH_COLUMN not in batch.schema.names:
        return None
    column = batch.column(ROW_HASH_COLUMN)
    if column.null_count:
        return None
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False).view(np.uint64)


def assign_splits(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Split code per row: TRAIN (0), VALIDATION (1) or TEST (2).

    Uses the hash column ingest stored when present, else hashes the key columns.
    """
    hashes = stored_hashes(batch)
    if hashes is None:
        hashes = row_hashes(batch, spec)
    # A row's point in [0, 1) is (hash >> 11) / 2**53; it is below a fraction f exactly
    # when the 53-bit integer is below ceil(f * 2**53), so two integer comparisons
    # decide the split with no float array (same assignment as the float form).
    train, val, _ = spec.split_fractions
    point = hashes >> np.uint64(11)
    codes = np.greater_equal(point, _threshold(train)).view(np.int8)
    codes += np.greater_equal(point, _threshold(train + val)).view(np.int8)
    return codes


def _threshold(fraction: float) -> np.uint64:
    """The smallest 53-bit integer whose point (integer / 2**53) is not below ``fraction``."""
    return np.uint64(min(max(math.ceil(fraction * float(1 << 53)), 0), 1 << 53))
