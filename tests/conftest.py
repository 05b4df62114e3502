"""Shared fixtures: one Ray runtime, one MLflow store and one ingested digits home per session.

Start-up costs (ray.init ~6 s, a first MLflow model log ~16 s) are paid once per
test session; tests that need isolation take a fresh ``tmp_home`` instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = Path(os.environ.get("CNAI_SHARED_SCHEMAS", REPO.parent / "shared" / "schemas"))


@dataclass
class CliResult:
    """Outcome of one ``cnai`` subprocess."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The command's ``--json`` object (the last stdout line)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_cli(
    args: Sequence[str],
    home: Path,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> CliResult:
    """Run ``python -m cnai --home HOME ARGS`` as a real subprocess."""
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI into os.environ; an earlier
    # test's (stopped) server must not leak into this subprocess.
    leaky = ("CNAI_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(leaky)}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "cnai", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(autouse=True)
def _restore_mlflow_env() -> Iterator[None]:
    """Undo what mlflow.set_tracking_uri()/set_registry_uri() leave behind in a test.

    They export MLFLOW_* variables and also keep the URIs in module globals, which an
    ``MlflowClient(tracking_uri)`` of a later test would otherwise use as its registry.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {name: os.environ.get(name) for name in names}
    saved_uris = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tracking_utils._tracking_uri, registry_utils._registry_uri = saved_uris


@pytest.fixture
def tmp_home(tmp_path: Path) -> Path:
    """A fresh, empty cnai home."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    """The upstream schema files ($CNAI_SHARED_SCHEMAS or ../shared/schemas).

    Only the cross-checks in tests/test_lint_upstream.py use it (they skip without a
    copy); cnai lint and every other schema test validate from what the project installs.
    """
    if not SCHEMAS.is_dir():
        pytest.skip(f"upstream schemas not present at {SCHEMAS}")
    return SCHEMAS


@pytest.fixture(scope="session")
def digits_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose cnai.digits table holds the default digits data (ingested once)."""
    from cnai.config import load_settings
    from cnai.ingest import ingest
    from cnai.progress import Progress

    home = tmp_path_factory.mktemp("digits-home")
    ingest(settings=load_settings(home, environ={}), progress=Progress(quiet=True))
    return home


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """One local Ray runtime for the whole session; its GCS address for subprocesses."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@dataclass
class MlflowServer:
    """A real ``mlflow server`` process on 127.0.0.1 (SQLite backend, local artifacts)."""

    uri: str
    """``http://127.0.0.1:<port>``."""
    root: Path
    """Folder holding its database, artifacts and log."""
    process: subprocess.Popen[bytes]
    """The server process (leader of its own process group)."""

    def wait_healthy(self, timeout: float = 240) -> None:
        """Block until ``/health`` answers; fail the test with the log tail if it dies."""
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.uri}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        log = (self.root / "server.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"mlflow server at {self.uri} did not become healthy:\n{log}")

    def stop(self) -> None:
        """Terminate the server and its workers (its process group)."""
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(root: Path, backend_uri: str | None = None) -> MlflowServer:
    """Start ``mlflow server`` (1 worker, no job runner) under ``root``; does not wait.

    ``backend_uri``: its backend store (default: a SQLite file under ``root``).
    """
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with (root / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "server",
                "--backend-store-uri",
                backend_uri or f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--default-artifact-root",
                "mlflow-artifacts:/",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return MlflowServer(f"http://127.0.0.1:{port}", root, process)


@pytest.fixture(scope="session")
def mlflow_server_boot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The session's ``mlflow server``, started but maybe not ready yet (request early
    to overlap its start-up with other work; use ``mlflow_server`` to get a ready one)."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_boot: MlflowServer) -> MlflowServer:
    """One real ``mlflow server`` on 127.0.0.1 for the session, healthy."""
    mlflow_server_boot.wait_healthy()
    return mlflow_server_boot


# ---------------------------------------------------------------- PostgreSQL back end

BACKENDS = ("sqlite", "postgres")
"""Store back ends the store-sensitive tests run against."""


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster for the session (cnai.platform.postgres), on a free
    port of 127.0.0.1, as an unprivileged user when the tests run as root.

    Skipped with the reason when the server binaries are absent; with
    ``CNAI_REQUIRE_POSTGRES=1`` (CI) that is a failure instead.
    """
    import shutil
    import tempfile

    from cnai.platform.postgres import PostgresCluster, find_bin_dir, server_user
    from cnai.platform.profile import INSTALL_HINT

    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CNAI_REQUIRE_POSTGRES"):
            pytest.fail(f"CNAI_REQUIRE_POSTGRES is set but: {INSTALL_HINT}")
        pytest.skip(f"PostgreSQL variants skipped: {INSTALL_HINT}")
    # Not under pytest's temp folder: that is closed (0700) to the server's user.
    top = Path(tempfile.mkdtemp(prefix="cnai-test-pg-"))
    top.chmod(0o711)
    cluster = PostgresCluster(top / "cluster", bin_dir, top / "pgpass", server_user())
    try:
        cluster.init()
        cluster.start(free_port())
        cluster.wait_ready()
        cluster.ensure_database("iceberg")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres``: the store back end of this test's variant."""
    if request.param == "postgres":
        request.getfixturevalue("postgres")
    return str(request.param)


def postgres_catalog_config(home: Path, cluster: Any) -> None:
    """Write ``home/config.yaml`` pointing its Iceberg catalog at the session's PostgreSQL
    (a catalog name of its own, so homes sharing the database never see each other)."""
    import uuid

    import yaml

    config = {
        "catalog": {
            "name": f"t{uuid.uuid4().hex[:12]}",
            "properties": {
                "type": "sql",
                "uri": cluster.uri("iceberg"),
                "warehouse": (home / "iceberg" / "warehouse").as_uri(),
            },
        }
    }
    (home / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def store_home(tmp_home: Path, backend: str, request: pytest.FixtureRequest) -> Path:
    """A fresh home whose Iceberg catalog is on SQLite or on PostgreSQL (``backend``)."""
    if backend == "postgres":
        postgres_catalog_config(tmp_home, request.getfixturevalue("postgres"))
    return tmp_home


@pytest.fixture(scope="session")
def mlflow_pg_server_boot(
    postgres: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """The session's ``mlflow server`` on PostgreSQL (database ``mlflow_tests``), as in the
    cluster; started but maybe not ready yet (``mlflow_pg_server`` waits for it)."""
    postgres.ensure_database("mlflow_tests")
    root = tmp_path_factory.mktemp("mlflow-pg-server")
    server = start_mlflow_server(root, postgres.uri("mlflow_tests"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_pg_server(mlflow_pg_server_boot: MlflowServer) -> MlflowServer:
    """One real ``mlflow server`` backed by PostgreSQL for the session, healthy."""
    mlflow_pg_server_boot.wait_healthy()
    return mlflow_pg_server_boot
