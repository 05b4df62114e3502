"""Labels and tasks end to end (issue 13 item 4): string labels, classes inferred from the
table, regression, the configuration keys ``model.name`` / ``model.task`` /
``dataset.sample``, and the training split's statistics given to the model factory.

Data sets are tiny and separable (or exactly linear), epochs few: each training takes a
few seconds on the session's Ray runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cnai.config import load_settings
from cnai.errors import UsageError
from cnai.progress import Progress
from tests.conftest import run_cli

QUIET = Progress(quiet=True)


def _config(
    home: Path,
    *,
    table: str,
    label_type: str = "long",
    classes: list[Any] | None = None,
    task: str = "classification",
    name: str = "tiny-model",
    sample: str | None = None,
) -> None:
    """A home config.yaml for two features ``x0, x1`` and the default tabular MLP."""
    lines = [
        "dataset:",
        f"  table: {table}",
        "  features: [x0, x1]",
        "  label: y",
        f"  label_type: {label_type}",
    ]
    if classes is not None:
        lines.append(f"  classes: {classes}")
    if sample is not None:
        lines.append(f"  sample: {sample}")
    lines += [
        "train:",
        "  model_factory: cnai.models:mlp",
        "model:",
        f"  name: {name}",
        f"  task: {task}",
    ]
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("\n".join(lines) + "\n")


def _blobs(rows: int, labels: list[Any], seed: int = 0) -> pd.DataFrame:
    """Well separated clusters, one per label, with large raw feature scales."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(labels), rows)
    centers = np.array([[100.0 * i, 5000.0 * (i % 2)] for i in range(len(labels))])
    points = centers[which] + rng.normal(0, 1.0, (rows, 2))
    return pd.DataFrame({"x0": points[:, 0], "x1": points[:, 1], "y": [labels[i] for i in which]})


def _settings(home: Path, ray_address: str) -> Any:
    return load_settings(home, environ={"RAY_ADDRESS": ray_address})


def _ingest(home: Path, frame: pd.DataFrame, name: str = "data.parquet") -> Any:
    from cnai.ingest import ingest

    path = home.parent / name
    frame.to_parquet(path)
    return ingest(str(path), settings=load_settings(home, environ={}), progress=QUIET)


def _train(settings: Any, **kwargs: Any) -> dict[str, Any]:
    from cnai.training.step import train

    args: dict[str, Any] = {"workers": 1, "epochs": 12, "lr": 0.05, "batch_size": 16}
    return train(**{**args, **kwargs}, settings=settings, progress=QUIET)


# --- configuration keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("model: {task: clustering}", "model.task"),
        ("model: {name: 'a/b'}", "model.name"),
        ("model: {name: 7}", "model.name"),
        ("model: {nme: x}", "model.nme"),
        ("dataset: {features: [a], sample: no_colon}", "dataset.sample"),
        ("dataset: {features: [a], label_type: string}\nmodel: {task: regression}", "label_type"),
        ("dataset: {features: [a], label_type: double}", "dataset.label_type"),
        ("dataset: {features: [a], label_type: double, classes: [1]}", "dataset.classes"),
        ("dataset: {features: [a], classes: []}", "dataset.classes"),
    ],
)
def test_model_and_dataset_keys_are_checked(tmp_home: Path, body: str, field: str) -> None:
    (tmp_home / "config.yaml").write_text(body + "\n")
    with pytest.raises(UsageError) as caught:
        load_settings(tmp_home, environ={})
    message = str(caught.value)
    assert field in message and "\n" not in message


def test_model_name_and_task_are_read_and_exported(tmp_home: Path) -> None:
    _config(tmp_home, table="t.reg", label_type="double", task="regression", name="price-model")
    settings = load_settings(tmp_home, environ={})
    assert settings.model_name == "price-model"
    assert settings.dataset.is_regression and settings.dataset.classes == ()
    assert settings.env()["CNAI_MODEL_NAME"] == "price-model"
    assert load_settings(tmp_home, environ={"CNAI_MODEL_NAME": "other"}).model_name == "other"


def test_library_defaults_are_not_the_digits_project(tmp_path: Path) -> None:
    """Without any configuration file the library knows no data contract or model."""
    from cnai.config import DatasetSpec

    spec = DatasetSpec()
    assert spec.features == () and spec.classes == () and "digits" not in spec.table
    with pytest.raises(UsageError, match=r"dataset\.features"):
        spec.require()


# --- dataset.sample and the empty landing folder -------------------------------------------


def test_an_empty_landing_folder_without_sample_is_bad_input_and_writes_nothing(
    tmp_home: Path,
) -> None:
    _config(tmp_home, table="t.none")
    before = sorted(p.name for p in tmp_home.iterdir())
    result = run_cli(["--json", "ingest"], tmp_home)
    assert result.returncode == 2, result.stderr
    assert "landing" in result.stderr and "dataset.sample" in result.stderr
    assert sorted(p.name for p in tmp_home.iterdir()) == before  # no landing/, no iceberg/


