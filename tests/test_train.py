"""``cnai train`` end to end: real Ray workers, real DDP, real MLflow store.

Every run goes through the CLI in a subprocess connected to the session's Ray
runtime (RAY_ADDRESS), so it exercises exactly what a user or a pipeline pod runs.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnai.catalog import ensure_table, open_catalog
from cnai.config import load_settings
from tests.conftest import run_cli

SUMMARY_KEYS = {
    "run_id",
    "world_size",
    "backend",
    "epochs",
    "val_accuracy",
    "test_accuracy",
    "checkpoint_uri",
    "train_seconds",
    "samples_per_second",
    "restarts",
}


def _client(home: Path) -> Any:
    import mlflow

    from cnai.tracking import configure

    configure(load_settings(home, environ={}))
    return mlflow.MlflowClient()


def _runs_tagged(home: Path, token: str) -> list[Any]:
    """Runs of the cnai-retrain experiment carrying ``cnai.git_sha = token``."""
    client = _client(home)
    experiment = client.get_experiment_by_name("cnai-retrain")
    if experiment is None:
        return []
    return list(
        client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`cnai.git_sha` = '{token}'"
        )
    )


def _steps(home: Path, run_id: str, metric: str) -> list[int]:
    return [m.step for m in _client(home).get_metric_history(run_id, metric)]


@pytest.mark.slow
def test_train_two_workers_reaches_accuracy_and_logs_one_run(
    digits_home: Path, ray_address: str
) -> None:
    token = f"sha-{uuid.uuid4().hex[:12]}"
    result = run_cli(
        ["train", "--workers", "2", "--json", "--git-sha", token, "--git-branch", "main"],
        digits_home,
        env={"RAY_ADDRESS": ray_address},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.json()
    assert set(summary) == SUMMARY_KEYS
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert summary["restarts"] == 0
    assert summary["test_accuracy"] >= 0.95
    assert summary["samples_per_second"] > 0
    assert "epoch 1/" in result.stderr  # progress per epoch

    runs = _runs_tagged(digits_home, token)
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    settings = load_settings(digits_home, environ={})
    table = open_catalog(settings).load_table("cnai.digits")
    snapshot = table.current_snapshot()
    assert snapshot is not None
    assert tags["cnai.table"] == "cnai.digits"
    assert tags["cnai.snapshot_id"] == str(snapshot.snapshot_id)
    assert tags["cnai.data_version"]
    assert tags["cnai.git_branch"] == "main"
    params = run.data.params
    assert params["workers"] == "2" and params["epochs"] == str(summary["epochs"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert run.data.metrics["val_accuracy"] == pytest.approx(summary["val_accuracy"])
    epochs = list(range(summary["epochs"]))
    for metric in ("train_loss", "val_loss", "val_accuracy"):
        assert _steps(digits_home, run.info.run_id, metric) == epochs
    assert any(name.startswith("system/") for name in run.data.metrics)

    # The logged model is the one that was measured: same test accuracy on the test split.
    import mlflow.pyfunc

    from cnai.training.data import read_split

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert model.metadata.signature is not None
    import pandas as pd

    x, y = read_split(settings, "test")
    frame = pd.DataFrame(x.astype(np.float64), columns=list(settings.dataset.features))
    accuracy = float(np.mean(np.asarray(model.predict(frame)) == y))
    assert accuracy == pytest.approx(summary["test_accuracy"])
    assert Path(summary["checkpoint_uri"]).is_dir()
    assert list(Path(summary["checkpoint_uri"]).glob("epoch-*.pt"))


@pytest.mark.slow
def test_killed_worker_resumes_from_checkpoint_in_the_same_run(
    digits_home: Path, ray_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process (reusing the session's Ray) to save a subprocess start-up."""
    from cnai.progress import Progress
    from cnai.training.step import train

    token = f"sha-{uuid.uuid4().hex[:12]}"
    # Rank 1 SIGKILLs itself at the start of epoch 4 (0-based 3), first attempt only.
    monkeypatch.setenv("CNAI_TRAIN_FAULT", "1:3")
    stream = io.StringIO()
    summary = train(
        workers=2,
        git_sha=token,
        settings=load_settings(digits_home, environ={}),
        progress=Progress(stream),
    )
    assert summary["restarts"] >= 1
    assert summary["test_accuracy"] >= 0.95
    assert "resumed from the last checkpoint at epoch 4" in stream.getvalue()
    runs = _runs_tagged(digits_home, token)
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["restarts"] == summary["restarts"]
    # Each epoch logged exactly once, although epochs ran on two worker groups.
    epochs = list(range(summary["epochs"]))
    assert _steps(digits_home, summary["run_id"], "val_accuracy") == epochs


@pytest.mark.slow
def test_runtime_failure_marks_the_run_failed(
    digits_home: Path, ray_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnai.errors import CnaiError
    from cnai.progress import Progress
    from cnai.training.step import train

    token = f"sha-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("CNAI_TRAIN_FAULT", "0:0")
    with pytest.raises(CnaiError, match=r"training failed after 0 restart\(s\)") as failure:
        train(
            workers=2,
            epochs=2,
            max_restarts=0,
            git_sha=token,
            settings=load_settings(digits_home, environ={}),
            progress=Progress(quiet=True),
        )
    assert failure.value.exit_code == 1
    runs = _runs_tagged(digits_home, token)
    assert [r.info.status for r in runs] == ["FAILED"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--snapshot-id", "123"], {}, "--snapshot-id 123: no such snapshot"),
        (["--workers", "0"], {}, "--workers 0: must be at least 1"),
        ([], {"CNAI_MODEL_FACTORY": "nowhere.models:net"}, "model factory 'nowhere.models:net'"),
        ([], {"CNAI_MODEL_FACTORY": "steps.models:missing"}, "has no attribute 'missing'"),
        (["--epochs", "0"], {}, "--epochs 0: must be at least 1"),
        (["--channels", "0"], {}, "channels and hidden must be at least 1"),
    ],
)
def test_bad_input_exits_2_without_a_run(
    digits_home: Path,
    args: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI entry point in-process (fast); the subprocess path is covered below."""
    from cnai.cli.main import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    token = f"sha-{uuid.uuid4().hex[:12]}"
    code = main(["--home", str(digits_home), "train", "--json", "--git-sha", token, *args])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [captured.err.strip().splitlines()[-1]]
    assert message in captured.err
    assert json.loads(captured.out)["exit_code"] == 2  # --json: an object on failure too
    assert _runs_tagged(digits_home, token) == []


def test_empty_table_exits_2_without_a_run(tmp_home: Path) -> None:
    settings = load_settings(tmp_home, environ={})
    ensure_table(open_catalog(settings), settings.dataset)
    result = run_cli(["train", "--json"], tmp_home)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "cnai: error: table cnai.digits: is empty (no snapshot yet; run `cnai ingest`)"
    )
    assert json.loads(result.stdout)["exit_code"] == 2  # --json: an object on failure too
    assert not (tmp_home / "mlflow").exists()
