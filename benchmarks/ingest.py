"""Ingest throughput and memory: ``cnai ingest`` vs plain read_table + PyIceberg append.

Writes N synthetic digits-shaped rows (default 2,000,000) as Parquet files, then, in
the same run and each in a fresh process and a fresh home:

- ours: ``cnai ingest --source DIR --json`` (fingerprinting, contract checks,
  streaming into data files, one snapshot);
- baseline: ``pyarrow.parquet.read_table`` of every file + ``Table.append`` into a
  table of the files' own schema in the same kind of catalog (no checks, no row
  hash, all in memory).

The two sides run ``--repeats`` times (default 3), interleaved and alternating which
goes first, so a change in the machine's load hits both alike; the figures are
medians. Prints rows/s, peak RSS and CPU seconds of both; the last line is the JSON
summary (ratio = ours seconds / baseline seconds, lower is better; throughput ratio
is its inverse).

    python benchmarks/ingest.py [--rows N] [--files K] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    per_file = rows // files
    for index in range(files):
        n = per_file if index < files - 1 else rows - per_file * (files - 1)
        columns = {f"pixel_{i}": rng.integers(0, 17, n).astype(np.float64) for i in range(64)}
        columns["label"] = rng.integers(0, 10, n).astype(np.int64)
        pq.write_table(pa.table(columns), folder / f"part-{index:03d}.parquet")


def run_child(cmd: list[str]) -> tuple[float, int, float, str]:
    """Wall seconds, the child's own peak RSS (MiB, via wait4), its CPU seconds, stdout.

    Dirty pages are flushed first (``os.sync``): the side that ran before wrote a
    table's worth of data files, and the kernel writing them back during the next
    side's run slowed that side (ours by up to 1.5x when it followed the baseline).
    """
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{err.decode()}")
    return seconds, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime, out.decode()


def run_ours(root: Path, src: Path, rows: int) -> tuple[float, int, float]:
    """``cnai ingest`` of every source file into a fresh home."""
    home = root / "ours"
    shutil.rmtree(home, ignore_errors=True)
    seconds, rss, cpu, out = run_child(
        [
            sys.executable,
            "-m",
            "cnai",
            "--home",
            str(home),
            "ingest",
            "--source",
            str(src),
            "--json",
        ]
    )
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["rows_added"] == rows, summary
    return seconds, rss, cpu


def run_baseline(root: Path, src: Path, rows: int) -> tuple[float, int, float]:
    """read_table + PyIceberg append of every source file into a fresh catalog."""
    home = root / "base"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    seconds, rss, cpu, out = run_child([sys.executable, "-c", BASELINE, str(home), str(src)])
    assert int(out.strip()) == rows
    return seconds, rss, cpu


def main() -> None:
    """Run both sides and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ours: list[tuple[float, int, float]] = []
    base: list[tuple[float, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        print(f"writing {args.rows:,} rows in {args.files} files ...", file=sys.stderr)
        # In a spawned process: a child's peak RSS (wait4) is never below its parent's
        # RSS when it was forked, so this process stays small (stdlib only) and the
        # children's figures are their own.
        writer = multiprocessing.get_context("spawn").Process(
            target=write_sources, args=(src, args.rows, args.files)
        )
        writer.start()
        writer.join()
        assert writer.exitcode == 0, "writing the sources failed"
        size_mib = sum(p.stat().st_size for p in src.iterdir()) / 2**20
        for round_ in range(args.repeats):
            sides = [(run_ours, ours), (run_baseline, base)]
            for run, into in sides if round_ % 2 == 0 else sides[::-1]:
                into.append(run(root, src, args.rows))

    def med(results: list[tuple[float, int, float]], field: int) -> float:
        return statistics.median(r[field] for r in results)

    ours_s, base_s = med(ours, 0), med(base, 0)
    ours_rss, base_rss = int(med(ours, 1)), int(med(base, 1))
    ours_rate, base_rate = args.rows / ours_s, args.rows / base_s
    print(f"source: {size_mib:.0f} MiB of Parquet", file=sys.stderr)
    for name, secs, rate, rss, cpu in (
        ("cnai ingest", ours_s, ours_rate, ours_rss, med(ours, 2)),
        ("baseline", base_s, base_rate, base_rss, med(base, 2)),
    ):
        print(
            f"{name:12s}: {secs:7.2f} s  {rate:12,.0f} rows/s  peak RSS {rss} MiB  CPU {cpu:.2f} s"
        )
    print(
        json.dumps(
            {
                "benchmark": "ingest",
                "rows": args.rows,
                "ratio": round(ours_s / base_s, 3),
                "ours": round(ours_s, 3),
                "baseline": round(base_s, 3),
                "unit": "s",
                "throughput_ratio": round(ours_rate / base_rate, 3),
                "ours_rows_per_s": round(ours_rate),
                "baseline_rows_per_s": round(base_rate),
                "ours_peak_rss_mib": ours_rss,
                "baseline_peak_rss_mib": base_rss,
                "rss_ratio": round(ours_rss / base_rss, 3),
                "ours_cpu_s": round(med(ours, 2), 2),
                "baseline_cpu_s": round(med(base, 2), 2),
                "seconds_per_round": [
                    [round(o[0], 2), round(b[0], 2)] for o, b in zip(ours, base, strict=True)
                ],
                "ratios_per_round": [
                    round(o[0] / b[0], 3) for o, b in zip(ours, base, strict=True)
                ],
                "repeats": args.repeats,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
