"""Issue 18, items 20-25: hostile or careless input to ingest, tune, register and config.

Each test names the item it covers; each failed before its fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cnai.catalog import load_table
from cnai.config import load_settings
from cnai.errors import CnaiError
from tests.conftest import REPO
from tests.test_ingest import digits_batch, run_ingest, snapshot_count, write_parquet

# --- item 20: the fingerprint describes the bytes actually staged ----------------------


def _row_hashes(home: Path) -> list[int]:
    table = load_table(load_settings(home, environ={}))
    return list(table.scan().to_arrow().column("_cnai_row_hash").to_pylist())


def test_file_replaced_while_ingesting_never_lands_twice(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 20: a file renamed over between hashing and staging is not re-ingested later.

    Before the fix the snapshot recorded the old file's fingerprint with the new file's
    rows, so ingesting the (unchanged) folder again added those rows a second time.
    """
    import cnai.ingest as ingest_step

    source = write_parquet(tmp_path / "src" / "batch.parquet", digits_batch(20, seed=1))
    replacement = write_parquet(tmp_path / "next.parquet", digits_batch(30, seed=2))
    original = ingest_step.iter_batches
    replaced: list[bool] = []

    def replace_then_read(*args: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        if not replaced:
            os.replace(replacement, source)  # what an atomic writer does
            replaced.append(True)
        yield from original(*args, **kwargs)

    monkeypatch.setattr(ingest_step, "iter_batches", replace_then_read)
    first = run_ingest(tmp_home, source.parent)
    monkeypatch.setattr(ingest_step, "iter_batches", original)
    second = run_ingest(tmp_home, source.parent)
    third = run_ingest(tmp_home, source.parent)

    hashes = _row_hashes(tmp_home)
    assert len(hashes) == len(set(hashes)), "rows were ingested twice"
    assert first["rows_added"] + second["rows_added"] == len(hashes)
    assert third["changed"] is False


def test_file_changed_in_place_while_ingesting_fails_and_commits_nothing(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 20: a file rewritten in place after hashing fails the ingest (exit 1), nothing lands."""
    import cnai.ingest as ingest_step

    run_ingest(tmp_home, write_parquet(tmp_path / "base.parquet", digits_batch(10, seed=3)))
    before = snapshot_count(tmp_home)
    source = write_parquet(tmp_path / "src" / "batch.parquet", digits_batch(20, seed=4))
    other = write_parquet(tmp_path / "other.parquet", digits_batch(35, seed=5)).read_bytes()
    original = ingest_step.iter_batches

    def rewrite_then_read(*args: Any, **kwargs: Any) -> Iterator[pa.RecordBatch]:
        with open(source, "r+b") as handle:
            handle.truncate(0)
            handle.write(other)
        yield from original(*args, **kwargs)

    monkeypatch.setattr(ingest_step, "iter_batches", rewrite_then_read)
    with pytest.raises(CnaiError, match="changed while being ingested") as caught:
        run_ingest(tmp_home, source.parent)
    assert caught.value.exit_code == 1
    assert snapshot_count(tmp_home) == before
    assert _staged_files(tmp_home) == _committed_files(tmp_home)


# --- item 21: staged files of interrupted ingests --------------------------------------


def _data_dir(home: Path) -> Path:
    location = load_table(load_settings(home, environ={})).location()
    return Path(location.removeprefix("file://")) / "data"


def _staged_files(home: Path) -> set[str]:
    return {p.name for p in _data_dir(home).glob("cnai-*.parquet")}


def _committed_files(home: Path) -> set[str]:
    table = load_table(load_settings(home, environ={}))
    return (
        {Path(task.file.file_path).name for task in table.scan().plan_files()}
        if table.current_snapshot()
        else set()
    )


_KILL_DURING_STAGING = """
import os, signal, sys
import cnai.sources
import cnai.ingest as ingest_step
from cnai.config import load_settings
from cnai.progress import Progress

cnai.sources.BATCH_ROWS = 10
original = ingest_step.iter_batches

def read_then_die(*args, **kwargs):
    for index, batch in enumerate(original(*args, **kwargs)):
        yield batch
        if index == 1:
            os.kill(os.getpid(), int(sys.argv[3]))

ingest_step.iter_batches = read_then_die
ingest_step.ingest(sys.argv[1], settings=load_settings(sys.argv[2], environ={}),
                   progress=Progress(quiet=True))
"""


def _ingest_killed(
    home: Path, source: Path, signum: int, script: str = _KILL_DURING_STAGING
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    return subprocess.run(
        [sys.executable, "-c", script, str(source), str(home), str(signum)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_sigterm_during_staging_removes_staged_files(tmp_home: Path, tmp_path: Path) -> None:
    """Item 21: SIGTERM while staging deletes the partial data file and commits nothing."""
    import signal

    run_ingest(tmp_home, write_parquet(tmp_path / "base.parquet", digits_batch(10, seed=6)))
    committed = _committed_files(tmp_home)
    source = write_parquet(tmp_path / "big.parquet", digits_batch(60, seed=7))
    done = _ingest_killed(tmp_home, source, signal.SIGTERM)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert _staged_files(tmp_home) == committed
    assert not list((_data_dir(tmp_home) / "_cnai_staging").glob("*.json"))
    assert snapshot_count(tmp_home) == 1


def test_sigterm_while_files_are_staged_at_once_removes_them_all(
    tmp_home: Path, tmp_path: Path
) -> None:
    """SIGTERM while two files are staged at once (the signal lands in the main thread,
    which waits on both): both threads stop, every staged file is removed, exit 143."""
    import signal

    run_ingest(tmp_home, write_parquet(tmp_path / "base.parquet", digits_batch(10, seed=6)))
    committed = _committed_files(tmp_home)
    source = tmp_path / "many"
    for index in range(3):
        write_parquet(source / f"part-{index}.parquet", digits_batch(60, seed=20 + index))
    script = _KILL_DURING_STAGING.replace(
        "ingest_step.iter_batches = read_then_die",
        "ingest_step.iter_batches = read_then_die\n"
        "ingest_step.staging_threads = lambda files: min(files, 2)",
    )
    done = _ingest_killed(tmp_home, source, signal.SIGTERM, script)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert _staged_files(tmp_home) == committed
    assert not list((_data_dir(tmp_home) / "_cnai_staging").glob("*.json"))
    assert snapshot_count(tmp_home) == 1


def test_next_ingest_collects_files_of_a_killed_attempt(tmp_home: Path, tmp_path: Path) -> None:
    """Item 21: SIGKILL leaves a partial file; the next ingest removes it (grace elapsed)."""
    import signal

    run_ingest(tmp_home, write_parquet(tmp_path / "base.parquet", digits_batch(10, seed=8)))
    committed = _committed_files(tmp_home)
    source = write_parquet(tmp_path / "big.parquet", digits_batch(60, seed=9))
    done = _ingest_killed(tmp_home, source, signal.SIGKILL)
    assert done.returncode == -signal.SIGKILL
    assert _staged_files(tmp_home) - committed, "the killed attempt left no file to collect"

    os.environ["CNAI_INGEST_ORPHAN_GRACE_S"] = "0"
    try:
        result = run_ingest(tmp_home, source)
    finally:
        del os.environ["CNAI_INGEST_ORPHAN_GRACE_S"]
    assert result["rows_added"] == 60
    assert _staged_files(tmp_home) == _committed_files(tmp_home)
    assert not list((_data_dir(tmp_home) / "_cnai_staging").glob("*.json"))


def test_orphan_collection_spares_live_and_committed_files(tmp_home: Path, tmp_path: Path) -> None:
    """Item 21: only unreferenced files of dead attempts go; a live attempt's files stay."""
    base = write_parquet(tmp_path / "base.parquet", digits_batch(10, seed=10))
    run_ingest(tmp_home, base)
    data = _data_dir(tmp_home)
    leases = data / "_cnai_staging"
    leases.mkdir(exist_ok=True)

    def fake_attempt(heartbeat: float | None, new_name: bool = True) -> str:
        attempt = uuid.uuid4().hex
        name = f"cnai-{attempt}-1.parquet" if new_name else f"cnai-{attempt}.parquet"
        (data / name).write_bytes(base.read_bytes())
        if heartbeat is not None:
            body = {"attempt": attempt, "heartbeat": heartbeat}
            (leases / f"{attempt}.json").write_text(json.dumps(body))
        return name

    dead = fake_attempt(time.time() - 2 * 3600)
    old_style = fake_attempt(None, new_name=False)
    live = fake_attempt(time.time())
    unrelated = data / "kept-by-someone-else.parquet"
    unrelated.write_bytes(b"x")
    committed = _committed_files(tmp_home)

    result = run_ingest(tmp_home, write_parquet(tmp_path / "b.parquet", digits_batch(15, seed=11)))
    left = _staged_files(tmp_home)
    assert dead not in left and old_style not in left
    assert live in left and unrelated.exists()
    assert committed <= left
    assert result["total_rows"] == 25
    assert load_table(load_settings(tmp_home, environ={})).scan().to_arrow().num_rows == 25


def test_orphan_grace_setting_is_validated(tmp_home: Path, tmp_path: Path) -> None:
    """Item 21: a bad CNAI_INGEST_ORPHAN_GRACE_S is bad input (exit 2) naming the setting."""
    from cnai.staging import orphan_grace_s

    with pytest.raises(CnaiError, match="CNAI_INGEST_ORPHAN_GRACE_S") as caught:
        orphan_grace_s({"CNAI_INGEST_ORPHAN_GRACE_S": "soon"})
    assert caught.value.exit_code == 2
    assert orphan_grace_s({}) == 3600.0


# --- item 22: Katib grids are sized arithmetically and bounded --------------------------


def _experiment(algorithm: str, parameters: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "objective": {"type": "maximize", "objectiveMetricName": "val_accuracy"},
        "algorithm": {"algorithmName": algorithm},
        "parameters": parameters,
        **spec,
    }
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "hostile"},
        "spec": body,
    }


