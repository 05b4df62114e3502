"""The tune step end to end: real Ray Tune trials through the train step, real MLflow.

Every experiment runs on the session's Ray runtime and ingested digits home, with
tiny budgets (1-3 epochs, few trials); the default spec runs once, through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.config import Settings, load_settings
from cnai.errors import CnaiError
from cnai.progress import Progress
from cnai.tuning.mlflow_log import TUNE_EXPERIMENT
from cnai.tuning.step import tune
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

TRIAL_KEYS = {"succeeded", "early_stopped", "failed", "killed"}


def experiment(
    name: str,
    algorithm: str,
    parameters: list[dict[str, Any]],
    *,
    settings: list[tuple[str, str]] = (),  # type: ignore[assignment]
    **spec: Any,
) -> dict[str, Any]:
    """A Katib Experiment whose parameter names are the train hyperparameters."""
    body: dict[str, Any] = {
        "objective": {"type": "maximize", "objectiveMetricName": "val_accuracy"},
        "algorithm": {
            "algorithmName": algorithm,
            "algorithmSettings": [{"name": k, "value": v} for k, v in settings],
        },
        "parameters": parameters,
    }
    body.update(spec)
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": body,
    }


def double(name: str, low: str, high: str, **extra: str) -> dict[str, Any]:
    return {
        "name": name,
        "parameterType": "double",
        "feasibleSpace": {"min": low, "max": high, **extra},
    }


def listed(name: str, kind: str, *values: str) -> dict[str, Any]:
    return {"name": name, "parameterType": kind, "feasibleSpace": {"list": list(values)}}


@pytest.fixture
def settings(digits_home: Path, ray_address: str) -> Settings:
    """Settings of the session's digits home (Ray is already up in this process)."""
    return load_settings(digits_home, environ={})


