"""docs/walkthrough.md as a test: a project folder outside this repository brings its own
data (scikit-learn's wine, as CSV), its own tabular model factory, its own Katib
experiment and its own configuration, and takes them through ``cnai ingest`` ->
``cnai tune`` -> ``cnai train --hparam`` -> ``cnai register`` with the CLI run as
subprocesses from that folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

FEATURES = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280_od315_of_diluted_wines",
    "proline",
)
"""scikit-learn's wine feature names ('/' replaced by '_')."""

PYPROJECT = """\
[project]
name = "wine-project"
version = "0.1.0"
requires-python = ">=3.11"

[tool.cnai]
config = "cnai.yaml"
pipelines = { wine = "wine_pipeline:pipeline" }
default-pipeline = "wine"
"""

CNAI_YAML = f"""\
dataset:
  table: wine.samples
  features: [{", ".join(FEATURES)}]
  label: cultivar
  label_type: long
  classes: [0, 1, 2]
train:
  model_factory: wine_models:tabular_mlp
tune:
  experiment: experiments/wine.yaml
"""

MODELS = '''\
"""The wine project's model: a small MLP for 13 numeric features."""

from torch import nn


def tabular_mlp(
    hidden: int = 32,
    dropout: float = 0.1,
    input_shape: tuple[int, ...] = (1, 13),
    num_classes: int = 3,
) -> nn.Module:
    """Batch-normalised inputs, one hidden layer, dropout, one logit per class."""
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(
        nn.Flatten(),
        nn.BatchNorm1d(features),
        nn.Linear(features, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )
'''

EXPERIMENT = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: wine-mlp
spec:
  objective:
    type: maximize
    objectiveMetricName: val_accuracy
  algorithm:
    algorithmName: random
    algorithmSettings:
      - name: random_state
        value: "7"
  parallelTrialCount: 1
  maxTrialCount: 3
  parameters:
    - name: hidden
      parameterType: discrete
      feasibleSpace:
        list: ["16", "32", "64"]
    - name: dropout
      parameterType: double
      feasibleSpace:
        min: "0.0"
        max: "0.3"
    - name: lr
      parameterType: double
      feasibleSpace:
        min: "0.005"
        max: "0.05"
        distribution: logUniform
    - name: batch_size
      parameterType: discrete
      feasibleSpace:
        list: ["16"]
    - name: epochs
      parameterType: discrete
      feasibleSpace:
        list: ["2"]
"""


STEPS = """\
\"\"\"The wine project's train step: the library's, with this model's hyperparameters.\"\"\"

from typing import Any

from cnai.training.step import train as train_model


def train(
    table: str, snapshot_id: int, hidden: int = 32, dropout: float = 0.1, epochs: int = 20
) -> dict[str, Any]:
    \"\"\"Train tabular_mlp on the ingested snapshot (one worker, batches of 16).\"\"\"
    return train_model(
        table,
        snapshot_id,
        workers=1,
        epochs=epochs,
        lr=0.03,
        batch_size=16,
        hidden=hidden,
        dropout=dropout,
    )
"""

PIPELINE = """\
\"\"\"ingest -> train -> register for the wine project, built with cnai's kit.\"\"\"

from typing import Any

from cnai.argo import kit
from cnai.argo.pipeline import Pipeline, Platform

PARAMETERS = [
    {"name": "source", "value": "", "description": "CSV/Parquet file or folder (absolute)"},
    {"name": "hidden", "value": "32", "description": "hidden units of tabular_mlp"},
    {"name": "dropout", "value": "0.1", "description": "dropout of tabular_mlp"},
    {"name": "model_name", "value": "wine-classifier", "description": "registered model"},
]


def build(platform: Platform) -> Any:
    \"\"\"The WorkflowTemplate ``wine-retrain``.\"\"\"
    from hera.workflows import DAG

    with kit.pipeline_template(
        platform, "wine-retrain", entrypoint="main", parameters=PARAMETERS
    ) as template:
        ingest = kit.step_container(
            platform,
            "ingest",
            "cnai.ingest:ingest",
            ("source",),
            outputs=("table", "snapshot_id"),
        )
        train = kit.step_container(
            platform,
            "train",
            "wine_steps:train",
            ("table", "snapshot_id", "hidden", "dropout"),
            outputs=("run_id",),
        )
        register = kit.step_container(
            platform,
            "register",
            "cnai.registry.register:register",
            ("run_id", "model_name"),
            outputs=("model_name", "version", "promoted"),
        )
        with DAG(name="main"):
            t_ingest = ingest(name="ingest", arguments=kit.workflow_args(template, "source"))
            t_train = train(
                name="train",
                arguments={n: kit.output(t_ingest, n) for n in ("table", "snapshot_id")}
                | kit.workflow_args(template, "hidden", "dropout"),
            )
            t_register = register(
                name="register",
                arguments={"run_id": kit.output(t_train, "run_id")}
                | kit.workflow_args(template, "model_name"),
            )
            t_ingest >> t_train >> t_register
    return template


