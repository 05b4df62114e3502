"""Benchmark: early stopping saves trial-epochs without losing the best objective.

Runs the same random search (same seed, so the same configurations) twice on the
digits data through the real tune step: without early stopping (the baseline) and
with the chosen scheduler: ``asha`` (the default; a cnai extension, see
docs/tuning.md) or Katib's ``medianstop``. Prints both runs' total trial-epochs and
best objective, and as its last line one JSON object: ``ratio`` = trial-epochs
with early stopping / without (lower is better; the target is <= 0.4, i.e. >= 60%
fewer) and ``best_objective_delta`` (target <= 0.005).

Usage: ``.venv/bin/python benchmarks/tune_early_stopping.py [--trials N] [--epochs E]
[--scheduler asha|medianstop]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml


def spec(name: str, trials: int, epochs: int, scheduler: str | None) -> dict[str, Any]:
    """The search: lr over 3.7 decades (many slow learners), batch size and dropout."""
    body: dict[str, Any] = {
        "objective": {"type": "maximize", "objectiveMetricName": "val_accuracy"},
        "algorithm": {
            "algorithmName": "random",
            "algorithmSettings": [{"name": "random_state", "value": "11"}],
        },
        "parallelTrialCount": 2,
        "maxTrialCount": trials,
        "parameters": [
            {
                "name": "lr",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.00001", "max": "0.05", "distribution": "logUniform"},
            },
            {
                "name": "batch_size",
                "parameterType": "discrete",
                "feasibleSpace": {"list": ["32", "64"]},
            },
            {
                "name": "dropout",
                "parameterType": "double",
                "feasibleSpace": {"min": "0", "max": "0.4"},
            },
            {
                "name": "epochs",
                "parameterType": "discrete",
                "feasibleSpace": {"list": [str(epochs)]},
            },
        ],
    }
    if scheduler == "asha":
        body["earlyStopping"] = {
            "algorithmName": "asha",
            "algorithmSettings": [
                {"name": "grace_period", "value": "1"},
                {"name": "reduction_factor", "value": "3"},
            ],
        }
    elif scheduler == "medianstop":
        body["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "3"},
                # Katib's rule compares with completed trials' running averages from
                # step 1, a lenient bar: start at 1 so hopeless trials stop after one epoch.
                {"name": "start_step", "value": "1"},
            ],
        }
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": body,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both searches and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--scheduler", choices=("asha", "medianstop"), default="asha")
    args = parser.parse_args(argv)

    import ray

    from cnai.config import load_settings
    from cnai.ingest import ingest
    from cnai.progress import Progress
    from cnai.tuning.step import tune

    with tempfile.TemporaryDirectory(prefix="cnai-bench-tune-") as tmp:
        home = Path(tmp) / "home"
        settings = load_settings(home, environ={})
        ingest(settings=settings, progress=Progress(quiet=True))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        results: dict[str, dict[str, Any]] = {}
        try:
            for label, stop in (("without", None), ("with", args.scheduler)):
                path = Path(tmp) / f"{label}.yaml"
                path.write_text(
                    yaml.safe_dump(spec(f"bench-{label}", args.trials, args.epochs, stop))
                )
                started = time.perf_counter()
                out = tune(str(path), settings=settings, progress=Progress(quiet=True))
                out["seconds"] = time.perf_counter() - started
                results[label] = out
                print(
                    f"{label:>7} {args.scheduler}: {out['trial_epochs']} trial-epochs, "
                    f"best {out['objective_metric']} {out['best_objective']:.4f}, "
                    f"trials {out['trials']}, {out['seconds']:.0f}s",
                    file=sys.stderr,
                )
        finally:
            ray.shutdown()

    ours, baseline = results["with"], results["without"]
    delta = baseline["best_objective"] - ours["best_objective"]
    ratio = ours["trial_epochs"] / baseline["trial_epochs"]
    print(
        json.dumps(
            {
                "benchmark": "tune_early_stopping",
                "ratio": round(ratio, 4),
                "ours": ours["trial_epochs"],
                "baseline": baseline["trial_epochs"],
                "unit": "trial-epochs",
                "scheduler": args.scheduler,
                "saving": round(1 - ratio, 4),
                "best_objective_with": round(ours["best_objective"], 4),
                "best_objective_without": round(baseline["best_objective"], 4),
                "best_objective_delta": round(delta, 4),
                "early_stopped": ours["trials"]["early_stopped"],
                "trials": args.trials,
                "epochs_per_trial": args.epochs,
                "seconds_with": round(ours["seconds"], 1),
                "seconds_without": round(baseline["seconds"], 1),
                "target_ratio": 0.4,
                "target_best_objective_delta": 0.005,
                "meets_target": ratio <= 0.4 and delta <= 0.005,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
