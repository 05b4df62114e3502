"""Pipeline tasks run the way the image runs them in the cluster (tests/pod.py).

Non-root uid/gid 1000 (the Dockerfile's ``USER 1000:1000`` and the template's
``securityContext``), a read-only root-owned copy of the code as the working
directory (the Dockerfile's ``WORKDIR /app``, created by root), ``HOME`` from the
Dockerfile's ENV, and exactly the environment of the chart-rendered ConfigMap and
the Secret (test values) plus the template's own ``env`` — nothing from this shell.

Regression (issue 12 item 1): with no ``CNAI_HOME`` in the ConfigMap every run
failed at ingest with ``PermissionError: [Errno 13] Permission denied:
'/app/.cnai'`` (reproduced in a container of the real image: scripts/image_test.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.pod import pod_task, render_chart, run_sandboxed

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None,
    reason="switching to uid 1000 in a private mount namespace needs root, unshare and setpriv",
)

PYTHON_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def chart_objects() -> list[dict]:
    """The chart rendered with its defaults (what `helm install` of the chart gives)."""
    return render_chart()


@pytest.mark.slow
def test_ingest_task_succeeds_as_the_image_user_in_a_read_only_cwd(
    chart_objects: list[dict], tmp_path: Path
) -> None:
    task = pod_task(chart_objects, "ingest", {})
    assert "CNAI_HOME" in task.env, "the rendered ConfigMap must give every step a home"
    result = run_sandboxed(task, tmp_path, PYTHON_BIN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PermissionError" not in result.stderr
    assert result.outputs["needed"] == "true"
    assert result.outputs["changed"] == "true"
    assert result.outputs["rows_added"] == "1797"
    assert not (tmp_path / "code" / ".cnai").exists()


@pytest.mark.slow
def test_without_cnai_home_the_task_falls_back_to_the_users_home(tmp_path: Path) -> None:
    """A release that drops CNAI_HOME still ingests: the code never writes into a
    read-only cwd (cnai.config.default_home), it uses $HOME/.cnai instead."""
    task = pod_task(render_chart({"config": {"CNAI_HOME": None}}), "ingest", {})
    assert "CNAI_HOME" not in task.env
    result = run_sandboxed(task, tmp_path, PYTHON_BIN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.outputs["rows_added"] == "1797"
    assert "/home/cnai/.cnai/landing" in result.stderr


def test_the_environment_is_only_what_the_pod_gets(chart_objects: list[dict]) -> None:
    """No key of the developer's shell leaks in: the env is ConfigMap + Secret + template."""
    task = pod_task(chart_objects, "ingest", {"source": "/nowhere"})
    shell_only = {"PWD", "USER", "SHELL", "VIRTUAL_ENV", "PYTHONPATH", "PIP_FIND_LINKS"}
    assert not shell_only & set(task.env)
    assert task.env["hera__outputs_directory"] == "/tmp/hera-outputs"
    assert task.argv[-1] == "/argo/staging/script"
    assert '"name": "source", "value": "/nowhere"' in task.script.replace('"default": "", ', "")


def test_the_tune_rayjob_pods_get_a_home_and_shared_tune_storage() -> None:
    """The tune RayJob's head and worker pods load the same ConfigMap; with the values
    OpenTofu's modules/pipeline passes (CNAI_CHECKPOINT_ROOT=s3://<bucket>/), Helm
    merges them with the chart's default CNAI_HOME, and Tune's storage_path is on the
    object store, which every Ray pod reaches (a pod-local folder is not shared)."""
    import yaml

    from cnai.config import load_settings

    objects = render_chart({"config": {"CNAI_CHECKPOINT_ROOT": "s3://cnai-checkpoints/"}})
    wft = next(o for o in objects if o["kind"] == "WorkflowTemplate")
    tune = next(t for t in wft["spec"]["templates"] if t["name"] == "tune")
    cluster = yaml.safe_load(tune["resource"]["manifest"])["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    names = {
        source["configMapRef"]["name"]
        for group in groups
        for container in group["template"]["spec"]["containers"]
        for source in container["envFrom"]
        if "configMapRef" in source
    }
    assert len(names) == 1
    data = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] in names)[
        "data"
    ]
    assert data["CNAI_HOME"] == "/tmp/cnai"
    settings = load_settings(environ=data)
    assert settings.tune_storage_path == "s3://cnai-checkpoints/tune"