pipeline = Pipeline(name="wine-retrain", build=build, description="ingest -> train -> register")
"""


def make_project(root: Path) -> Path:
    """The walkthrough's project folder under ``root`` (outside this repository)."""
    from sklearn.datasets import load_wine

    project = root / "wine-project"
    (project / "experiments").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "cnai.yaml").write_text(CNAI_YAML)
    (project / "wine_models.py").write_text(MODELS)
    (project / "wine_steps.py").write_text(STEPS)
    (project / "wine_pipeline.py").write_text(PIPELINE)
    (project / "experiments" / "wine.yaml").write_text(EXPERIMENT)
    frame = load_wine(as_frame=True).frame
    frame.columns = [*FEATURES, "cultivar"]
    frame.to_csv(project / "data" / "wine.csv", index=False)
    return project


def cnai(project: Path, home: Path, *args: str, timeout: float = 600) -> dict[str, Any]:
    """``cnai ARGS --json`` run from ``project``; its JSON object (asserting exit 0)."""
    leaky = ("CNAI_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAY_ADDRESS", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(leaky)}
    env["CNAI_HOME"] = str(home)
    # No CNAI_CONFIG, no PYTHONPATH: run from the project folder, cnai finds its
    # [tool.cnai] table, layers its cnai.yaml and imports wine_models from its root.
    proc = subprocess.run(
        [sys.executable, "-m", "cnai", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"cnai {' '.join(args)}: {proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_wine_project_outside_the_repo_ingests_tunes_trains_and_registers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("outside")
    assert REPO not in root.parents
    project = make_project(root)
    home = root / "home"

    # the reference project (steps/, pipelines/) is not importable from here
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('steps'))"],
        capture_output=True,
        text=True,
        cwd=project,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        timeout=60,
    )
    assert probe.stdout.strip() == "None", probe.stdout + probe.stderr

    ingested = cnai(project, home, "ingest", "--source", "data/wine.csv")
    assert ingested["table"] == "wine.samples" and ingested["rows_added"] == 178

    # no --experiment: the project's tune.experiment, relative to its cnai.yaml
    tuned = cnai(project, home, "tune")
    assert tuned["experiment"] == "wine-mlp"
    assert tuned["trials"]["succeeded"] == 3
    # the searched names are the custom model's (hidden, dropout) plus the loop's
    assert set(tuned["best_params"]) == {"hidden", "dropout", "lr", "batch_size", "epochs"}
    assert tuned["best_params"]["hidden"] in (16, 32, 64)
    assert 0.0 <= tuned["best_params"]["dropout"] <= 0.3

    best = tuned["best_params"]
    trained = cnai(
        project,
        home,
        "train",
        "--workers",
        "1",
        "--epochs",
        "20",
        "--batch-size",
        "16",
        "--lr",
        str(best["lr"]),
        "--hparam",
        f"hidden={best['hidden']}",
        "--hparam",
        "dropout=0.05",
    )
    assert trained["epochs"] == 20

    registered = cnai(
        project, home, "register", "--run-id", trained["run_id"], "--model-name", "wine-classifier"
    )
    assert registered["model_name"] == "wine-classifier"
    assert registered["version"] == 1 and registered["created"] is True
    assert registered["metrics"]["test_rows"] > 0
    accuracy = registered["metrics"]["test_accuracy"]
    assert accuracy == pytest.approx(trained["test_accuracy"])
    assert accuracy > 0.6  # chance is 0.40 (the largest of the three classes)

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    params = client.get_run(trained["run_id"]).data.params
    assert params["hidden"] == str(best["hidden"]) and params["dropout"] == "0.05"
    assert params["model_factory"] == "wine_models:tabular_mlp"
    assert "channels" not in params


@pytest.mark.slow
def test_wine_project_runs_its_own_pipeline(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``cnai run`` from the project folder runs the project's default pipeline (its
    own kit-built ingest -> train -> register) with the model's hyperparameters."""
    root = tmp_path_factory.mktemp("outside")
    project = make_project(root)
    home = root / "home"
    listed = cnai(project, home, "pipelines")
    assert [p["name"] for p in listed["pipelines"]] == ["wine"]

    source = project / "data" / "wine.csv"
    run = cnai(project, home, "run", "-p", f"source={source}", "-p", "hidden=16")
    assert run["phase"] == "Succeeded"
    outputs = {t["name"]: t["outputs"] for t in run["tasks"]}
    assert outputs["ingest"]["table"] == "wine.samples"
    assert outputs["register"]["model_name"] == "wine-classifier"
    assert outputs["register"]["version"] == "1"

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    params = client.get_run(outputs["train"]["run_id"]).data.params
    assert params["hidden"] == "16" and params["dropout"] == "0.1"
    assert params["model_factory"] == "wine_models:tabular_mlp"


def test_walkthrough_doc_shows_the_tested_project() -> None:
    """The files docs/walkthrough.md shows are the ones this test runs."""
    doc = (REPO / "docs" / "walkthrough.md").read_text()
    for text in (PYPROJECT, CNAI_YAML, EXPERIMENT, MODELS, STEPS, PIPELINE):
        assert textwrap.dedent(text).strip() in doc
