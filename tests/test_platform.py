"""The local platform profile end to end, and faults against its real servers.

``cnai platform up`` starts a PostgreSQL cluster and an ``mlflow server`` on it for one
home; ``cnai run`` of cnai-retrain uses them (the PostgreSQL variant of the full run in
test_pipeline.py); the champion is served by that server. Then the faults: PostgreSQL
restarted while a registration is in flight and while an ingest commits, the MLflow
server killed between creating a version and tagging it. The last tests check that the
next run completes with no duplicate snapshot, no duplicate model version and no
RUNNING MLflow run, and that ``cnai platform down`` stops exactly what ``up`` started.

The tests run in file order and share the module's platform. Skipped (with the reason)
where the PostgreSQL server binaries are absent.
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

import pytest

from cnai.config import load_settings
from cnai.platform.postgres import find_bin_dir
from cnai.platform.profile import INSTALL_HINT, cluster_for, read_state
from tests.conftest import REPO, run_cli
from tests.test_ingest import digits_batch, write_parquet
from tests.test_pipeline import TINY_EXPERIMENT

pytestmark = pytest.mark.slow

MODEL = "digits-classifier"
FAULT_TABLE = "lab.faults"
"""Table the ingest fault writes to, so the pipeline's own table stays unchanged."""


@dataclass
class Platform:
    """A home with a running platform and one finished ``cnai run``."""

    home: Path
    """The cnai home."""
    env: dict[str, str]
    """Environment for ``cnai`` subprocesses (the session's Ray)."""
    run_args: list[str]
    """The ``cnai run`` arguments of the first run (tiny experiment, 1 epoch)."""
    first_run: dict[str, Any]
    """``cnai run --json`` summary of the first run."""

    def status(self) -> dict[str, Any]:
        """``cnai platform status --json``."""
        result = run_cli(["--json", "platform", "status"], self.home, self.env)
        assert result.returncode == 0, result.stderr
        status: dict[str, Any] = result.json()
        return status

    def client(self) -> Any:
        """An MlflowClient on the platform's server (its current URI)."""
        from mlflow import MlflowClient

        uri = load_settings(self.home, environ={}).mlflow_tracking_uri
        assert uri.startswith("http://127.0.0.1:")
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def versions(self, model: str) -> list[Any]:
        """Every version of ``model``, oldest first."""
        found = self.client().search_model_versions(f"name = '{model}'")
        return sorted(found, key=lambda v: int(v.version))

    def champion_run_id(self) -> str:
        """The MLflow run whose model is the pipeline's champion."""
        return str(self.client().get_model_version_by_alias(MODEL, "champion").run_id)

    def restart_postgres_until(self, proc: subprocess.Popen[str], limit_s: float = 240) -> int:
        """Restart PostgreSQL (fast: open connections are cut) over and over until ``proc``
        exits; returns how many restarts happened while it ran."""
        cluster = cluster_for(self.home)
        assert cluster is not None
        restarts = 0
        deadline = time.monotonic() + limit_s
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.7)
            if proc.poll() is None:
                cluster.restart()
                restarts += 1
        assert proc.poll() is not None, "the command under test hung"
        return restarts


def _cnai(home: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "cnai", "--home", str(home), *args],
        cwd=REPO,
        env=child_env | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, ray_address: str) -> Iterator[Platform]:
    """``cnai platform up`` on a fresh home, then one full ``cnai run``; down at the end."""
    if find_bin_dir() is None:
        if os.environ.get("CNAI_REQUIRE_POSTGRES"):
            pytest.fail(f"CNAI_REQUIRE_POSTGRES is set but: {INSTALL_HINT}")
        pytest.skip(f"platform tests skipped: {INSTALL_HINT}")
    home = tmp_path_factory.mktemp("platform") / "home"
    experiment = home.parent / "tiny.yaml"
    experiment.write_text(TINY_EXPERIMENT)
    env = {"RAY_ADDRESS": ray_address}
    up = run_cli(["--json", "platform", "up"], home, env)
    assert up.returncode == 0, up.stderr[-3000:]
    args = ["-p", "workers=1", "-p", f"experiment={experiment}", "-p", "epochs=1",
            "-p", "git_sha=platform-e2e"]  # fmt: skip
    try:
        first = run_cli(["--json", "run", *args, "--run-id", "platform-first"], home, env)
        assert first.returncode == 0, first.stderr[-3000:]
        yield Platform(home, env, args, first.json())
    finally:
        run_cli(["platform", "down", "--purge"], home, env)  # its data may be under /tmp


