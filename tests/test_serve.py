"""``cnai serve`` against a real registry: the champion served, a better model taking over
under load with no failed request, a worse one ignored, and bad input answered 4xx.

Models are small linear classifiers logged the way the train step logs its model
(:func:`cnai.model_io.log_classifier`, tagged with the digits snapshot) and promoted
by the real register step, so no Ray training run is needed: ``strong`` is a ridge
fit on the whole train split, ``medium`` one on 40 rows, ``weak`` random weights.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from cnai.config import Settings, load_settings
from cnai.progress import Progress
from cnai.serving.inputs import Limits
from cnai.serving.server import BackgroundServer, ServeOptions, bind, open_tracker
from tests.conftest import REPO

pytestmark = pytest.mark.slow

MODEL = "digits-classifier"


@dataclass
class Registry:
    """An MLflow store holding three logged (not yet registered) runs of the digits model."""

    home: Path
    env: dict[str, str]
    settings: Settings
    runs: dict[str, str]
    """quality (weak, medium, strong) -> run id."""
    test_rows: np.ndarray
    """The digits test split (float32)."""

    def register(self, quality: str) -> dict[str, Any]:
        """Run the real register step (gate included) on one run."""
        from cnai.registry.register import register

        return register(
            self.runs[quality], MODEL, settings=self.settings, progress=Progress(quiet=True)
        )


def _linear(weights: np.ndarray, bias: np.ndarray) -> Any:
    import torch
    from torch import nn

    module = nn.Sequential(nn.Flatten(), nn.Linear(weights.shape[1], weights.shape[0]))
    with torch.no_grad():
        module[1].weight.copy_(torch.from_numpy(weights.astype(np.float32)))
        module[1].bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    return module


def _ridge(features: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, ...]:
    x = np.hstack([features, np.ones((len(features), 1))]).astype(np.float64)
    y = np.eye(classes)[labels]
    coef = np.linalg.solve(x.T @ x + 1.0 * np.eye(x.shape[1]), x.T @ y)
    return coef[:-1].T, coef[-1]


@pytest.fixture(scope="module")
def registry(digits_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Three runs of different quality in a fresh SQLite MLflow store on the digits table."""
    import mlflow

    from cnai.catalog import data_version, load_table
    from cnai.model_io import log_classifier
    from cnai.tracking import configure, ensure_experiment
    from cnai.training.data import read_split

    root = tmp_path_factory.mktemp("serve-mlflow")
    env = {
        "CNAI_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "CNAI_MLFLOW_ARTIFACT_ROOT": (root / "artifacts").as_uri(),
    }
    settings = load_settings(digits_home, environ=env)
    spec = settings.dataset
    table = load_table(settings)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    snapshot_id = snapshot.snapshot_id
    train_x, train_y = read_split(settings, "train", snapshot_id)
    test_x, _ = read_split(settings, "test", snapshot_id)
    classes = len(spec.classes)
    rng = np.random.default_rng(0)
    modules = {
        "weak": _linear(rng.normal(size=(classes, train_x.shape[1])), np.zeros(classes)),
        "medium": _linear(*_ridge(train_x[:40], train_y[:40], classes)),
        "strong": _linear(*_ridge(train_x, train_y, classes)),
    }
    experiment = ensure_experiment(settings)
    configure(settings)
    runs = {}
    for quality, module in modules.items():
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.set_tags(
                {
                    "cnai.table": spec.table,
                    "cnai.snapshot_id": str(snapshot_id),
                    "cnai.data_version": data_version(table, snapshot_id),
                }
            )
            log_classifier(module, spec, train_x[:5])
            runs[quality] = run.info.run_id
    return Registry(digits_home, env, settings, runs, test_x)


@pytest.fixture(scope="module")
def champion_v1(registry: Registry) -> Registry:
    """The medium model registered: version 1, the first champion."""
    result = registry.register("medium")
    assert (result["version"], result["promoted"]) == (1, True), result
    return registry


