"""The register step against real MLflow stores: a SQLite file, and a real ``mlflow server``
backed by PostgreSQL (the cluster's set-up; skipped with the reason without PostgreSQL).

Each store gets two real training runs of the train step on the session's digits
table (Ray, workers=1): ``weak`` (1 epoch at a tiny learning rate, ~35% test accuracy)
and ``strong`` (3 epochs, ~90%). Tests register them under their own model names,
so they stay independent while sharing the runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnai.cli.main import main
from cnai.config import Settings, load_settings
from cnai.errors import CnaiError
from cnai.progress import Progress
from tests.conftest import REPO, MlflowServer, free_port, run_cli

pytestmark = pytest.mark.slow

RESULT_KEYS = {
    "model_name",
    "version",
    "created",
    "aliases",
    "promoted",
    "reason",
    "champion_version",
    "metrics",
}


@dataclass
class Store:
    """One MLflow store with two trained runs in it."""

    kind: str
    """``sqlite`` (file store) or ``postgres`` (``mlflow server`` on PostgreSQL)."""
    home: Path
    """The cnai home (its catalog holds the digits table)."""
    env: dict[str, str]
    """Environment pointing a ``cnai`` subprocess at this store."""
    settings: Settings
    """The same, for in-process calls."""
    weak: dict[str, Any]
    """``train`` result of the weak run."""
    strong: dict[str, Any]
    """``train`` result of the strong run."""
    artifacts: Path
    """Folder where the store's artifacts land (the server's artifacts destination)."""

    def artifact_dir(self, run_id: str) -> Path:
        """Local folder holding run ``run_id``'s artifacts."""
        uri = self.client().get_run(run_id).info.artifact_uri
        if uri.startswith("file://"):
            return Path(uri.removeprefix("file://"))
        return self.artifacts / uri.removeprefix("mlflow-artifacts:/")

    def register(self, run: dict[str, Any], model: str, **kwargs: Any) -> dict[str, Any]:
        """Run the register step in this process."""
        from cnai.registry.register import register

        return register(
            run["run_id"], model, settings=self.settings, progress=Progress(quiet=True), **kwargs
        )

    def client(self) -> Any:
        """An MlflowClient on this store."""
        from mlflow import MlflowClient

        uri = self.settings.mlflow_tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def versions(self, model: str) -> list[Any]:
        """Every version of ``model``, oldest first."""
        found = self.client().search_model_versions(f"name = '{model}'")
        return sorted(found, key=lambda v: int(v.version))

    def aliases(self, model: str) -> dict[str, int]:
        """Alias -> version of ``model``."""
        model_info = self.client().get_registered_model(model)
        return {a: int(v) for a, v in model_info.aliases.items()}


@pytest.fixture(scope="module", autouse=True)
def _boot_server_early(request: pytest.FixtureRequest) -> None:
    """Start the PostgreSQL-backed server's start-up while the SQLite tests run."""
    from cnai.platform.postgres import find_bin_dir

    if find_bin_dir() is not None:
        request.getfixturevalue("mlflow_pg_server_boot")


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest,
    digits_home: Path,
    ray_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Store:
    """A store of each kind with a weak and a strong training run."""
    from cnai.training.step import train

    if request.param == "postgres":
        server: MlflowServer = request.getfixturevalue("mlflow_pg_server")
        env = {
            "CNAI_MLFLOW_TRACKING_URI": server.uri,
            "CNAI_MLFLOW_ARTIFACT_ROOT": "mlflow-artifacts:/cnai",
        }
        artifacts = server.root / "artifacts"
    else:
        root = tmp_path_factory.mktemp("register-sqlite")
        env = {
            "CNAI_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "CNAI_MLFLOW_ARTIFACT_ROOT": (root / "artifacts").as_uri(),
        }
        artifacts = root / "artifacts"
    env["RAY_ADDRESS"] = ray_address
    settings = load_settings(digits_home, environ=env)
    quiet = Progress(quiet=True)
    weak = train(workers=1, epochs=1, lr=0.0003, git_sha="0" * 40, git_branch="main",
                 trigger="push", settings=settings, progress=quiet)  # fmt: skip
    strong = train(workers=1, epochs=3, git_sha="1" * 40, git_branch="main", trigger="data",
                   settings=settings, progress=quiet)  # fmt: skip
    assert strong["test_accuracy"] > weak["test_accuracy"] + 0.2, (weak, strong)
    return Store(request.param, digits_home, env, settings, weak, strong, artifacts)


