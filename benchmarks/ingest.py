"""Ingest throughput and memory: ``cnai ingest`` vs plain read_table + PyIceberg append.

Writes N synthetic digits-shaped rows (default 2,000,000) as Parquet files, then, in
the same run and each in a fresh process and a fresh home:

- ours: ``cnai ingest --source DIR --json`` (fingerprinting, contract checks,
  streaming into data files, one snapshot);
- baseline: ``pyarrow.parquet.read_table`` of every file + ``Table.append`` into a
  table of the files' own schema in the same kind of catalog (no checks, no row
  hash, all in memory).

Prints rows/s and peak RSS of both; the last line is the JSON summary
(ratio = ours seconds / baseline seconds, lower is better).

    python benchmarks/ingest.py [--rows N] [--files K]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]

BASELINE = r"""
import sys, glob
import pyarrow as pa, pyarrow.parquet as pq
from pyiceberg.catalog import load_catalog
home, src = sys.argv[1], sys.argv[2]
catalog = load_catalog("bench", type="sql", uri=f"sqlite:///{home}/catalog.db",
                       warehouse=f"file://{home}/warehouse")
catalog.create_namespace("cnai")
data = pa.concat_tables(pq.read_table(f) for f in sorted(glob.glob(f"{src}/*.parquet")))
table = catalog.create_table("cnai.digits", schema=data.schema)
table.append(data)
print(data.num_rows)
"""


def write_sources(folder: Path, rows: int, files: int) -> None:
    """Synthetic digits-shaped Parquet files (integer pixels 0-16 as doubles)."""
    rng = np.random.default_rng(0)
    per_file = rows // files
    for index in range(files):
        n = per_file if index < files - 1 else rows - per_file * (files - 1)
        columns = {f"pixel_{i}": rng.integers(0, 17, n).astype(np.float64) for i in range(64)}
        columns["label"] = rng.integers(0, 10, n).astype(np.int64)
        pq.write_table(pa.table(columns), folder / f"part-{index:03d}.parquet")


def run_child(cmd: list[str]) -> tuple[float, int, str]:
    """Like :func:`timed` but reads the child's own peak RSS via wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{err.decode()}")
    return seconds, usage.ru_maxrss // 1024, out.decode()


def main() -> None:
    """Run both sides and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        print(f"writing {args.rows:,} rows in {args.files} files ...", file=sys.stderr)
        write_sources(src, args.rows, args.files)
        size_mib = sum(p.stat().st_size for p in src.iterdir()) / 2**20

        ours_s, ours_rss, out = run_child(
            [sys.executable, "-m", "cnai", "--home", str(root / "ours"),
             "ingest", "--source", str(src), "--json"]
        )  # fmt: skip
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["rows_added"] == args.rows, summary
        (root / "base").mkdir()
        base_s, base_rss, out = run_child(
            [sys.executable, "-c", BASELINE, str(root / "base"), str(src)]
        )
        assert int(out.strip()) == args.rows

    ours_rate, base_rate = args.rows / ours_s, args.rows / base_s
    print(f"source: {size_mib:.0f} MiB of Parquet", file=sys.stderr)
    print(f"cnai ingest : {ours_s:7.2f} s  {ours_rate:12,.0f} rows/s  peak RSS {ours_rss} MiB")
    print(f"baseline    : {base_s:7.2f} s  {base_rate:12,.0f} rows/s  peak RSS {base_rss} MiB")
    print(
        json.dumps(
            {
                "benchmark": "ingest",
                "rows": args.rows,
                "ratio": round(ours_s / base_s, 3),
                "ours": round(ours_s, 3),
                "baseline": round(base_s, 3),
                "unit": "s",
                "ours_rows_per_s": round(ours_rate),
                "baseline_rows_per_s": round(base_rate),
                "ours_peak_rss_mib": ours_rss,
                "baseline_peak_rss_mib": base_rss,
            }
        )
    )


if __name__ == "__main__":
    main()