def run(tmp_path: Path, settings: Settings, spec: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / f"{spec['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return tune(str(path), settings=settings, progress=Progress(quiet=True))


def child_runs(settings: Settings, parent_run_id: str) -> list[Any]:
    """The trial runs of a parent, in trial order."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    experiment_id = client.get_experiment_by_name(TUNE_EXPERIMENT).experiment_id
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    return sorted(runs, key=lambda r: int(r.data.tags["cnai.tune.trial_number"]))


def test_random_search_every_parameter_type_and_medianstop(
    tmp_path: Path, settings: Settings
) -> None:
    spec = experiment(
        "random-types",
        "random",
        [
            double("lr", "0.0003", "0.03", distribution="logUniform"),
            {
                "name": "hidden",
                "parameterType": "int",
                "feasibleSpace": {"min": "16", "max": "64", "step": "16"},
            },
            listed("channels", "categorical", "4", "8"),
            listed("batch_size", "discrete", "32", "64"),
            listed("epochs", "discrete", "3"),
        ],
        settings=[("random_state", "7")],
        earlyStopping={
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"},
                {"name": "start_step", "value": "1"},
            ],
        },
        maxTrialCount=12,
        parallelTrialCount=2,
    )
    result = run(tmp_path, settings, spec)

    trials = result["trials"]
    assert set(trials) == TRIAL_KEYS
    assert sum(trials.values()) == 12 and trials["failed"] == 0 and trials["killed"] == 0
    assert trials["early_stopped"] >= 1
    assert set(result["best_params"]) == {"lr", "hidden", "channels", "batch_size", "epochs"}
    assert result["parallelism"]["effective"] <= result["parallelism"]["cpus_available"]

    runs = child_runs(settings, result["parent_run_id"])
    assert len(runs) == 12
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    statuses = [r.data.tags["cnai.trial_status"] for r in runs]
    assert statuses.count("early_stopped") == trials["early_stopped"]
    for run_ in runs:
        params = run_.data.params
        assert 0.0003 <= float(params["lr"]) <= 0.03
        assert params["hidden"] in {"16", "32", "48", "64"}
        assert params["channels"] in {"4", "8"} and params["batch_size"] in {"32", "64"}
        history = client.get_metric_history(run_.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        if run_.data.tags["cnai.trial_status"] == "early_stopped":
            assert len(history) < 3
        else:
            assert len(history) == 3 and run_.info.status == "FINISHED"

    parent = result["parent_run_id"]
    best = json.loads(
        Path(client.download_artifacts(parent, "best_params.json", str(tmp_path))).read_text()
    )
    assert best["best_params"] == result["best_params"]
    assert best["best_objective"] == pytest.approx(result["best_objective"])
    plots = Path(client.download_artifacts(parent, "plots", str(tmp_path)))
    pngs = sorted(p.name for p in plots.iterdir())
    assert pngs == ["learning_curves.png", "objective_per_trial.png", "parallel_coordinates.png"]
    assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_asha_stops_trials_at_its_rungs_and_logs_them(tmp_path: Path, settings: Settings) -> None:
    spec = experiment(
        "random-asha",
        "random",
        [
            double("lr", "0.00001", "0.03", distribution="logUniform"),
            listed("epochs", "discrete", "3"),
        ],
        settings=[("random_state", "5")],
        earlyStopping={
            "algorithmName": "asha",
            "algorithmSettings": [
                {"name": "grace_period", "value": "1"},
                {"name": "reduction_factor", "value": "2"},
            ],
        },
        maxTrialCount=6,
        parallelTrialCount=2,
    )
    result = run(tmp_path, settings, spec)

    trials = result["trials"]
    assert sum(trials.values()) == 6 and trials["failed"] == 0 and trials["killed"] == 0
    assert trials["early_stopped"] >= 1 and trials["succeeded"] >= 1
    assert result["trial_epochs"] < 6 * 3
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    for run_ in child_runs(settings, result["parent_run_id"]):
        history = client.get_metric_history(run_.info.run_id, "val_accuracy")
        if run_.data.tags["cnai.trial_status"] == "early_stopped":
            assert len(history) in (1, 2)  # stopped at rung 1 or 2, never at its last epoch
        else:
            assert len(history) == 3
    parent = client.get_run(result["parent_run_id"])
    assert parent.data.params["early_stopping"] == "asha"


def test_grid_runs_the_grid_in_order_up_to_max_trial_count(
    tmp_path: Path, settings: Settings
) -> None:
    spec = experiment(
        "grid",
        "grid",
        [
            double("lr", "0.005", "0.01", step="0.005"),
            listed("batch_size", "discrete", "32", "64"),
            listed("epochs", "discrete", "1"),
        ],
        maxTrialCount=3,
        parallelTrialCount=1,
    )
    result = run(tmp_path, settings, spec)
    assert result["trials"] == {"succeeded": 3, "early_stopped": 0, "failed": 0, "killed": 0}
    seen = [
        (float(r.data.params["lr"]), r.data.params["batch_size"])
        for r in child_runs(settings, result["parent_run_id"])
    ]
    assert seen == [(0.005, "32"), (0.005, "64"), (0.01, "32")]


@pytest.mark.parametrize(
    ("algorithm", "options"),
    [("tpe", [("n_startup_trials", "1")]), ("bayesianoptimization", [("n_initial_points", "1")])],
)
def test_model_based_algorithms_search_within_the_space(
    tmp_path: Path, settings: Settings, algorithm: str, options: list[tuple[str, str]]
) -> None:
    spec = experiment(
        algorithm,
        algorithm,
        [
            double("lr", "0.001", "0.03", distribution="logUniform"),
            double("dropout", "0.0", "0.3"),
            listed("batch_size", "discrete", "32", "64"),
            listed("epochs", "discrete", "1"),
        ],
        settings=[("random_state", "3"), *options],
        maxTrialCount=3,
        parallelTrialCount=1,
    )
    result = run(tmp_path, settings, spec)
    assert result["algorithm"] == algorithm
    assert result["trials"]["succeeded"] == 3
    runs = child_runs(settings, result["parent_run_id"])
    configs = {(r.data.params["lr"], r.data.params["dropout"]) for r in runs}
    assert len(configs) == 3  # the sampler proposed three different points
    for run_ in runs:
        assert 0.001 <= float(run_.data.params["lr"]) <= 0.03
        assert 0.0 <= float(run_.data.params["dropout"]) <= 0.3
    assert 0.0 < result["best_objective"] <= 1.0


def test_goal_reached_ends_the_experiment(tmp_path: Path, settings: Settings) -> None:
    spec = experiment(
        "goal",
        "random",
        [double("lr", "0.005", "0.01"), listed("epochs", "discrete", "2")],
        settings=[("random_state", "1")],
        objective={"type": "maximize", "objectiveMetricName": "val_accuracy", "goal": 0.3},
        maxTrialCount=6,
        parallelTrialCount=1,
    )
    result = run(tmp_path, settings, spec)
    assert result["goal_reached"] is True
    assert result["best_objective"] >= 0.3
    assert result["trials"] == {"succeeded": 1, "early_stopped": 0, "failed": 0, "killed": 0}


def test_failed_trials_beyond_the_budget_fail_the_experiment(
    tmp_path: Path, settings: Settings
) -> None:
    from mlflow import MlflowClient

    spec = experiment(
        "failing",
        "random",
        [listed("lr", "discrete", "-1"), listed("epochs", "discrete", "1")],
        maxTrialCount=4,
        maxFailedTrialCount=1,
        parallelTrialCount=1,
    )
    with pytest.raises(CnaiError) as info:
        run(tmp_path, settings, spec)
    assert info.value.exit_code == 1
    assert "maxFailedTrialCount 1" in str(info.value) and "--lr -1.0" in str(info.value)
    data = info.value.data
    assert data is not None
    assert data["trials"] == {"succeeded": 0, "early_stopped": 0, "failed": 2, "killed": 0}
    parent = MlflowClient(settings.mlflow_tracking_uri).get_run(data["parent_run_id"])
    assert parent.info.status == "FAILED"


def test_exported_trial_command_trains_and_prints_katib_metrics(digits_home: Path) -> None:
    """The container command of the exported Katib trial, run as a real process."""
    import os
    import re
    import subprocess
    import sys

    from cnai.tuning.katib import METRICS_FORMAT, export_katib
    from cnai.tuning.step import load

    job = export_katib(load())["spec"]["trialTemplate"]["trialSpec"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    values = {"lr": "0.01", "batch_size": "64", "dropout": "0.1", "epochs": "2"}
    args = [
        re.sub(r"\$\{trialParameters\.(\w+)\}", lambda m: values[m[1]], a)
        for a in container["args"]
    ]
    command = [sys.executable, *container["command"][1:], *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    env["CNAI_HOME"] = str(digits_home)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "val_accuracy" in line]
    assert len(lines) == 2
    parsed = [
        dict(re.findall(METRICS_FORMAT, line.split(" ", 1)[1])[i][:2] for i in range(4))
        for line in lines
    ]
    assert [p["epoch"] for p in parsed] == ["1", "2"]
    assert all(0.0 < float(p["val_accuracy"]) <= 1.0 for p in parsed)


def test_default_spec_through_the_cli_reaches_095(digits_home: Path, ray_address: str) -> None:
    from cnai.tuning.step import load

    result = run_cli(["tune", "--json"], digits_home, env={"RAY_ADDRESS": ray_address})
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.json()
    assert {
        "best_params",
        "best_objective",
        "objective_metric",
        "goal_reached",
        "trials",
        "parent_run_id",
    } <= set(out)
    assert out["objective_metric"] == "val_accuracy"
    assert out["best_objective"] >= 0.95
    assert 1 <= sum(out["trials"].values()) <= load().max_trial_count
    assert "CPU(s) free" in result.stderr  # the concurrency actually used is reported
