"""The reference project's sample data, written into an empty landing folder."""

from __future__ import annotations

from pathlib import Path

SAMPLE_FILE = "digits.parquet"
"""File the digits sample is written to, inside the landing folder."""


def digits(landing: Path) -> Path:
    """Write scikit-learn's digits set (64 ``pixel_i`` doubles, ``label`` 0-9) into ``landing``.

    Returns the file written. Configured as ``dataset.sample`` in the reference
    project's ``cnai.yaml``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    data = load_digits()
    columns = {f"pixel_{i}": pa.array(data.data[:, i], type=pa.float64()) for i in range(64)}
    columns["label"] = pa.array(data.target, type=pa.int64())
    path = Path(landing) / SAMPLE_FILE
    pq.write_table(pa.table(columns), path)
    return path
