"""Benchmark: `cnai run` (compiled Argo YAML on the local engine) vs a plain script.

Both do the same work on a fresh home: ingest the default digits data, tune with
the same small Katib experiment (same trial budget), train the best parameters
with one worker, register the model. The baseline calls the four step functions
in one Python process with no orchestration. Then `cnai run` runs again with
nothing changed (every heavy task is skipped), which is timed on its own.

Targets: ratio (ours / baseline) <= 1.5; no-change re-run <= 5 s.
The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
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
    return {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "RAY_"))}


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def main() -> None:
    """Run both, print the comparison."""
    with tempfile.TemporaryDirectory(prefix="cnai-bench-") as tmp:
        root = Path(tmp)
        experiment = root / "bench.yaml"
        experiment.write_text(EXPERIMENT)
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
    print(
        json.dumps(
            {
                "benchmark": "pipeline",
                "ratio": round(ours / baseline, 3),
                "ours": round(ours, 2),
                "baseline": round(baseline, 2),
                "unit": "s",
                "target_ratio": 1.5,
                "no_change_rerun_seconds": round(rerun, 2),
                "target_no_change_rerun_seconds": 5.0,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
