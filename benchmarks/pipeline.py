"""Benchmark: `cnai run` (compiled Argo YAML on the local engine) vs a plain script.

Both do the same work on a fresh home: ingest the default digits data, tune with
the same small Katib experiment (same trial budget), train the best parameters
with one worker, register the model. The baseline calls the four step functions
in one Python process with no orchestration. Then `cnai run` runs again with
nothing changed (every heavy task is skipped), which is timed on its own.

With ``--repeat N`` (default 3) the whole sequence (run, rerun, script) repeats N times
on fresh homes, the sides interleaved so that both see the same load over time, and the
medians are compared: on a shared machine a single pair can differ by 50% either way.

Targets: ratio (ours / baseline) <= 1.15; no-change re-run <= 1.5 s.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

EXPERIMENT = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: bench}
spec:
  objective: {type: maximize, objectiveMetricName: val_accuracy}
  algorithm:
    algorithmName: random
    algorithmSettings: [{name: random_state, value: "3"}]
  parallelTrialCount: 1
  maxTrialCount: 2
  maxFailedTrialCount: 0
  parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.002", max: "0.01"}}
  - {name: epochs, parameterType: int, feasibleSpace: {min: "2", max: "2"}}
"""

BASELINE = """
import sys
from cnai.config import load_settings
from cnai.progress import Progress
from cnai.ingest import ingest
from cnai.tuning.step import tune
from cnai.training.step import train
from cnai.registry.register import register

settings = load_settings(sys.argv[1], environ={})
quiet = Progress(quiet=True)
data = ingest(settings=settings, progress=quiet)
best = tune(sys.argv[2], snapshot_id=data["snapshot_id"], settings=settings, progress=quiet)
model = train(
    snapshot_id=data["snapshot_id"], workers=1, git_sha="bench", trigger="manual",
    settings=settings, progress=quiet, **best["best_params"],
)
register(model["run_id"], settings=settings, progress=quiet)
"""


def _env() -> dict[str, str]:
    """The caller's environment without cnai/Ray settings; the reference project's root on
    PYTHONPATH, as a plain script of the project needs it (its cnai.yaml names
    ``steps.datasets:digits``; ``cnai run`` puts the project on the path itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "RAY_"))}
    return {**env, "PYTHONPATH": str(REPO)}


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def _once(root: Path, experiment: Path) -> tuple[float, float, float]:
    """(cnai run, its no-change rerun, the plain script) seconds, on fresh homes in ``root``."""
    run = [
        sys.executable, "-m", "cnai", "--home", str(root / "ours"), "run",
        "-p", "workers=1", "-p", f"experiment={experiment}", "-p", "git_sha=bench",
    ]  # fmt: skip
    ours = _timed(run)
    print(f"cnai run: {ours:.1f}s", file=sys.stderr)
    rerun = _timed(run)
    print(f"cnai run, nothing changed: {rerun:.1f}s", file=sys.stderr)
    script = root / "baseline.py"
    script.write_text(BASELINE)
    baseline = _timed([sys.executable, str(script), str(root / "base"), str(experiment)])
    print(f"plain script: {baseline:.1f}s", file=sys.stderr)
    return ours, rerun, baseline


def main() -> None:
    """Run both ``--repeat`` times, print the comparison of the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = []
    loads = []
    with tempfile.TemporaryDirectory(prefix="cnai-bench-") as tmp:
        experiment = Path(tmp) / "bench.yaml"
        experiment.write_text(EXPERIMENT)
        for index in range(args.repeat):
            root = Path(tmp) / str(index)
            root.mkdir()
            loads.append(os.getloadavg()[0])
            results.append(_once(root, experiment))
    ours, rerun, baseline = (statistics.median(r[i] for r in results) for i in range(3))
    print(
        json.dumps(
            {
                "benchmark": "pipeline",
                "ratio": round(ours / baseline, 3),
                "ours": round(ours, 2),
                "baseline": round(baseline, 2),
                "unit": "s (medians)",
                "target_ratio": 1.15,
                "no_change_rerun_seconds": round(rerun, 2),
                "target_no_change_rerun_seconds": 1.5,
                "runs": [[round(x, 2) for x in r] for r in results],
                "pair_ratios": [round(r[0] / r[2], 3) for r in results],
                "repeat": args.repeat,
                "cpus": os.cpu_count(),
                "load_average_1m": [round(x, 2) for x in [*loads, os.getloadavg()[0]]],
            }
        )
    )


if __name__ == "__main__":
    main()
