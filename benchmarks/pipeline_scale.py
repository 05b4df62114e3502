"""Benchmark: how `cnai run`'s time and peak memory grow with the number of rows.

Builds landing data with the digits schema (64 ``pixel_*`` doubles, ``label``
long) at 1x, 10x and 100x the 1,797 digits rows (the digits set repeated, with
small Gaussian noise on the pixels so rows are not exact copies) and runs the
whole pipeline on each in a fresh home: ingest, a 1-trial tune of 1 epoch, train
of 1 epoch with one worker, register. Each run is timed and its process tree's
summed RSS sampled (see ``benchmarks/pipeline_memory.py``).

The last line printed is one JSON object: ``ratio`` = wall time at the largest
scale / at 1x (``ours`` and ``baseline``), with every scale's seconds and peak MiB
and their growth factors against 1x. Linear growth in time would be a ratio equal
to the row factor; a ratio far below it means fixed costs still dominate.

Usage: ``.venv/bin/python benchmarks/pipeline_scale.py [--scales 1,10,100]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.pipeline_memory import MIB, cnai_run, run_sampled  # noqa: E402

EXPERIMENT = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: bench-scale}
spec:
  objective: {type: maximize, objectiveMetricName: val_accuracy}
  algorithm:
    algorithmName: random
    algorithmSettings: [{name: random_state, value: "3"}]
  parallelTrialCount: 1
  maxTrialCount: 1
  maxFailedTrialCount: 0
  parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.005", max: "0.01"}}
  - {name: epochs, parameterType: int, feasibleSpace: {min: "1", max: "1"}}
"""


def write_landing(landing: Path, scale: int, seed: int = 0) -> int:
    """Write ``scale`` x the digits rows (same schema) as one Parquet file; return rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    data = np.tile(digits.data, (scale, 1))
    if scale > 1:
        data = np.clip(data + rng.normal(0.0, 0.5, size=data.shape), 0.0, 16.0)
    labels = np.tile(digits.target, scale).astype(np.int64)
    columns: dict[str, Any] = {
        f"pixel_{i}": pa.array(data[:, i], type=pa.float64()) for i in range(64)
    }
    columns["label"] = pa.array(labels, type=pa.int64())
    landing.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), landing / "digits.parquet")
    return len(labels)


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline at each scale, print the growth."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10,100", help="comma-separated row factors")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    args = parser.parse_args(argv)
    scales = sorted({int(s) for s in args.scales.split(",")})
    if not scales or scales[0] < 1:
        raise SystemExit(f"--scales {args.scales!r}: positive integers, comma-separated")
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cnai-bench-scale-") as tmp:
        root = Path(tmp)
        experiment = root / "scale.yaml"
        experiment.write_text(EXPERIMENT)
        for scale in scales:
            home = root / f"x{scale}"
            rows = write_landing(home / "landing", scale)
            usage = run_sampled(cnai_run(home, experiment), args.interval)
            results[scale] = {
                "rows": rows,
                "seconds": round(usage.seconds, 2),
                "peak_mib": round(usage.peak_rss / MIB, 1),
            }
            print(
                f"{scale:>4}x ({rows} rows): {usage.seconds:.1f}s, "
                f"peak {usage.peak_rss / MIB:.0f} MiB",
                file=sys.stderr,
            )
    first, last = results[scales[0]], results[scales[-1]]
    for result in results.values():
        result["time_growth"] = round(result["seconds"] / first["seconds"], 3)
        result["memory_growth"] = round(result["peak_mib"] / first["peak_mib"], 3)
    print(
        json.dumps(
            {
                "benchmark": "pipeline_scale",
                "ratio": round(last["seconds"] / first["seconds"], 3),
                "ours": last["seconds"],
                "baseline": first["seconds"],
                "unit": f"s (cnai run at {scales[-1]}x vs {scales[0]}x the digits rows)",
                "memory_ratio": round(last["peak_mib"] / first["peak_mib"], 3),
                "scales": {f"{k}x": v for k, v in results.items()},
                "epochs": 1,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