def start_server(registry: Registry, **options: Any) -> BackgroundServer:
    """An in-process ``cnai serve`` on a free 127.0.0.1 port."""
    opts = ServeOptions(model=MODEL, port=0, **options)
    tracker = open_tracker(registry.settings, opts, Progress(quiet=True))
    server = BackgroundServer(tracker, bind("127.0.0.1", 0), opts.max_batch_rows, opts.limits)
    return server.start()


@pytest.fixture(scope="module")
def pinned_server(champion_v1: Registry) -> Iterator[BackgroundServer]:
    """A server pinned to version 1 (small limits, to test them cheaply)."""
    server = start_server(
        champion_v1, version="1", limits=Limits(max_body_bytes=64 * 1024, max_rows=50)
    )
    yield server
    server.stop()


def test_the_first_champion_is_served_over_v2_and_predict(
    champion_v1: Registry, pinned_server: BackgroundServer
) -> None:
    import mlflow.pyfunc
    import pandas as pd

    url = pinned_server.url
    assert requests.get(f"{url}/v2/health/live", timeout=10).status_code == 200
    ready = requests.get(f"{url}/v2/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.headers["X-Model-Version"] == "1"
    meta = requests.get(f"{url}/v2/models/{MODEL}", timeout=10).json()
    assert meta["name"] == MODEL and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 64]}]

    rows = champion_v1.test_rows[:20]
    columns = list(meta["parameters"]["features"])
    frame = pd.DataFrame(rows.astype(np.float64), columns=columns)
    expected = mlflow.pyfunc.load_model(f"models:/{MODEL}/1").predict(frame)
    simple = requests.post(f"{url}/predict", json={"instances": rows.tolist()}, timeout=10)
    assert simple.status_code == 200, simple.text
    assert simple.json() == {"predictions": np.asarray(expected).tolist(), "model_version": "1"}

    body = {
        "id": "req-1",
        "inputs": [
            {
                "name": "features",
                "shape": [20, 64],
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ],
    }
    v2 = requests.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=10)
    assert v2.status_code == 200, v2.text
    answer = v2.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (MODEL, "1", "req-1")
    (out,) = answer["outputs"]
    assert (out["shape"], out["datatype"]) == ([20], "INT64")
    assert out["data"] == np.asarray(expected).tolist()

    # MLflow's own request form gives the same answer, in any column order.
    order = columns[::-1]
    split = {"columns": order, "data": rows[:, ::-1].tolist()}
    same = requests.post(f"{url}/predict", json={"dataframe_split": split}, timeout=10)
    assert same.json()["predictions"] == np.asarray(expected).tolist()


ROW = [0.0] * 64


def _v2(shape: Any, data: Any, datatype: Any = "FP32") -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": shape, "datatype": datatype, "data": data}]}


NAN_BODY = b'{"inputs":[{"name":"f","shape":[1,2],"datatype":"FP32","data":[NaN,1]}]}'
HUGE_BODY = (
    b'{"inputs":[{"name":"f","shape":[1,64],"datatype":"FP64","data":[1e400' + b",0" * 63 + b"]}]}"
)
INFINITY_BODY = b'{"instances":[[Infinity' + b",0" * 63 + b"]]}"
BAD_SPLIT = {"columns": ["x"], "data": [[1]]}
HUGE_INT_BODY = b'{"instances":[[1' + b"0" * 400 + b",0" * 63 + b"]]}"
DEEP_BODY = b'{"instances":' + b"[" * 5000 + b"]" * 5000 + b"}"
OVERSIZED_BODY = b'{"instances": [' + b"[0.5]," * 20000 + b"[0]]}"