def _bounded_cli(args: list[str], home: Path, env: dict[str, str] | None = None) -> Any:
    """``cnai ARGS`` with 3 GiB of address space and 60 s, so the old behaviour fails safely."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    full_env.update(env or {})
    try:
        return subprocess.run(
            [sys.executable, "-m", "cnai", "--home", str(home), *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=full_env,
            timeout=60,
            preexec_fn=cap,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"cnai {' '.join(args)} ran past 60 s")


@pytest.mark.parametrize(
    ("space", "kind"),
    [
        ({"min": "1", "max": "1000000000"}, "int"),
        ({"min": "0.0", "max": "1.0", "step": "1e-12"}, "double"),
    ],
)
def test_huge_grid_is_refused_without_being_built(
    tmp_home: Path, tmp_path: Path, space: dict[str, str], kind: str
) -> None:
    """Item 22: a grid over 1..10^9 (or step 1e-12) exits 2 at once naming the limit."""
    import yaml

    name = "hidden" if kind == "int" else "lr"
    spec = _experiment("grid", [{"name": name, "parameterType": kind, "feasibleSpace": space}])
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = _bounded_cli(
        ["tune", "--experiment", str(path), "--export-katib", str(tmp_path / "o.yaml")], tmp_home
    )
    assert result.returncode == 2, result.stderr
    assert "spec.parameters[0].feasibleSpace" in result.stderr
    assert "CNAI_TUNE_MAX_GRID_POINTS" in result.stderr
    assert not (tmp_path / "o.yaml").exists()


def test_grid_size_is_the_product_and_the_limit_is_a_setting() -> None:
    """Item 22: the grid size is computed from counts; the bound comes from the setting."""
    from cnai.training.step import HYPERPARAMETERS
    from cnai.tuning.spec import max_grid_points, parse_experiment

    parameters = [
        {"name": "hidden", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "400"}},
        {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "300"}},
    ]
    spec = _experiment("grid", parameters)
    with pytest.raises(CnaiError, match="120,000 points") as caught:
        parse_experiment(spec, HYPERPARAMETERS)
    assert caught.value.exit_code == 2
    experiment = parse_experiment(spec, HYPERPARAMETERS, max_grid=200_000)
    assert experiment.grid_size() == 120_000
    assert experiment.max_trial_count == 120_000
    assert max_grid_points({"CNAI_TUNE_MAX_GRID_POINTS": "7"}) == 7
    with pytest.raises(CnaiError, match="CNAI_TUNE_MAX_GRID_POINTS"):
        max_grid_points({"CNAI_TUNE_MAX_GRID_POINTS": "-1"})


def test_random_search_over_a_huge_stepped_range_is_refused(tmp_home: Path) -> None:
    """Item 22: random sampling of a stepped range lists its values; bounded the same way."""
    from cnai.training.step import HYPERPARAMETERS
    from cnai.tuning.spec import parse_experiment

    space = {"min": "1", "max": "1000000000", "step": "2"}
    spec = _experiment(
        "random",
        [{"name": "hidden", "parameterType": "int", "feasibleSpace": space}],
        maxTrialCount=3,
    )
    with pytest.raises(CnaiError, match=r"spec.parameters\[0\].feasibleSpace: holds 500,000,000"):
        parse_experiment(spec, HYPERPARAMETERS)


def test_long_feasible_space_list_is_checked_in_linear_time(tmp_path: Path) -> None:
    """Item 22: 100,000 listed values parse in seconds (the quadratic check took minutes)."""
    script = (
        "from cnai.tuning.spec import parse_experiment\n"
        "from cnai.training.step import HYPERPARAMETERS\n"
        "import json, sys\n"
        "spec = json.load(open(sys.argv[1]))\n"
        "e = parse_experiment(spec, HYPERPARAMETERS)\n"
        "print(len(e.parameters[0].values))\n"
    )
    values = [str(0.001 + k * 1e-6) for k in range(100_000)]
    spec = _experiment(
        "random",
        [{"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": values}}],
        maxTrialCount=3,
    )
    path = tmp_path / "list.json"
    path.write_text(json.dumps(spec))
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("parsing 100,000 listed values ran past 30 s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "100000"


# --- item 25: configuration of the wrong type, unbounded config files, --home a file ----


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ("dataset:\n  classes: 5\n", "dataset.classes"),
        ("dataset:\n  classes: [0, one]\n", "dataset.classes[1]"),
        ("dataset:\n  features: 7\n", "dataset.features"),
        ("dataset:\n  features: {prefix: p, count: many}\n", "dataset.features.count"),
        ("dataset:\n  feature_shape: abc\n", "dataset.feature_shape"),
        ("dataset:\n  feature_shape: [1, x, 8]\n", "dataset.feature_shape[1]"),
        ("dataset:\n  split_fractions: [a, b, c]\n", "dataset.split_fractions[0]"),
        ("dataset:\n  key: 3\n", "dataset.key"),
        ("dataset:\n  label: [x]\n", "dataset.label"),
        ("events:\n  port: abc\n", "events.port"),
        ("events:\n  port: 99999\n", "events.port"),
        ("events:\n  params: [a]\n", "events.params"),
        ("events:\n  params: {branch: [a]}\n", "events.params.branch"),
    ],
)
def test_config_value_of_the_wrong_type_names_the_field(
    tmp_home: Path, config: str, field: str
) -> None:
    """Item 25: a wrong-typed config value is bad input (exit 2) naming the field."""
    from cnai.errors import UsageError

    (tmp_home / "config.yaml").write_text(config)
    with pytest.raises(UsageError) as caught:
        load_settings(tmp_home, environ={})
    assert f"{field} " in str(caught.value)


def test_config_type_error_through_the_cli(tmp_home: Path) -> None:
    """Item 25: the CLI answers a wrong-typed config with one line and exit 2."""
    (tmp_home / "config.yaml").write_text("dataset:\n  classes: 5\n")
    result = _bounded_cli(["ingest", "--json"], tmp_home)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "dataset.classes must be a list" in result.stderr


def test_endless_config_file_is_refused(tmp_home: Path) -> None:
    """Item 25: CNAI_CONFIG=/dev/zero is refused after a bounded read (exit 2)."""
    result = _bounded_cli(["ingest", "--json"], tmp_home, env={"CNAI_CONFIG": "/dev/zero"})
    assert result.returncode == 2, result.stderr
    assert "larger than 1,048,576 bytes" in result.stderr
    assert "CNAI_CONFIG_MAX_BYTES" in result.stderr


def test_config_size_limit_is_a_setting(tmp_home: Path) -> None:
    """Item 25: CNAI_CONFIG_MAX_BYTES bounds the config file read."""
    from cnai.errors import UsageError

    (tmp_home / "config.yaml").write_text("dataset:\n  table: cnai.digits\n")
    load_settings(tmp_home, environ={})
    with pytest.raises(UsageError, match="larger than 10 bytes"):
        load_settings(tmp_home, environ={"CNAI_CONFIG_MAX_BYTES": "10"})


def test_huge_feature_count_is_refused(tmp_home: Path) -> None:
    """Item 25: the prefix/count shorthand cannot declare 10^9 columns (exit 2, bounded)."""
    (tmp_home / "config.yaml").write_text(
        "dataset:\n  features: {prefix: p, count: 1000000000}\n  feature_shape: [1000000000]\n"
    )
    result = _bounded_cli(["ingest", "--json"], tmp_home)
    assert result.returncode == 2, result.stderr
    assert "dataset.features.count" in result.stderr
    assert "CNAI_MAX_FEATURES" in result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_home_that_is_a_file_is_bad_input(tmp_path: Path, how: str) -> None:
    """Item 25: --home (or CNAI_HOME) naming a file exits 2 naming it."""
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    args = [sys.executable, "-m", "cnai"]
    if how == "flag":
        args += ["--home", str(afile)]
        name = "--home"
    else:
        env["CNAI_HOME"] = str(afile)
        name = "CNAI_HOME"
    done = subprocess.run(
        [*args, "models", "list"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"{name} {afile}: is not a folder" in done.stderr


# --- item 24: duplicate columns --------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_duplicate_column_is_reported_as_duplicate(
    tmp_home: Path, tmp_path: Path, kind: str
) -> None:
    """Item 24: a column given twice is reported as such, not as missing (exit 2)."""
    from cnai.contract import ContractError

    columns = digits_batch(5, seed=12)
    names = [*columns, "label"]
    arrays = [pa.array(v) for v in columns.values()] + [pa.array(columns["label"])]
    table = pa.Table.from_arrays(arrays, names=names)
    path = tmp_path / f"dup.{kind}"
    if kind == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    with pytest.raises(ContractError) as caught:
        run_ingest(tmp_home, path)
    message = str(caught.value)
    assert "column 'label': appears 2 times (rule: each declared column once)" in message
    assert "missing" not in message
    assert caught.value.exit_code == 2


# --- item 23: register with missing model files, hostile model names --------------------


def _pyfunc(label: int) -> Any:
    """A pyfunc model that predicts ``label`` for every row (cheap to log and load)."""
    import mlflow.pyfunc
    import numpy as np

    class _Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return np.full(len(model_input), label, dtype=np.int64)

    return _Constant()


def _logged_run(settings: Any, label: int) -> tuple[str, Path]:
    """A run tagged like a train-step run, with a logged ``model``; (run id, model files)."""
    import mlflow
    import mlflow.pyfunc

    from cnai.catalog import load_table
    from cnai.model_io import MODEL_ARTIFACT
    from cnai.tracking import ensure_experiment

    experiment = ensure_experiment(settings)
    snapshot = load_table(settings).current_snapshot()
    assert snapshot is not None
    tags = {"cnai.snapshot_id": str(snapshot.snapshot_id), "cnai.table": "cnai.digits"}
    with mlflow.start_run(experiment_id=experiment, tags=tags) as run:
        info = mlflow.pyfunc.log_model(name=MODEL_ARTIFACT, python_model=_pyfunc(label))
    logged = mlflow.MlflowClient(settings.mlflow_tracking_uri).get_logged_model(info.model_id)
    return run.info.run_id, Path(logged.artifact_location.removeprefix("file://"))


@pytest.fixture
def registry_home(digits_home: Path, tmp_path: Path) -> Any:
    """Settings: the session's digits table, a fresh SQLite MLflow store."""
    env = {
        "CNAI_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "CNAI_MLFLOW_ARTIFACT_ROOT": (tmp_path / "artifacts").as_uri(),
        "CNAI_MLFLOW_RETRIES": "1",
    }
    return load_settings(digits_home, environ=env)


