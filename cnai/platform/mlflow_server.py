"""An ``mlflow server`` process on 127.0.0.1 with a given backend store and artifact folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cnai.errors import CnaiError

HEALTH_TIMEOUT_S = 240.0
"""Seconds ``start`` waits for ``/health`` (the first start migrates a fresh database)."""


def mlflow_executable() -> str:
    """The ``mlflow`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("mlflow")
    return str(beside) if beside.is_file() else "mlflow"


def start(backend_uri: str, artifacts: Path, port: int, log: Path) -> int:
    """Start ``mlflow server`` in its own session; returns its pid (does not wait)."""
    artifacts.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    argv = [
        mlflow_executable(), "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts),
        "--default-artifact-root", "mlflow-artifacts:/",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return process.pid


def healthy(uri: str) -> bool:
    """Whether the server at ``uri`` answers ``/health``."""
    import requests

    try:
        return requests.get(f"{uri}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    if not pid:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_healthy(uri: str, pid: int, log: Path, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Block until the server answers; raise with the log's tail when it dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(uri):
            return
        if not alive(pid):
            break
        time.sleep(0.25)
    tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.is_file() else []
    raise CnaiError(f"mlflow server at {uri} did not become healthy: {' | '.join(tail)}")


def stop(pid: int | None, timeout: float = 20) -> None:
    """Terminate the server's process group (the server and its workers)."""
    if not alive(pid):
        return
    assert pid is not None
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
