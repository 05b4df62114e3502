"""Deterministic train / validation / test assignment by a stable hash of each row's key.

A row's split depends only on its key (the declared key columns, or else its
feature and label values), never on its position or on what else is in the table,
so appending data never moves an existing row to another split. The train step and
the register step's evaluation both use this, so "the test split of snapshot S"
means the same rows everywhere.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from cnai.config import DatasetSpec

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (wrapping uint64 arithmetic)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _column_bits(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64 stable bits per value of one column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64) + 0.0  # -0.0 -> 0.0
        return values.view(np.uint64)
    # Strings and anything else: a real hash of the text form (keys are usually short).
    out = np.empty(len(column), dtype=np.uint64)
    for i, value in enumerate(column.to_pylist()):
        digest = hashlib.blake2b(str(value).encode(), digest_size=8).digest()
        out[i] = np.frombuffer(digest, dtype="<u8")[0]
    return out


def row_hashes(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """A uint64 hash per row of the row key (key columns, else features + label)."""
    names = list(spec.key) if spec.key else [*spec.features, spec.label]
    h = np.full(batch.num_rows, np.uint64(0x243F6A8885A308D3), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for index, name in enumerate(names):
            bits = _column_bits(batch.column(name))
            h = _mix(h ^ (bits + _GOLDEN * np.uint64(index + 1)))
    return h


def assign_splits(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec) -> np.ndarray:
    """Split code per row: TRAIN (0), VALIDATION (1) or TEST (2)."""
    unit = (row_hashes(batch, spec) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    train, val, _ = spec.split_fractions
    codes = np.full(batch.num_rows, TEST, dtype=np.int8)
    codes[unit < train + val] = VALIDATION
    codes[unit < train] = TRAIN
    return codes