def test_up_run_and_the_champion_is_served_by_the_platforms_server(platform: Platform) -> None:
    status = platform.status()
    assert status["up"] is True and status["postgres"]["running"] is True
    assert status["postgres"]["databases"] == ["iceberg", "mlflow"]
    if os.geteuid() == 0:
        assert status["postgres"]["user"] not in (None, "root")
    settings = load_settings(platform.home, environ={})
    assert settings.catalog_properties["uri"].startswith("postgresql+psycopg2://cnai@127.0.0.1:")
    assert "passfile=" in settings.catalog_properties["uri"]
    assert settings.mlflow_tracking_uri == status["mlflow"]["uri"]
    # Nothing went to the embedded SQLite stores.
    assert not (platform.home / "iceberg" / "catalog.db").exists()
    assert not (platform.home / "mlflow" / "mlflow.db").exists()
    # The generated password is in the 0600 passfile only, never in the config.
    passfile = platform.home / "platform" / "pgpass"
    assert passfile.stat().st_mode & 0o077 == 0
    password = passfile.read_text().strip().rsplit(":", 1)[1]
    assert password not in (platform.home / "config.yaml").read_text()

    summary = platform.first_run
    assert summary["phase"] == "Succeeded"
    assert summary["model"] == {"name": MODEL, "version": "1", "promoted": True}

    import mlflow
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    mlflow.set_tracking_uri(status["mlflow"]["uri"])
    mlflow.set_registry_uri(status["mlflow"]["uri"])
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    features = [f"pixel_{i}" for i in range(64)]
    batch = pd.DataFrame(np.zeros((3, 64)), columns=features)
    assert len(champion.predict(batch)) == 3


def test_postgres_restarted_while_a_registration_is_in_flight(platform: Platform) -> None:
    run_id = platform.champion_run_id()
    env = platform.env | {"CNAI_MLFLOW_RETRIES": "8", "CNAI_MLFLOW_RETRY_DELAY": "0.5"}
    model = "fault-pg-register"
    proc = _cnai(platform.home, env, "--json", "register", "--run-id", run_id,
                 "--model-name", model)  # fmt: skip
    restarts = platform.restart_postgres_until(proc)
    _out, err = proc.communicate()
    assert restarts >= 1
    # It either rode out the restarts (retries) or failed as a runtime error, never as
    # bad input; either way the next registration completes without a duplicate.
    assert proc.returncode in (0, 1), err[-2000:]
    if proc.returncode == 1:
        assert err.strip().splitlines()[-1].startswith("cnai: error: ")
    again = run_cli(["--json", "register", "--run-id", run_id, "--model-name", model],
                    platform.home, platform.env)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    result = again.json()
    assert result["version"] == 1 and result["champion_version"] == 1
    versions = platform.versions(model)
    assert len(versions) == 1
    assert versions[0].tags["cnai.registration"] == "complete"
    names = [m.name for m in platform.client().search_registered_models()]
    assert not [n for n in names if n.startswith("cnai-lock--")]


# Runs the cnai CLI in a process whose first SQLAlchemy Session.commit (for an existing
# table, the catalog's table commit: the UPDATE of its metadata pointer has run inside
# the open transaction) first restarts PostgreSQL, so that transaction is cut.
RESTART_AT_COMMIT_SCRIPT = """
import sys
from pathlib import Path
from sqlalchemy.orm import Session
from cnai.platform.profile import cluster_for

home = Path(sys.argv[1])
original = Session.commit
restarted = []

def restart_then_commit(self):
    if not restarted:
        restarted.append(True)
        cluster_for(home).restart()
        print("restarted PostgreSQL", file=sys.stderr, flush=True)
    return original(self)

Session.commit = restart_then_commit
from cnai.cli.main import main
sys.exit(main(["--home", str(home), *sys.argv[2:]]))
"""


