"""Split assignment is a function of the row key only."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from cnai.config import DatasetSpec
from cnai.splits import TEST, TRAIN, VALIDATION, assign_splits


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    spec = DatasetSpec()
    columns = {f: rng.integers(0, 17, rows).astype(np.float64) for f in spec.features}
    columns["label"] = rng.integers(0, 10, rows)
    return pa.table(columns)


def test_appending_rows_never_moves_existing_rows() -> None:
    spec = DatasetSpec()
    old = _table(2000, seed=1)
    both = pa.concat_tables([_table(500, seed=2), old])  # new rows first: positions change
    assert (assign_splits(both, spec)[500:] == assign_splits(old, spec)).all()


def test_fractions_are_respected() -> None:
    codes = assign_splits(_table(20000, seed=3), DatasetSpec())
    shares = np.bincount(codes, minlength=3) / len(codes)
    assert abs(shares[TRAIN] - 0.8) < 0.02
    assert abs(shares[VALIDATION] - 0.1) < 0.02
    assert abs(shares[TEST] - 0.1) < 0.02


def test_key_columns_decide_the_split() -> None:
    spec = DatasetSpec(key=("id",))
    base = _table(300, seed=4).append_column("id", pa.array([f"row-{i}" for i in range(300)]))
    changed = base.set_column(0, "pixel_0", pa.array(np.zeros(300)))
    assert (assign_splits(base, spec) == assign_splits(changed, spec)).all()


def test_a_stored_hash_maps_to_its_point_in_the_unit_interval() -> None:
    """The rule every version must keep: point = (hash >> 11) / 2**53, split by fraction.

    Hashes on either side of each boundary (0.8 and 0.8 + 0.1 = 0.9 with the default
    fractions, both inexact in binary) pin the comparison, so a row can never move
    split when the arithmetic is rewritten.
    """
    import math

    from cnai.config import ROW_HASH_COLUMN

    spec = DatasetSpec()
    train, val, _ = spec.split_fractions
    points, expected = [], []
    for bound, below, above in ((train, TRAIN, VALIDATION), (train + val, VALIDATION, TEST)):
        edge = math.ceil(bound * 2**53)
        for point in (edge - 2, edge - 1, edge, edge + 1):
            points.append(point)
            expected.append(below if point / 2**53 < bound else above)
    assert expected.count(TRAIN) == 2 and expected.count(TEST) == 2  # both sides covered
    low_bits = 0x7FF  # the 11 bits below the point never matter
    hashes = np.array([(p << 11) | low_bits for p in points], dtype=np.uint64)
    batch = pa.table({ROW_HASH_COLUMN: pa.array(hashes.view(np.int64))})
    assert assign_splits(batch, spec).tolist() == expected
