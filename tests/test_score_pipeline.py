"""The batch-scoring pipeline ``cnai-score``: compiled, linted, run locally, idempotent.

A tiny home (three feature columns, labels 0/1) with a linear classifier logged the way
the train step logs one (:func:`cnai.model_io.log_classifier`) and registered as the
champion directly in MLflow, so no Ray training is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cnai.engine.spec import check_supported
from pipelines.score import pipeline
from tests.conftest import run_cli

MODEL = "tiny-classifier"
CONFIG = """
dataset:
  table: shop.tiny
  features: [a, b, c]
  label: label
  classes: [0, 1]
  feature_shape: [3]
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("score-yaml") / "cnai-score.yaml"
    out.write_text(pipeline.manifests()["cnai-score.yaml"])
    return out


def test_the_score_pipeline_compiles_to_a_supported_template(compiled: Path) -> None:
    doc = yaml.safe_load(compiled.read_text())
    assert doc["metadata"]["name"] == "cnai-score"
    assert check_supported(doc) == []
    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    tasks = {t["name"]: t for t in templates["scoring"]["dag"]["tasks"]}
    assert tasks["score"]["depends"] == "ingest"
    args = {p["name"]: p["value"] for p in tasks["score"]["arguments"]["parameters"]}
    assert args["snapshot_id"] == "{{tasks.ingest.outputs.parameters.snapshot_id}}"
    assert templates["score"]["container"]["args"][:3] == [
        "-m",
        "cnai.engine.entrypoint",
        "steps.score:score",
    ]
    for param in doc["spec"]["arguments"]["parameters"]:
        assert param["description"], param["name"]


def test_the_score_pipeline_lints_clean(compiled: Path, tmp_home: Path) -> None:
    result = run_cli(["--json", "lint", str(compiled)], tmp_home)
    assert result.returncode == 0, result.stdout + result.stderr


def test_its_hera_file_is_well_under_half_of_retrain() -> None:
    from tests.conftest import REPO

    score = len((REPO / "pipelines" / "score.py").read_text().splitlines())
    retrain = len((REPO / "pipelines" / "retrain.py").read_text().splitlines())
    assert score < retrain / 2


# ------------------------------------------------------------------ a local run


def _rows(count: int, seed: int) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": (x[:, 0] > 0) * 1})


def _register_champion(home: Path) -> None:
    import mlflow
    import torch
    from mlflow import MlflowClient
    from torch import nn

    from cnai.config import load_settings
    from cnai.model_io import log_classifier
    from cnai.tracking import configure, ensure_experiment

    settings = load_settings(home, environ={})
    module = nn.Linear(3, 2)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
        module.bias.zero_()
    configure(settings)
    with mlflow.start_run(experiment_id=ensure_experiment(settings)):
        info = log_classifier(module, settings.dataset, np.zeros((2, 3), dtype=np.float32))
    version = mlflow.register_model(info.model_uri, MODEL)
    MlflowClient(settings.mlflow_tracking_uri).set_registered_model_alias(
        MODEL, "champion", version.version
    )


def _predictions(home: Path) -> Any:
    from cnai.catalog import load_table
    from cnai.config import load_settings

    return load_table(load_settings(home, environ={}), "shop.tiny_predictions").scan().to_arrow()