@pytest.mark.slow
def test_register_names_the_run_whose_model_files_are_missing(registry_home: Any) -> None:
    """Item 23: the candidate's model files gone: exit 2 naming --run-id and the model."""
    import shutil

    from cnai.errors import UsageError
    from cnai.progress import Progress
    from cnai.registry.register import register

    run_id, files = _logged_run(registry_home, 0)
    shutil.rmtree(files)
    with pytest.raises(UsageError) as caught:
        register(run_id, "hardening", settings=registry_home, progress=Progress(quiet=True))
    message = str(caught.value)
    assert f"--run-id {run_id}" in message
    assert "model files are missing" in message


@pytest.mark.slow
def test_register_names_the_champion_whose_model_files_are_missing(registry_home: Any) -> None:
    """Item 23: the champion's model files gone: exit 1 naming the champion version."""
    import shutil

    from cnai.progress import Progress
    from cnai.registry.register import register

    quiet = Progress(quiet=True)
    first, files = _logged_run(registry_home, 0)
    assert register(first, "hardening", settings=registry_home, progress=quiet)["promoted"]
    shutil.rmtree(files)
    second, _ = _logged_run(registry_home, 1)
    with pytest.raises(CnaiError) as caught:
        register(second, "hardening", settings=registry_home, progress=quiet)
    message = str(caught.value)
    assert caught.value.exit_code == 1
    assert "hardening champion v1" in message
    assert "model files are missing" in message


@pytest.mark.parametrize("name", ["../../x", "a'b", "x:y"])
def test_models_show_refuses_a_hostile_name(name: str) -> None:
    """Item 23: ``models show ../../x`` is bad input naming the model, not an MlflowException."""
    from cnai.errors import UsageError
    from cnai.registry.query import parse_model_spec

    with pytest.raises(UsageError, match="registered model name has no"):
        parse_model_spec(name)