def write_sample(landing: Path) -> Path:
    """A ``dataset.sample`` function for the test below."""
    path = landing / "sample.parquet"
    _blobs(30, [0, 1]).to_parquet(path)
    return path


def test_the_configured_sample_function_fills_an_empty_landing_folder(tmp_home: Path) -> None:
    from cnai.ingest import ingest

    _config(tmp_home, table="t.sample", sample="tests.test_labels_tasks:write_sample")
    summary = ingest(settings=load_settings(tmp_home, environ={}), progress=QUIET)
    assert summary["rows_added"] == 30
    assert summary["files_ingested"] == [str(tmp_home / "landing" / "sample.parquet")]


def test_a_wrong_type_label_is_reported_as_a_label_type_problem(tmp_home: Path) -> None:
    from cnai.contract import ContractError
    from cnai.ingest import ingest

    _config(tmp_home, table="t.csv")
    source = tmp_home.parent / "wine.csv"
    _blobs(10, ["red", "white"]).to_csv(source, index=False)
    with pytest.raises(ContractError) as caught:
        ingest(str(source), settings=load_settings(tmp_home, environ={}), progress=QUIET)
    message = str(caught.value)
    assert "column 'y'" in message and "label_type" in message
    assert "not a readable" not in message


# --- string labels, inferred classes ------------------------------------------------------


def test_string_labels_round_trip_through_register_serving_and_scoring(
    tmp_home: Path, ray_address: str
) -> None:
    from cnai.model_io import CLASSES_ARTIFACT
    from cnai.registry.register import register
    from cnai.scoring import score
    from cnai.serving.model import load_version

    labels = ["white", "red", "rose"]
    _config(tmp_home, table="t.wine", label_type="string", name="wine-model")
    _ingest(tmp_home, _blobs(150, labels))
    settings = _settings(tmp_home, ray_address)
    trained = _train(settings)
    assert trained["test_accuracy"] > 0.9, trained

    result = register(trained["run_id"], settings=settings, progress=QUIET)
    assert result["model_name"] == "wine-model" and result["promoted"] is True
    assert result["metrics"]["test_accuracy"] > 0.9

    import mlflow

    # The inferred class list (sorted) is stored with the model.
    stored = mlflow.artifacts.load_dict(f"runs:/{trained['run_id']}/{CLASSES_ARTIFACT}")
    assert stored == {"task": "classification", "classes": ["red", "rose", "white"]}
    served = load_version("wine-model", str(result["version"]))
    rows = _blobs(12, labels, seed=5)
    predicted = served.predict(rows[["x0", "x1"]].to_numpy(np.float32))
    assert list(predicted) == list(rows["y"])

    scored = score(settings=settings, progress=QUIET)
    assert scored["model_name"] == "wine-model" and scored["rows_scored"] == 150
    from cnai.catalog import load_table

    predictions = load_table(settings, scored["predictions_table"]).scan().to_arrow()
    assert set(predictions.column("prediction").to_pylist()) == set(labels)


def test_a_binary_table_without_classes_trains_two_outputs(
    tmp_home: Path, ray_address: str
) -> None:
    import mlflow

    _config(tmp_home, table="t.binary")  # integer labels, no classes declared
    _ingest(tmp_home, _blobs(80, [0, 1], seed=2))
    settings = _settings(tmp_home, ray_address)
    trained = _train(settings, epochs=4)
    model = mlflow.pyfunc.load_model(f"runs:/{trained['run_id']}/model")
    inner = model.unwrap_python_model()
    assert inner.classes == (0, 1)
    assert inner.predict_proba(np.zeros((3, 2), np.float32)).shape == (3, 2)
    assert model.metadata.metadata == {"task": "classification", "classes": [0, 1]}


def test_the_factory_gets_the_training_splits_statistics(tmp_home: Path) -> None:
    """Friction 6: feature_mean/feature_std of the training rows reach the factory."""
    from cnai.training.data import load_partition, plan_partitions
    from cnai.training.loop import Collective, TrainConfig, build_model
    from cnai.training.stats import training_stats

    _config(tmp_home, table="t.stats")
    _ingest(tmp_home, _blobs(60, [0, 1], seed=3))
    settings = load_settings(tmp_home, environ={})
    from cnai.training.classes import resolve_classes

    settings = resolve_classes(settings, None, None)
    data = load_partition(settings, plan_partitions(settings, 1, None, "t.stats"), 0)
    stats = training_stats(data, Collective())
    train_rows = data.features[data.index["train"]]
    assert np.allclose(stats.mean, train_rows.mean(axis=0), rtol=1e-5)
    assert np.allclose(stats.std, train_rows.std(axis=0), rtol=1e-4)
    model = build_model(TrainConfig(model_factory="cnai.models:mlp"), settings.dataset, stats)
    assert np.allclose(model.mean.numpy(), stats.mean)  # type: ignore[operator]


# --- regression -------------------------------------------------------------------------------


def _linear(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 2))
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "y": 3 * x[:, 0] - 2 * x[:, 1] + 1.0})