BAD_INPUTS: list[tuple[str, str, Any, int, str]] = [
    # (id, route, JSON body or raw bytes, status, part of the message)
    ("v2-wrong-width", "v2", _v2([1, 63], [0.0] * 63), 400, "takes 64 features"),
    ("v2-shape-data-mismatch", "v2", _v2([2, 64], ROW), 400, "needs 128"),
    ("v2-shape-not-2d", "v2", _v2([64], ROW), 400, "expected [rows, 64]"),
    ("v2-bytes-datatype", "v2", _v2([1, 64], ["a"] * 64, "BYTES"), 400, "numeric features"),
    ("v2-string-value", "v2", _v2([1, 64], ["1.0", *ROW[1:]]), 400, "'1.0' is not a number"),
    ("v2-null-value", "v2", _v2([1, 64], [None, *ROW[1:]]), 400, "None is not a number"),
    ("v2-bool-value", "v2", _v2([1, 64], [True, *ROW[1:]]), 400, "True is not a number"),
    ("v2-float-for-int", "v2", _v2([1, 64], [0.5, *ROW[1:]], "INT64"), 400, "not an integer"),
    ("v2-two-tensors", "v2", {"inputs": [_v2([1, 64], ROW)["inputs"][0]] * 2}, 400, "one tensor"),
    ("v2-no-inputs", "v2", {"instances": [ROW]}, 400, "inputs: expected"),
    ("v2-nan-literal", "v2", NAN_BODY, 400, "NaN"),
    ("v2-overflow-inf", "v2", HUGE_BODY, 400, "not a finite number"),
    ("v2-float32-overflow", "v2", _v2([1, 64], [1e39, *ROW[1:]], "FP64"), 400, "float32 range"),
    ("predict-wrong-width", "predict", {"instances": [ROW[:10]]}, 400, "has 10 values"),
    ("predict-ragged", "predict", {"instances": [ROW, ROW[:63]]}, 400, "[1]: has 63 values"),
    ("predict-not-rows", "predict", {"instances": ROW[:3]}, 400, "expected a list of 64 numbers"),
    ("predict-empty", "predict", {"instances": []}, 400, "no rows"),
    ("predict-too-many-rows", "predict", {"instances": [ROW] * 51}, 400, "limit of 50"),
    ("predict-infinity", "predict", INFINITY_BODY, 400, "Infinity"),
    ("predict-bad-columns", "predict", {"dataframe_split": BAD_SPLIT}, 400, "missing"),
    ("predict-unknown-key", "predict", {"rows": [ROW]}, 400, "expected \"instances\""),
    ("huge-integer", "predict", HUGE_INT_BODY, 400, "outside the float32 range"),
    ("deeply-nested", "predict", DEEP_BODY, 400, "nested too deeply"),
    ("not-json", "predict", b"{not json", 400, "not valid JSON"),
    ("json-array", "predict", b"[1, 2]", 400, "expected a JSON object"),
    ("empty-body", "predict", b"", 400, "empty"),
    ("oversized", "predict", OVERSIZED_BODY, 413, "limit of 65536 bytes"),
    ("unknown-model", "other-model", _v2([1, 64], ROW), 404, "not served here"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("route", "body", "status", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_a_4xx_naming_the_rule(
    pinned_server: BackgroundServer, route: str, body: Any, status: int, message: str
) -> None:
    path = {
        "v2": f"/v2/models/{MODEL}/infer",
        "predict": "/predict",
        "other-model": "/v2/models/other-model/infer",
    }[route]
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = requests.post(
        pinned_server.url + path,
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"], reply.json()
    # The server keeps answering good requests after any bad one.
    good = requests.post(pinned_server.url + "/predict", json={"instances": [ROW]}, timeout=10)
    assert good.status_code == 200


class Load:
    """Client threads sending predictions until stopped, recording every answer."""

    def __init__(self, url: str, rows: np.ndarray, threads: int = 4) -> None:
        self.url = url
        self.rows = rows
        self.stop = threading.Event()
        self.answers: list[list[tuple[int, str]]] = [[] for _ in range(threads)]
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(threads)
        ]

    def _client(self, index: int) -> None:
        session = requests.Session()
        body_v2 = _v2([4, 64], self.rows[:4].ravel().tolist())
        k = 0
        while not self.stop.is_set():
            k += 1
            try:
                if k % 2:
                    reply = session.post(
                        f"{self.url}/predict",
                        json={"instances": self.rows[:2].tolist()},
                        timeout=30,
                    )
                    version = reply.json().get("model_version", "?")
                else:
                    reply = session.post(
                        f"{self.url}/v2/models/{MODEL}/infer", json=body_v2, timeout=30
                    )
                    version = reply.json().get("model_version", "?")
                self.answers[index].append((reply.status_code, version))
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def versions_seen(self) -> set[str]:
        """Every model version that answered."""
        return {v for answers in self.answers for _, v in answers}


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_better_model_takes_over_under_load_and_a_worse_one_does_not(
    champion_v1: Registry,
) -> None:
    server = start_server(champion_v1, poll_seconds=0.2)
    try:
        assert server.tracker.current is not None and server.tracker.current.version == "1"
        with Load(server.url, champion_v1.test_rows) as load:
            _wait_for(lambda: len(load.answers[0]) >= 5, 30, "first answers")
            promoted = champion_v1.register("strong")
            assert (promoted["version"], promoted["promoted"]) == (2, True), promoted
            _wait_for(lambda: "2" in load.versions_seen(), 60, "version 2 to answer")
            switched_at = [len(a) for a in load.answers]
            time.sleep(1.0)  # keep the load on after the swap
        assert load.errors == []
        statuses = {status for answers in load.answers for status, _ in answers}
        assert statuses == {200}, statuses
        total = sum(len(a) for a in load.answers)
        assert total > sum(switched_at), "no request after the swap"
        for answers in load.answers:
            versions = [v for _, v in answers]
            # Each client sees v1, then v2, never v1 again once v2 answered.
            assert versions == sorted(versions), versions
        assert load.versions_seen() == {"1", "2"}
        assert server.tracker.swaps == 1

        worse = champion_v1.register("weak")
        assert (worse["version"], worse["promoted"], worse["champion_version"]) == (3, False, 2)
        time.sleep(1.0)  # five polls
        reply = requests.post(f"{server.url}/predict", json={"instances": [ROW]}, timeout=10)
        assert reply.json()["model_version"] == "2"
        assert server.tracker.swaps == 1
    finally:
        server.stop()


def test_cli_serves_until_stopped_and_rejects_bad_options(
    champion_v1: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    from cnai.cli.main import main

    for key, value in champion_v1.env.items():
        monkeypatch.setenv(key, value)
    home = ["--home", str(champion_v1.home)]
    assert main([*home, "serve", "--model", "no-such-model", "--port", "0", "--json"]) == 2
    out, err = capsys.readouterr()
    assert "--model no-such-model: no registered model with alias 'champion'" in err
    assert json.loads(out)["error"].startswith("--model no-such-model: no registered model")
    assert main([*home, "serve", "--port", "70000"]) == 2
    assert "--port 70000: must be 0..65535" in capsys.readouterr().err
    assert main([*home, "serve", "--model-version", "x"]) == 2
    assert "--model-version 'x': must be a version number" in capsys.readouterr().err
    assert main([*home, "serve", "--model-version", "99", "--port", "0"]) == 2
    assert f"--model {MODEL}: no version 99" in capsys.readouterr().err
    assert main([*home, "serve", "--threads", "0"]) == 2
    assert "--threads 0: must be >= 1" in capsys.readouterr().err

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    env.update(champion_v1.env)
    base = [sys.executable, "-m", "cnai", "--home", str(champion_v1.home), "serve"]
    proc = subprocess.Popen(
        [*base, "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["model"] == MODEL and ready["following"] == "champion"
        assert ready["url"].startswith("http://127.0.0.1:")
        reply = requests.post(f"{ready['url']}/predict", json={"instances": [ROW]}, timeout=30)
        assert reply.status_code == 200
        assert reply.json()["model_version"] == str(ready["version"])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0