@pytest.mark.slow
def test_a_local_run_scores_new_rows_once_with_lineage(compiled: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(CONFIG)
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    _rows(40, 1).to_parquet(first)
    _rows(25, 2).to_parquet(second)
    run = ["--json", "run", "--file", str(compiled), "-p", f"model_name={MODEL}"]

    # No champion yet: one clear message, exit 2 (not retried: bad input).
    missing = run_cli([*run, "-p", f"source={first}"], home)
    assert missing.returncode == 2, missing.stderr[-2000:]
    error = json.loads(missing.stdout.strip().splitlines()[-1])
    assert f"model {MODEL}: no version with alias 'champion'" in json.dumps(error)

    _register_champion(home)
    scored = run_cli([*run, "-p", f"source={first}"], home)
    assert scored.returncode == 0, scored.stderr[-3000:]
    table = _predictions(home)
    assert table.num_rows == 40
    assert set(table.column("model_name").to_pylist()) == {MODEL}
    assert set(table.column("model_version").to_pylist()) == {1}
    (snapshot,) = set(table.column("input_snapshot_id").to_pylist())
    assert "_cnai_row_hash" in table.column_names
    source = _rows(40, 1)
    assert sorted(table.column("prediction").to_pylist()) == sorted(source["label"].tolist())

    # The same file again (ingest adds nothing, same snapshot): no rows added.
    again = run_cli([*run, "-p", f"source={first}"], home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _predictions(home).num_rows == 40

    # New data: only its 25 rows are scored, with the new snapshot as lineage.
    more = run_cli([*run, "-p", f"source={second}"], home)
    assert more.returncode == 0, more.stderr[-3000:]
    table = _predictions(home)
    assert table.num_rows == 65
    ids = table.column("input_snapshot_id").to_pylist()
    assert ids.count(snapshot) == 40 and len(set(ids)) == 2


@pytest.mark.slow
def test_scoring_an_already_scored_snapshot_adds_no_rows(tmp_path: Path) -> None:
    from cnai.catalog import load_table
    from cnai.config import load_settings
    from cnai.ingest import ingest
    from cnai.progress import Progress
    from cnai.scoring import score

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(CONFIG)
    settings = load_settings(home, environ={})
    quiet = Progress(quiet=True)
    for seed in (1, 2):
        path = tmp_path / f"part{seed}.parquet"
        _rows(10, seed).to_parquet(path)
        ingest(str(path), settings=settings, progress=quiet)
    _register_champion(home)
    snapshots = [s.snapshot_id for s in load_table(settings).snapshots()]
    latest = score(model_name=MODEL, settings=settings, progress=quiet)
    assert latest["rows_scored"] == 20 and latest["snapshot_id"] == snapshots[-1]
    # The older snapshot's rows are part of the scored one: skipped, nothing added.
    older = score(snapshot_id=snapshots[0], model_name=MODEL, settings=settings, progress=quiet)
    assert older["skipped"] is True and older["rows_scored"] == 0
    repeat = score(model_name=MODEL, settings=settings, progress=quiet)
    assert repeat["skipped"] is True
    assert _predictions(home).num_rows == 20


def test_the_data_event_source_triggers_cnai_score_through_its_own_sensor() -> None:
    from cnai.errors import UsageError
    from cnai.events.spec import load_spec
    from tests.conftest import REPO

    spec = load_spec(REPO / "events", "cnai-score")
    assert spec.trigger.workflow_template == "cnai-score"
    route = spec.route("/data-updated")
    assert route is not None
    passed = spec.evaluate(route, {"body": {"rows_added": 3}})
    assert passed.decision.passed and passed.dependency == "data-updated"
    assert not spec.evaluate(route, {"body": {"rows_added": 0}}).decision.passed
    # A push is no dependency of the scoring Sensor (the retrain Sensor's only).
    push = spec.route("/push")
    assert push is not None
    assert not spec.evaluate(push, {"body": {}}).decision.passed
    assert load_spec(REPO / "events", "cnai-retrain").trigger.workflow_template == "cnai-retrain"
    assert load_spec(REPO / "events").trigger.workflow_template == "cnai-retrain"
    with pytest.raises(UsageError, match="'cnai-nope', found 0"):
        load_spec(REPO / "events", "cnai-nope")


def test_the_events_folder_lints_clean(tmp_home: Path) -> None:
    from tests.conftest import REPO

    result = run_cli(["--json", "lint", str(REPO / "events")], tmp_home)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_predictions_commit_that_loses_a_race_is_retried_once_and_lands_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit goes through the one retry policy (cnai.retrying.commit_policy): a
    conflict re-reads what is scored and commits again, and the rows land exactly once."""
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table import Transaction

    from cnai.config import load_settings
    from cnai.ingest import ingest
    from cnai.progress import Progress
    from cnai.scoring import score

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(CONFIG)
    settings = load_settings(home, environ={})
    path = tmp_path / "part.parquet"
    _rows(12, 3).to_parquet(path)
    ingest(str(path), settings=settings, progress=Progress(quiet=True))
    _register_champion(home)
    real_commit = Transaction.commit_transaction
    calls: list[int] = []

    def lose_the_first_race(self: Transaction) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise CommitFailedException("another writer committed first")
        return real_commit(self)

    monkeypatch.setattr(Transaction, "commit_transaction", lose_the_first_race)
    outcome = score(model_name=MODEL, settings=settings, progress=Progress(quiet=True))
    assert outcome["rows_scored"] == 12 and len(calls) >= 2
    assert _predictions(home).num_rows == 12