def test_regression_trains_registers_and_the_gate_prefers_the_lower_rmse(
    tmp_home: Path, ray_address: str
) -> None:
    from cnai.registry.register import register

    _config(tmp_home, table="t.reg", label_type="double", task="regression", name="reg-model")
    _ingest(tmp_home, _linear(200, 4))
    settings = _settings(tmp_home, ray_address)
    good = _train(settings, epochs=15)
    assert "test_accuracy" not in good and good["test_rmse"] < 0.5, good
    bad = _train(settings, epochs=1, lr=1e-4)
    assert bad["test_rmse"] > good["test_rmse"] + 0.5, (good, bad)

    first = register(bad["run_id"], settings=settings, progress=QUIET)
    assert first["promoted"] is True and "test_rmse" in first["reason"]
    better = register(good["run_id"], settings=settings, progress=QUIET)
    assert better["promoted"] is True and better["champion_version"] == better["version"]
    assert "lower is better" in better["reason"]
    assert better["metrics"]["test_rmse"] < better["metrics"]["champion_test_rmse"]
    assert better["metrics"]["test_r2"] > 0.9

    import mlflow

    model = mlflow.pyfunc.load_model("models:/reg-model@champion")
    out = model.predict(pd.DataFrame({"x0": [0.0, 1.0], "x1": [0.0, 0.0]}))
    assert np.asarray(out).dtype.kind == "f" and abs(float(out[1]) - 4.0) < 1.0


def test_the_gate_direction_for_rmse() -> None:
    from cnai.registry.gate import ACCURACY, RMSE, decide

    assert decide(0.30, 0.50, objective=RMSE).promoted
    assert not decide(0.50, 0.30, objective=RMSE).promoted
    assert not decide(0.45, 0.50, 0.1, objective=RMSE).promoted  # gain 0.05 < min_delta
    assert not decide(0.50, 0.50, objective=RMSE).promoted  # a tie keeps the incumbent
    assert decide(0.50, 0.30, objective=ACCURACY).promoted


def test_a_tuning_objective_the_task_does_not_report_is_refused(tmp_home: Path) -> None:
    from types import SimpleNamespace

    from cnai.tuning.step import check_objective

    _config(tmp_home, table="t.reg", label_type="double", task="regression")
    dataset = load_settings(tmp_home, environ={}).dataset
    spec = SimpleNamespace(
        source="exp.yaml", objective=SimpleNamespace(metric="val_accuracy", additional_metrics=())
    )
    with pytest.raises(UsageError, match=r"val_accuracy.*regression"):
        check_objective(spec, dataset)
    spec.objective.metric = "val_rmse"
    check_objective(spec, dataset)


# --- frictions 4 and 8: how failures and reruns read -------------------------------------------


def test_a_contract_violation_inside_cnai_run_fails_at_once_with_the_contract_message(
    tmp_path: Path,
) -> None:
    """Friction 4: bad input is not retried; the run's message is the contract message."""
    import json

    bad = tmp_path / "bad.parquet"
    frame = pd.DataFrame({f"pixel_{i}": np.zeros(4) for i in range(63)})  # pixel_63 missing
    frame["label"] = 1
    frame.to_parquet(bad)
    home = tmp_path / "home"
    result = run_cli(["--json", "run", "-p", f"source={bad}", "--run-id", "bad-input"], home)
    assert result.returncode == 2, result.stderr[-2000:]
    summary = result.json()
    assert summary["phase"] == "Failed"
    assert "column 'pixel_63': missing (rule: required columns present)" in summary["message"]
    record = json.loads((home / "runs" / "bad-input" / "run.json").read_text())
    ingest = next(t for t in record["tasks"] if t["id"] == "ingest")
    assert ingest["attempts"] == 1 and ingest["exit_code"] == 2


def test_a_skipped_rerun_does_not_say_promoted() -> None:
    """Friction 8: the model an earlier run registered is reported as reused, not promoted."""
    import json

    from cnai.engine.summary import render, summarize

    recorded = {"name": "m", "version": "3", "promoted": True}
    record = {
        "run_id": "again",
        "phase": "Succeeded",
        "tasks": [
            {
                "id": "ingest",
                "phase": "Succeeded",
                "outputs": {"parameters": {"model": json.dumps(recorded)}},
            },
            {"id": "register", "phase": "Skipped"},
        ],
    }
    summary = summarize(record)
    assert summary["model"] == {"name": "m", "version": "3", "promoted": False, "reused": True}
    assert "champion" not in render(summary)


def test_the_model_card_of_a_regression_names_its_task_and_objective() -> None:
    from cnai.registry.card import CardInput, render
    from cnai.registry.gate import Decision
    from cnai.registry.lineage import Lineage

    card = CardInput(
        model_name="reg-model",
        version="2",
        lineage=Lineage("r1", None, "t.reg", 7, "abc"),
        metrics={"test_rmse": 0.1},
        run_metrics={},
        params={},
        decision=Decision(True, "no champion yet; test_rmse 0.1000"),
        champion_version="2",
        features=2,
        task="regression",
        objective="test_rmse",
    )
    text = render(card)
    assert "(regression)" in text and "one value per row" in text
    assert "one metric (test_rmse)" in text and "classes" not in text
