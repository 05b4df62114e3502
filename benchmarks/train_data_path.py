"""Training data path: Iceberg snapshot -> per-worker tensors vs a raw Parquet read.

Builds a synthetic digits-shaped Iceberg table (``--rows`` rows in ``--files``
data files, registered with PyIceberg's ``add_files``), then measures in the same run:

- baseline: ``pyarrow.parquet.read_table`` of the same data files (Arrow only);
- ours, 1 worker: :func:`cnai.training.data.plan_partitions` +
  :func:`cnai.training.data.load_partition` - catalog look-up at the snapshot,
  column-group reads, split assignment from the stored row hash, a feature-major
  float32 block, labels and split positions, ready for ``torch.from_numpy``;
- reference, read + convert: the same reads, each file's feature columns then
  turned into a row-major float32 array with plain numpy (reported, not the
  ratio's baseline);
- ours, 2 workers: two processes each loading its own partition at the same time
  (after their imports, each round started together); throughput = rows / the
  slowest worker, median over the rounds;
- a cold worker: each side in a fresh process (imports done, files in the page
  cache, no memory yet), holding what it read until the clock stops, as a
  training worker loads once; median over the rounds.

The ratio's two sides are measured warm, round by round, in alternating order:
imports done, files in the page cache, each allocator holding memory from the
round before; ``--repeats`` rounds in each of ``--processes`` fresh interpreters,
medians over all rounds. One process's ratio differed from the next one's by up to
10% (allocator and thread state), more than rounds within a process differ. The
read + convert reference runs in rounds of its own: run between them, its numpy
allocations slowed whichever side came next (ours by about 7% at 1M rows on this
project's 2-core machine, docs/performance.md).

Ours hands the model a feature-major tensor, so the transpose a row-major array
needs is never done; its cost moves into each batch's row gather. The benchmark
measures that too: microseconds to gather one training batch from each layout
(``batch_gather_us_*``) beside one step of the default model (``train_step_us``).

The last line is the JSON summary: ratio = ours (1 worker) rows/s over baseline
rows/s (higher is better; target >= 0.9), plus the 1 -> 2 worker scaling and the
cold-worker seconds of each side.

    python benchmarks/train_data_path.py [--rows 1000000] [--files 8] [--repeats 11]
        [--processes 3]
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def build_table(home: Path, rows: int, files: int) -> None:
    """A cnai.digits table holding ``rows`` synthetic rows in ``files`` files (run in a
    process of its own; the files are ``home/data/*.parquet``)."""
    from cnai.catalog import arrow_schema, ensure_table, open_catalog, source_schema
    from cnai.config import load_settings
    from cnai.splits import row_hashes

    settings = load_settings(home, environ={})
    table = ensure_table(open_catalog(settings), settings.dataset)
    schema = arrow_schema(settings.dataset)
    rng = np.random.default_rng(0)
    folder = home / "data"
    folder.mkdir()
    per_file = rows // files
    paths = []
    for index in range(files):
        n = per_file if index < files - 1 else rows - per_file * (files - 1)
        columns = [rng.integers(0, 17, n).astype(np.float64) for _ in range(64)]
        columns.append(rng.integers(0, 10, n).astype(np.int64))
        source = pa.Table.from_arrays(columns, schema=source_schema(settings.dataset))
        hashes = pa.array(row_hashes(source, settings.dataset).view(np.int64))  # as ingest does
        path = folder / f"part-{index:03d}.parquet"
        pq.write_table(pa.Table.from_arrays([*columns, hashes], schema=schema), path)
        paths.append(path.as_uri())
    with table.transaction() as tx:
        tx.add_files(paths, check_duplicate_files=False)


def time_baseline(paths: list[str]) -> float:
    """Seconds to read every data file with pyarrow.parquet.read_table, holding them all.

    The tables are kept until the clock stops, as ours keeps its arrays: a loader
    holds what it read (reading a file and dropping it before the next let the
    baseline reuse one file's worth of memory over and over).
    """
    start = time.perf_counter()
    tables = [pq.read_table(p) for p in paths]
    seconds = time.perf_counter() - start
    assert sum(t.num_rows for t in tables) > 0
    return seconds


def time_read_and_convert(paths: list[str], features: list[str]) -> float:
    """Seconds to read every data file and make its features a row-major float32 array."""
    start = time.perf_counter()
    rows = 0
    for path in paths:
        table = pq.read_table(path)
        columns = np.array([table.column(name).to_numpy() for name in features], np.float32)
        rows += len(np.ascontiguousarray(columns.T))
    seconds = time.perf_counter() - start
    assert rows > 0
    return seconds


def time_ours(home: Path, world_size: int, rank: int) -> tuple[float, int]:
    """Seconds and rows for rank ``rank`` of ``world_size`` to load its partition."""
    from cnai.config import load_settings
    from cnai.training.data import load_partition, plan_partitions

    settings = load_settings(home, environ={})
    start = time.perf_counter()
    plan = plan_partitions(settings, world_size)
    data = load_partition(settings, plan, rank)
    seconds = time.perf_counter() - start
    rows = sum(data.rows(s) for s in ("train", "validation", "test"))
    return seconds, rows


def _worker(home: str, rank: int, rounds: int, barrier: Any, out: Any) -> None:
    import torch  # noqa: F401 - import cost is outside the timed region, as in a worker

    time_ours(Path(home), 2, rank)  # warm imports and the page cache
    for _ in range(rounds):
        barrier.wait()  # both ranks start each round together
        out.put((rank, *time_ours(Path(home), 2, rank)))


def time_two_workers(home: Path, rounds: int) -> tuple[float, int]:
    """Median wall seconds until both of 2 concurrent workers hold their partitions."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(home), r, rounds, barrier, out)) for r in range(2)
    ]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in range(2 * rounds)]
    for proc in procs:
        proc.join()
    seconds = [[s for r, s, _ in results if r == rank] for rank in range(2)]
    rows = {r: n for r, _, n in results}  # a rank's partition is the same every round
    walls = [max(pair) for pair in zip(*seconds, strict=True)]
    return statistics.median(walls), sum(rows.values())


def alternating(rounds: int) -> Iterator[str]:
    """``"baseline"`` and ``"ours"``, ``rounds`` times each, alternating which goes first."""
    for round_ in range(rounds):
        yield from ("baseline", "ours") if round_ % 2 == 0 else ("ours", "baseline")


def warm_rounds(home: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds of each side over ``rounds`` warm rounds in this process, sides alternating."""
    paths = sorted(glob.glob(f"{home}/data/*.parquet"))
    for _ in range(3):  # warm imports, the page cache and the allocators for every side
        time_ours(home, 1, 0)
        time_baseline(paths)
    out: dict[str, list[float]] = {"baseline": [], "ours": []}
    for side in alternating(rounds):
        if side == "baseline":
            out[side].append(time_baseline(paths))
        else:
            out[side].append(time_ours(home, 1, 0)[0])
    return out


def time_warm(home: Path, rounds: int) -> dict[str, list[float]]:
    """:func:`warm_rounds` in a new interpreter (its own allocator and thread state)."""
    done = subprocess.run(
        [sys.executable, __file__, "--warm", str(rounds), "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cold_child(home: Path, side: str) -> float:
    """In a fresh process: seconds for ``side`` to load everything, holding it at the end."""
    import pyiceberg.catalog.sql
    import pyiceberg.io.pyarrow  # noqa: F401 - every import is paid before the clock starts

    from cnai.config import load_settings
    from cnai.training.data import load_partition, plan_partitions

    settings = load_settings(home, environ={})
    paths = sorted(glob.glob(f"{home}/data/*.parquet"))
    start = time.perf_counter()
    if side == "baseline":
        held: object = [pq.read_table(p) for p in paths]
    else:
        held = load_partition(settings, plan_partitions(settings, 1), 0)
    seconds = time.perf_counter() - start
    assert held is not None
    return seconds


def time_cold(home: Path, side: str) -> float:
    """Seconds :func:`cold_child` reports for ``side`` from a new interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--cold", side, "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def time_batch_gathers(home: Path, batches: int = 2000) -> dict[str, float]:
    """Microseconds per training batch gathered from each layout, and per training step.

    Batches are the loop's: ``TrainConfig().batch_size`` random rows of the whole
    partition, indexed from the tensor the epoch loop holds. The default model's
    step (forward, backward, Adam) is timed on the same batches for scale.
    """
    import torch

    from cnai.config import load_settings
    from cnai.training.data import load_partition, plan_partitions
    from cnai.training.loop import TrainConfig, build_model

    settings = load_settings(home, environ={})
    spec = settings.dataset
    config = TrainConfig()
    data = load_partition(settings, plan_partitions(settings, 1), 0)
    layouts = {
        "feature_major": torch.from_numpy(data.features),
        "row_major": torch.from_numpy(np.ascontiguousarray(data.features)),
    }
    generator = torch.Generator().manual_seed(0)
    rows = len(data.labels)
    index = [torch.randint(rows, (config.batch_size,), generator=generator) for _ in range(batches)]
    out: dict[str, float] = {}
    for _ in range(2):  # the second pass is the one kept (warm caches and allocator)
        for name, tensor in layouts.items():
            shaped = tensor.reshape(-1, *spec.feature_shape)
            start = time.perf_counter()
            for batch in index:
                shaped[batch]
            out[f"batch_gather_us_{name}"] = (time.perf_counter() - start) / batches * 1e6
    model = build_model(config, spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    labels = torch.from_numpy(data.labels)
    shaped = layouts["row_major"].reshape(-1, *spec.feature_shape)
    steps = index[:200]
    start = time.perf_counter()
    for batch in steps:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(shaped[batch]), labels[batch]).backward()
        optimizer.step()
    out["train_step_us"] = (time.perf_counter() - start) / len(steps) * 1e6
    return out


def main() -> None:
    """Build the table, run every side and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument(
        "--processes", type=int, default=3, help="fresh processes for the warm rounds"
    )
    parser.add_argument("--cold", choices=("baseline", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold:  # one cold-worker measurement, in the process time_cold started
        print(cold_child(args.home, args.cold))
        return
    if args.warm:  # the warm rounds, in the process time_warm started
        print(json.dumps(warm_rounds(args.home, args.warm)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        # The table is written by another process, then flushed to disk: the writer's
        # memory and the kernel's write-back of fresh files stay out of the rounds.
        builder = mp.get_context("spawn").Process(
            target=build_table, args=(home, args.rows, args.files)
        )
        builder.start()
        builder.join()
        assert builder.exitcode == 0, f"building the table failed ({builder.exitcode})"
        os.sync()
        paths = sorted(glob.glob(f"{home}/data/*.parquet"))
        from cnai.config import load_settings

        features = list(load_settings(home, environ={}).dataset.features)
        baseline: list[float] = []
        ours: list[float] = []
        per_process = []
        for _ in range(args.processes):
            warm = time_warm(home, args.repeats)
            baseline += warm["baseline"]
            ours += warm["ours"]
            per_process.append(
                statistics.median(warm["baseline"]) / statistics.median(warm["ours"])
            )
        assert time_ours(home, 1, 0)[1] == args.rows  # every row loaded, none twice
        converted = []
        for _ in range(args.repeats):
            converted.append(time_read_and_convert(paths, features))
        two, two_rows = time_two_workers(home, args.repeats)
        assert two_rows == args.rows
        cold: dict[str, list[float]] = {"baseline": [], "ours": []}
        for side in alternating(max(3, args.repeats // 2)):
            cold[side].append(time_cold(home, side))
        gathers = time_batch_gathers(home)

    base_rps = args.rows / statistics.median(baseline)
    ours_rps = args.rows / statistics.median(ours)
    two_rps = args.rows / two
    converted_rps = args.rows / statistics.median(converted)
    print(f"baseline read_table: {base_rps:,.0f} rows/s")
    print(f"read + convert:      {converted_rps:,.0f} rows/s")
    print(f"ours, 1 worker:      {ours_rps:,.0f} rows/s")
    print(f"ours, 2 workers:     {two_rps:,.0f} rows/s (both partitions loaded)")
    cold_base, cold_ours = (statistics.median(cold[side]) for side in ("baseline", "ours"))
    print(f"cold worker:         ours {cold_ours:.3f} s, read_table held {cold_base:.3f} s")
    print(
        f"one batch gathered: feature-major {gathers['batch_gather_us_feature_major']:.1f} us, "
        f"row-major {gathers['batch_gather_us_row_major']:.1f} us; "
        f"one default training step {gathers['train_step_us']:.0f} us"
    )
    print(
        json.dumps(
            {
                "benchmark": "train_data_path",
                "ratio": round(ours_rps / base_rps, 3),
                "higher_is_better": True,
                "ours": round(ours_rps),
                "baseline": round(base_rps),
                "unit": "rows/s",
                "ratios_per_process": [round(r, 3) for r in per_process],
                "read_and_convert_rows_per_s": round(converted_rps),
                "ratio_vs_read_and_convert": round(ours_rps / converted_rps, 3),
                "two_workers_rows_per_s": round(two_rps),
                "scaling_1_to_2_workers": round(two_rps / ours_rps, 3),
                "cold_worker_seconds": round(cold_ours, 3),
                "cold_worker_baseline_seconds": round(cold_base, 3),
                "cold_worker_ratio": round(cold_base / cold_ours, 3),
                **{key: round(value, 1) for key, value in gathers.items()},
                "rows": args.rows,
                "files": args.files,
                "repeats": args.repeats,
                "processes": args.processes,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