def test_postgres_restarted_while_an_ingest_commits(platform: Platform, tmp_path: Path) -> None:
    from cnai.catalog import load_table

    seed = write_parquet(tmp_path / "seed" / "a.parquet", digits_batch(10, seed=30))
    first = run_cli(["--json", "ingest", "--table", FAULT_TABLE, "--source", str(seed)],
                    platform.home, platform.env)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    batch = write_parquet(tmp_path / "batch" / "b.parquet", digits_batch(40, seed=31))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    cut = subprocess.run(
        [sys.executable, "-c", RESTART_AT_COMMIT_SCRIPT, str(platform.home), "--json",
         "ingest", "--table", FAULT_TABLE, "--source", str(batch)],
        cwd=REPO, env=env | platform.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "restarted PostgreSQL" in cut.stderr
    # The cut commit fails as a runtime error on one line; nothing half-done is visible.
    assert cut.returncode == 1, cut.stdout + cut.stderr[-2000:]
    assert cut.stderr.strip().splitlines()[-1].startswith("cnai: error: ")
    table = load_table(load_settings(platform.home, environ={}).with_table(FAULT_TABLE))
    assert table.scan().to_arrow().num_rows == 10
    assert len(table.metadata.snapshots) == 1
    # The rerun lands the batch exactly once, as exactly one snapshot; a third is a no-op.
    for expected_changed in (True, False):
        again = run_cli(["--json", "ingest", "--table", FAULT_TABLE, "--source", str(batch)],
                        platform.home, platform.env)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        assert again.json()["changed"] is expected_changed
    table = load_table(load_settings(platform.home, environ={}).with_table(FAULT_TABLE))
    assert table.scan().to_arrow().num_rows == 50
    assert len(table.metadata.snapshots) == 2


# Registers a run in a process of its own whose create_model_version SIGKILLs the MLflow
# server's process group right after the version exists, before the step tags it.
KILL_SCRIPT = """
import os, signal, sys
from mlflow import MlflowClient
from cnai.progress import Progress
from cnai.registry.register import register

run_id, model, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
original = MlflowClient.create_model_version

def create_then_kill(self, *args, **kwargs):
    version = original(self, *args, **kwargs)
    os.killpg(pid, signal.SIGKILL)
    print("killed", flush=True)
    return version

MlflowClient.create_model_version = create_then_kill
try:
    register(run_id, model, progress=Progress(quiet=True))
except Exception as exc:
    print(f"error: {type(exc).__name__}: {exc}".splitlines()[0])
    sys.exit(1)
"""


def test_mlflow_server_killed_between_creating_a_version_and_tagging_it(
    platform: Platform,
) -> None:
    run_id = platform.champion_run_id()
    model = "fault-server-killed"
    pid = int(read_state(platform.home)["mlflow_pid"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    env |= platform.env | {
        "CNAI_HOME": str(platform.home),
        "CNAI_MLFLOW_RETRIES": "2",
        "CNAI_MLFLOW_RETRY_DELAY": "0.1",
    }
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, run_id, model, str(pid)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == 1, killed.stdout + killed.stderr[-2000:]
    assert killed.stdout.splitlines()[0] == "killed"
    assert "error: CnaiError: MLflow at" in killed.stdout

    # `up` again starts only what is missing: a new server, the same PostgreSQL.
    port_before = platform.status()["postgres"]["port"]
    up = run_cli(["--json", "platform", "up"], platform.home, platform.env)
    assert up.returncode == 0, up.stderr[-2000:]
    status = up.json()
    assert status["up"] is True and status["mlflow"]["pid"] != pid
    assert status["postgres"]["port"] == port_before

    pending = platform.versions(model)
    assert len(pending) == 1 and pending[0].tags["cnai.registration"] == "pending"
    # The dead registration still holds the model's registry lock (it could not release
    # it); its holder process is gone, so the next one need not wait out the lease.
    started = time.monotonic()
    again = run_cli(["--json", "register", "--run-id", run_id, "--model-name", model],
                    platform.home, platform.env)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert time.monotonic() - started < 60  # the lease is 120 s
    done = again.json()
    assert done["version"] == 1 and done["created"] is False
    assert done["aliases"] == ["challenger", "champion"]
    versions = platform.versions(model)
    assert len(versions) == 1 and versions[0].tags["cnai.registration"] == "complete"
    names = [m.name for m in platform.client().search_registered_models()]
    assert not [n for n in names if n.startswith("cnai-lock--")]


def test_after_the_faults_the_next_run_completes_with_nothing_duplicated(
    platform: Platform,
) -> None:
    from cnai.catalog import load_table

    after = run_cli(["--json", "run", *platform.run_args, "--run-id", "platform-after"],
                    platform.home, platform.env)  # fmt: skip
    assert after.returncode == 0, after.stderr[-3000:]
    summary = after.json()
    assert summary["phase"] == "Succeeded"
    assert summary["model"]["version"] == "1"
    table = load_table(load_settings(platform.home, environ={}))
    assert len(table.metadata.snapshots) == 1  # the digits table: no duplicate snapshot
    assert [int(v.version) for v in platform.versions(MODEL)] == [1]
    client = platform.client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
    assert [r.info.run_id for r in running] == []


def test_down_stops_exactly_what_up_started(platform: Platform) -> None:
    import psutil

    state = read_state(platform.home)
    cluster = cluster_for(platform.home)
    assert cluster is not None and cluster.running()
    server_pid = int(state["mlflow_pid"])
    down = run_cli(["--json", "platform", "down"], platform.home, platform.env)
    assert down.returncode == 0, down.stderr
    assert sorted(down.json()["stopped"]) == ["mlflow", "postgres"]
    assert not cluster.running()
    assert not psutil.pid_exists(server_pid) or (
        psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    )
    assert not (platform.home / "config.yaml").exists()  # there was none before `up`
    status = platform.status()
    assert status["up"] is False and status["postgres"]["running"] is False
    # The data stays: `up` again resumes the same registry; `--purge` deletes it.
    assert (cluster.data / "PG_VERSION").is_file()
    purged = run_cli(["--json", "platform", "down", "--purge"], platform.home, platform.env)
    assert purged.returncode == 0 and purged.json()["purged"] is True
    assert not cluster.root.exists()
    assert not (platform.home / "platform" / "pgpass").exists()


def test_up_without_postgres_binaries_says_how_to_get_them(
    tmp_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnai.cli.main import main
    from cnai.platform import profile

    monkeypatch.setattr(profile, "find_bin_dir", lambda: None)
    code = main(["--home", str(tmp_home), "--json", "platform", "up"])
    out, err = capsys.readouterr()
    assert code == 1 and json.loads(out)["exit_code"] == 1  # --json: an object on failure too
    last = err.strip().splitlines()[-1]
    assert last.startswith("cnai: error: PostgreSQL server binaries (initdb, pg_ctl) not found")
    assert "apt-get install postgresql" in last and "CNAI_POSTGRES_BIN" in last
    assert not (tmp_home / "config.yaml").exists()


def test_bin_dir_is_found_from_the_setting_first(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("initdb", "pg_ctl"):
        (fake / name).write_text("#!/bin/sh\n")
    assert find_bin_dir({"CNAI_POSTGRES_BIN": str(fake), "PATH": ""}) == fake
    assert find_bin_dir({"CNAI_POSTGRES_BIN": str(tmp_path / "none"), "PATH": ""}) != fake


def test_a_lost_database_is_one_line_and_exit_1(tmp_home: Path) -> None:
    """Driver messages span lines (SQL, hints, a help link); the CLI prints one."""
    from tests.conftest import free_port

    port = free_port()  # nothing listens there: PostgreSQL is down
    uri = f"postgresql+psycopg2://cnai@127.0.0.1:{port}/iceberg"
    result = run_cli(["ingest"], tmp_home, {"CNAI_CATALOG__URI": uri})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cnai: error: ")
    assert f"port {port} failed" in last and "Connection refused" in last


def test_status_and_down_on_a_home_that_never_ran_up_change_nothing(tmp_home: Path) -> None:
    status = run_cli(["--json", "platform", "status"], tmp_home)
    assert status.returncode == 0 and status.json()["up"] is False
    down = run_cli(["--json", "platform", "down"], tmp_home)
    assert down.returncode == 0 and down.json()["stopped"] == []
    assert list(tmp_home.iterdir()) == []
