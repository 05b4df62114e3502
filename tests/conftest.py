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
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
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


@pytest.fixture
def tmp_home(tmp_path: Path) -> Path:
    """A fresh, empty cnai home."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    """../shared/schemas; tests using it skip when it is absent."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"upstream schemas not present at {SCHEMAS}")
    return SCHEMAS


@pytest.fixture(scope="session")
def digits_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose cnai.digits table holds the default digits data (ingested once)."""
    from cnai.config import load_settings
    from cnai.progress import Progress
    from steps.ingest import ingest

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