def _register_cli(
    store: Store,
    args: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    """``cnai register ARGS`` on this store: a real subprocess for the SQLite store, the
    same CLI entry point in this process for the server store (imports cost ~10 s)."""
    if store.kind == "sqlite":
        result = run_cli(["register", *args], store.home, {**store.env, **env})
        return result.returncode, result.stdout, result.stderr
    for key, value in {**store.env, **env}.items():
        monkeypatch.setenv(key, value)
    code = main(["--home", str(store.home), "register", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_first_becomes_champion_better_takes_over_and_reregistering_adds_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "digits-classifier"
    argo = {"ARGO_WORKFLOW_NAME": "cnai-retrain-8x2kq", "ARGO_WORKFLOW_UID": "0b7c-uid"}
    code, out, err = _register_cli(
        store, ["--run-id", store.weak["run_id"], "--json"], argo, monkeypatch, capsys
    )
    assert code == 0, err
    first = json.loads(out.strip().splitlines()[-1])
    assert set(first) == RESULT_KEYS
    assert first["model_name"] == model
    assert first["version"] == 1 and first["created"] is True
    assert first["promoted"] is True and "no champion yet" in first["reason"]
    assert first["aliases"] == ["challenger", "champion"]
    assert first["champion_version"] == 1
    # Same rows as the train step's own test evaluation: the same number comes out.
    assert first["metrics"]["test_accuracy"] == pytest.approx(store.weak["test_accuracy"])

    version = store.versions(model)[0]
    run = store.client().get_run(store.weak["run_id"])
    assert version.tags["cnai.run_id"] == store.weak["run_id"]
    assert version.tags["cnai.snapshot_id"] == run.data.tags["cnai.snapshot_id"]
    assert version.tags["cnai.data_version"] == run.data.tags["cnai.data_version"]
    assert version.tags["cnai.table"] == "cnai.digits"
    assert version.tags["cnai.git_sha"] == "0" * 40
    assert version.tags["cnai.git_branch"] == "main"
    assert version.tags["cnai.trigger"] == "push"
    assert version.tags["cnai.argo.workflow_name"] == "cnai-retrain-8x2kq"
    assert version.tags["cnai.argo.workflow_uid"] == "0b7c-uid"
    assert version.tags["cnai.registration"] == "complete"
    assert version.tags["cnai.gate.promoted"] == "true"
    card = store.client().download_artifacts(store.weak["run_id"], version.tags["cnai.model_card"])
    card_text = Path(card).read_text()
    assert run.data.tags["cnai.snapshot_id"] in card_text and "0" * 40 in card_text

    better = store.register(store.strong, model)
    assert better["version"] == 2 and better["created"] is True
    assert better["promoted"] is True and better["champion_version"] == 2
    assert better["aliases"] == ["challenger", "champion"]
    assert better["metrics"]["champion_test_accuracy"] == pytest.approx(
        first["metrics"]["test_accuracy"]
    )
    assert "champion v1" in better["reason"]

    again = store.register(store.weak, model)
    assert again["created"] is False and again["version"] == 1
    assert again["aliases"] == [] and again["champion_version"] == 2
    assert [int(v.version) for v in store.versions(model)] == [1, 2]

    _champion_loads_and_predicts(store, better["metrics"]["test_accuracy"])


def _champion_loads_and_predicts(store: Store, expected_accuracy: float) -> None:
    import mlflow.pyfunc
    import pandas as pd

    from cnai.tracking import configure
    from cnai.training.data import read_split

    configure(store.settings)
    champion = mlflow.pyfunc.load_model("models:/digits-classifier@champion")
    features, labels = read_split(store.settings, "test")
    spec = store.settings.dataset
    batch = pd.DataFrame(features.astype(np.float64), columns=list(spec.features))
    predicted = champion.predict(batch)
    assert len(predicted) == len(labels)
    assert set(np.unique(predicted)) <= set(spec.classes)
    accuracy = float(np.mean(np.asarray(predicted) == np.asarray(spec.classes)[labels]))
    assert accuracy == pytest.approx(expected_accuracy)


def test_a_worse_model_stays_challenger(store: Store) -> None:
    model = "gate-worse"
    assert store.register(store.strong, model)["champion_version"] == 1
    worse = store.register(store.weak, model)
    assert worse["version"] == 2 and worse["created"] is True
    assert worse["promoted"] is False
    assert worse["aliases"] == ["challenger"]
    assert worse["champion_version"] == 1
    assert "champion v1" in worse["reason"]
    assert store.aliases(model) == {"champion": 1, "challenger": 2}
    assert store.versions(model)[1].tags["cnai.gate.promoted"] == "false"


def test_min_delta_keeps_the_champion_unless_the_gain_is_large_enough(store: Store) -> None:
    model = "gate-delta"
    store.register(store.weak, model)
    held = store.register(store.strong, model, min_delta=0.99)
    assert held["promoted"] is False and held["champion_version"] == 1
    assert "min_delta 0.99" in held["reason"]


# Forks one process per registration after the heavy imports, releases them together
# through a barrier, and prints their results: real processes racing, one import cost.
RACE_SCRIPT = """
import json, multiprocessing as mp, sys
from cnai.config import load_settings
from cnai.progress import Progress
import cnai.registry.register, mlflow.pyfunc, torch, pyiceberg.catalog.sql

def racer(barrier, queue, index, run_id, model):
    barrier.wait()
    try:
        result = cnai.registry.register.register(run_id, model, settings=load_settings(),
                                         progress=Progress(quiet=True))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    queue.put((index, result))

if __name__ == "__main__":
    out = []
    for model, run_ids in json.loads(sys.argv[1]):
        ctx = mp.get_context("fork")
        barrier, queue = ctx.Barrier(len(run_ids)), ctx.Queue()
        procs = [ctx.Process(target=racer, args=(barrier, queue, i, r, model))
                 for i, r in enumerate(run_ids)]
        for proc in procs:
            proc.start()
        results = dict(queue.get(timeout=300) for _ in procs)
        for proc in procs:
            proc.join()
        out.append([results[i] for i in range(len(run_ids))])
    print(json.dumps(out))
"""


def test_racing_registrations_yield_one_version_and_a_consistent_champion(store: Store) -> None:
    strong, weak = store.strong["run_id"], store.weak["run_id"]
    phases = [["race", [strong, strong, strong]], ["race-gate", [weak, strong]]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    env |= store.env | {"CNAI_HOME": str(store.home)}
    proc = subprocess.run(
        [sys.executable, "-c", RACE_SCRIPT, json.dumps(phases)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    same_run, two_runs = json.loads(proc.stdout.strip().splitlines()[-1])

    # Three simultaneous registrations of one run: one version, created exactly once.
    assert all("error" not in r for r in same_run), same_run
    assert [r["version"] for r in same_run] == [1, 1, 1]
    assert sorted(r["created"] for r in same_run) == [False, False, True]
    assert len(store.versions("race")) == 1

    # A weak and a strong run at once: whatever the order, the strong one ends champion.
    assert all("error" not in r for r in two_runs), two_runs
    weak_result, strong_result = two_runs
    assert {weak_result["version"], strong_result["version"]} == {1, 2}
    assert store.aliases("race-gate")["champion"] == strong_result["version"]
    assert weak_result["promoted"] is (weak_result["version"] == 1)

    names = [m.name for m in store.client().search_registered_models()]
    assert not [n for n in names if n.startswith("cnai-lock--")]  # locks released


def test_unknown_run_and_run_without_model_are_usage_errors(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnai.tracking import ensure_experiment

    experiment = ensure_experiment(store.settings)
    client = store.client()
    lineage_only = {"cnai.snapshot_id": "1", "cnai.table": "cnai.digits"}
    bare = client.create_run(experiment, tags=lineage_only)
    client.set_terminated(bare.info.run_id)
    unknown = "0123456789abcdef0123456789abcdef"
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()  # the MLflow client's own chatter above is not the CLI's output
    for run_id, expected in ((unknown, "no such run"), (bare.info.run_id, "no logged model")):
        code = main(["--home", str(store.home), "register", "--run-id", run_id, "--json"])
        out, err = capsys.readouterr()
        assert code == 2, err
        line = err.strip()
        assert len(line.splitlines()) == 1
        assert run_id in line and expected in line
        assert json.loads(out)["exit_code"] == 2  # --json: an object on failure too
    assert store.client().search_model_versions(f"run_id = '{bare.info.run_id}'") == []


# The failure is injected through the store's local artifact folder.
def test_a_failure_after_creation_rolls_back_and_a_retry_completes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = "rollback"
    # Through a server the blocked upload is an HTTP 500, which is retried: retry fast.
    monkeypatch.setenv("CNAI_MLFLOW_RETRY_DELAY", "0.05")
    store.register(store.weak, model)
    artifacts = store.artifact_dir(store.strong["run_id"])
    # A folder where v2's card file must go: the card upload fails after v2 is created.
    blocker = artifacts / "model_card" / f"{model}-v2.md"
    blocker.mkdir(parents=True)
    try:
        with pytest.raises(CnaiError, match="rolled back"):
            store.register(store.strong, model)
        assert [int(v.version) for v in store.versions(model)] == [1]
        assert store.aliases(model) == {"champion": 1, "challenger": 1}
    finally:
        blocker.rmdir()
    retried = store.register(store.strong, model)
    assert retried["created"] is True and retried["promoted"] is True
    assert store.aliases(model) == {
        "champion": retried["version"],
        "challenger": retried["version"],
    }


def test_an_interrupted_registration_is_completed_not_duplicated(store: Store) -> None:
    model = "interrupted"
    client = store.client()
    client.create_registered_model(model)
    # What a crash right after version creation leaves: a pending version, no aliases.
    logged = client.search_logged_models(
        [client.get_run(store.strong["run_id"]).info.experiment_id],
        filter_string=f"source_run_id = '{store.strong['run_id']}'",
    )[0]
    client.create_model_version(
        model,
        source=f"models:/{logged.model_id}",
        run_id=store.strong["run_id"],
        model_id=logged.model_id,
        tags={"cnai.registration": "pending"},
    )
    done = store.register(store.strong, model)
    assert done["version"] == 1 and done["created"] is False
    assert done["promoted"] is True and done["aliases"] == ["challenger", "champion"]
    assert store.versions(model)[0].tags["cnai.registration"] == "complete"
    assert len(store.versions(model)) == 1


# The listing code is store-agnostic; one store suffices.
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_models_list_and_show(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "listing"
    store.register(store.strong, model)
    store.register(store.weak, model)
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--home", str(store.home), "models", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli("list", "--json")
    assert code == 0
    listed = {m["name"]: m for m in json.loads(out)["models"]}
    assert listed[model]["versions"] == 2
    assert listed[model]["aliases"] == {"challenger": 2, "champion": 1}
    assert not [n for n in listed if n.startswith("cnai-lock--")]

    code, out, _ = cli("show", f"{model}@champion", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["version"] == 1 and shown["aliases"] == ["champion"]
    assert shown["lineage"]["run_id"] == store.strong["run_id"]
    assert shown["lineage"]["git_sha"] == "1" * 40
    assert shown["lineage"]["snapshot_id"].isdigit()
    assert shown["metrics"]["test_accuracy"] == pytest.approx(store.strong["test_accuracy"])
    assert shown["run_metrics"]["val_accuracy"] == pytest.approx(store.strong["val_accuracy"])

    code, out, _ = cli("show", model, "--json")
    assert [v["version"] for v in json.loads(out)["versions"]] == [1, 2]
    code, out, _ = cli("show", f"{model}/2")
    assert code == 0 and "challenger" in out and "not promoted" in out

    for spec, expected in ((f"{model}/9", "no version 9"), ("nope", "no such registered model")):
        code, _, err = cli("show", spec)
        assert code == 2 and expected in err


def test_unreachable_mlflow_fails_with_exit_1_after_bounded_retries(
    tmp_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # a stopped server: nothing listens
    monkeypatch.setenv("CNAI_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("CNAI_MLFLOW_RETRIES", "3")
    monkeypatch.setenv("CNAI_MLFLOW_RETRY_DELAY", "0.2")
    started = time.monotonic()
    code = main(["--home", str(tmp_home), "register", "--run-id", "a" * 32, "--json"])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 1 and json.loads(out)["exit_code"] == 1
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert f"MLflow at http://127.0.0.1:{port}" in line and "after 3 attempt(s)" in line
    assert 0.2 * 0.8 * 3 <= elapsed < 30  # it waited (backoff), but not for minutes


@pytest.fixture(autouse=True)
def _no_leftover_env() -> Iterator[None]:
    """The step must not leave MLflow's HTTP settings changed in this process."""
    before = {
        k: os.environ.get(k)
        for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    yield
    assert {k: os.environ.get(k) for k in before} == before


class _FlakyProxy:
    """A real HTTP proxy on 127.0.0.1 in front of the MLflow server that fails on cue.

    ``fail_before[path] = n``: the next n requests to ``path`` get a 503 without reaching
    the server (MLflow briefly down). ``lose_response[path] = n``: the next n requests are
    forwarded, but the client gets a 503 instead of the answer (the work was done, the
    response was lost).
    """

    def __init__(self, upstream: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import requests

        self.fail_before: dict[str, int] = {}
        self.lose_response: dict[str, int] = {}
        self.seen: list[tuple[str, str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                path = self.path.split("?")[0]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.fail_before.get(path, 0) > 0:
                    proxy.fail_before[path] -= 1
                    return self._reply(path, 503, b"upstream unavailable", {})
                response = requests.request(
                    self.command,
                    upstream + self.path,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() not in ("host",)},
                    timeout=60,
                )
                if proxy.lose_response.get(path, 0) > 0:
                    proxy.lose_response[path] -= 1
                    return self._reply(path, 503, b"response lost", {})
                headers = {
                    k: v
                    for k, v in response.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                self._reply(path, response.status_code, response.content, headers)

            def _reply(self, path: str, status: int, body: bytes, headers: dict[str, str]) -> None:
                proxy.seen.append((self.command, path, status))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            # http.server dispatches on these method names.
            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


# Needs HTTP between cnai and MLflow.
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_mlflow_errors_are_retried_and_a_lost_create_response_is_not_duplicated(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnai.registry.register import register

    proxy = _FlakyProxy(store.env["CNAI_MLFLOW_TRACKING_URI"])
    try:
        proxy.fail_before["/api/2.0/mlflow/runs/get"] = 2  # MLflow down for two calls
        proxy.lose_response["/api/2.0/mlflow/model-versions/create"] = 1
        monkeypatch.setenv("CNAI_MLFLOW_RETRY_DELAY", "0.05")
        settings = load_settings(
            store.home, environ={**store.env, "CNAI_MLFLOW_TRACKING_URI": proxy.uri}
        )
        result = register(
            store.strong["run_id"], "flaky", settings=settings, progress=Progress(quiet=True)
        )
    finally:
        proxy.close()
    assert result["version"] == 1 and result["created"] is True and result["promoted"] is True
    assert len(store.versions("flaky")) == 1  # the lost create was found, not repeated
    statuses = [(path, status) for _, path, status in proxy.seen]
    assert statuses.count(("/api/2.0/mlflow/runs/get", 503)) == 2
    assert ("/api/2.0/mlflow/model-versions/create", 503) in statuses
    assert store.versions("flaky")[0].tags["cnai.registration"] == "complete"


def test_a_crashed_holders_lock_is_broken_and_a_live_one_is_waited_for(store: Store) -> None:
    from cnai.registry.lock import lock_name, registry_lock

    client = store.client()
    uri = store.settings.mlflow_tracking_uri
    # A holder that crashed a while ago: its lease ran out.
    client.create_registered_model(
        lock_name("stale"),
        tags={"cnai.lock": "dead", "cnai.lock.holder": "gone:1", "cnai.lock.expires_at": "1"},
    )
    assert store.register(store.strong, "stale")["created"] is True
    assert lock_name("stale") not in [m.name for m in client.search_registered_models()]

    # A live holder: others wait, then give up naming it.
    with registry_lock(client, "held", store=uri) as held:
        waiting = registry_lock(client, "held", store=uri, wait_s=0.5)
        with pytest.raises(CnaiError, match=f"locked by {held.holder}"), waiting:
            pass
    with registry_lock(client, "held", store=uri, wait_s=0.5):
        pass  # released on exit: free again
