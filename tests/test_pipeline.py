"""The retrain pipeline: the compiled WorkflowTemplate, and ``cnai run`` end to end.

The end-to-end test runs the real steps (Iceberg ingest, Ray Tune, Ray Train DDP,
MLflow registry) through the compiled YAML with tiny settings, on the session's
one Ray runtime.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from cnai.engine.spec import check_supported
from pipelines.retrain import PARAMETERS, TEMPLATE_NAME, compile_manifests
from tests.conftest import REPO, run_cli

TINY_EXPERIMENT = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: tiny}
spec:
  objective: {type: maximize, objectiveMetricName: val_accuracy}
  algorithm:
    algorithmName: random
    algorithmSettings: [{name: random_state, value: "7"}]
  parallelTrialCount: 1
  maxTrialCount: 1
  maxFailedTrialCount: 0
  parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.002", max: "0.01"}}
  - {name: epochs, parameterType: int, feasibleSpace: {min: "1", max: "1"}}
"""


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(compile_manifests()[f"{TEMPLATE_NAME}.yaml"])


def _templates(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in spec["spec"]["templates"]}


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    dag = _templates(spec)["retrain"]["dag"]["tasks"]
    return {t["name"]: t for t in dag}


def test_parameters_explain_themselves(spec: dict[str, Any]) -> None:
    params = {p["name"]: p for p in spec["spec"]["arguments"]["parameters"]}
    for name in (
        "git_sha",
        "git_branch",
        "repository",
        "trigger",
        "source",
        "experiment",
        "workers",
        "epochs",
    ):
        assert params[name]["description"], name
    assert params["trigger"]["enum"] == ["push", "data", "schedule", "manual"]
    assert [p["name"] for p in PARAMETERS] == list(params)


def test_dag_and_work_avoidance(spec: dict[str, Any]) -> None:
    tasks = _tasks(spec)
    assert list(tasks) == ["ingest", "tune", "tune-result", "train", "train-result", "register"]
    assert tasks["tune"]["depends"] == "ingest" and tasks["register"]["depends"] == "train-result"
    for name, task in tasks.items():
        if name != "ingest":
            assert task["when"] == "{{tasks.ingest.outputs.parameters.needed}} == true"
    templates = _templates(spec)
    for name in ("tune", "train"):
        memo = templates[name]["memoize"]
        assert memo["key"] == "{{inputs.parameters.result_key}}" and memo["maxAge"] == "720h"
        assert memo["cache"]["configMap"]["name"] == "cnai-retrain-memo"
    from pipelines.tasks import work_key

    assert work_key("tune", "dv", "sha") == work_key("tune", "dv", "sha")
    assert work_key("tune", "dv", "sha") != work_key("tune", "dv", "sha2")
    from cnai.engine.memo import KEY_PATTERN

    assert KEY_PATTERN.match(work_key("train", "dv", {"lr": 0.1}, "a/b c"))


def test_heavy_steps_are_rayjobs_running_the_step_code(spec: dict[str, Any]) -> None:
    from pipelines.retrain import RAYJOB_FAILURE, RAYJOB_SUCCESS

    templates = _templates(spec)
    for name in ("tune", "train"):
        resource = templates[name]["resource"]
        assert resource["action"] == "create"
        # Why these: tests/test_rayjob_conditions.py (KubeRay v1.7.0 terminal states).
        assert resource["successCondition"] == RAYJOB_SUCCESS
        assert resource["failureCondition"] == RAYJOB_FAILURE
        assert templates[name]["activeDeadlineSeconds"] > 0
        manifest = yaml.safe_load(
            resource["manifest"].replace("{{inputs.parameters.workers}}", "2")
        )
        assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
        entry = manifest["spec"]["entrypoint"]
        assert entry.startswith(f"python -m cnai.engine.entrypoint steps.{name}:{name} ")
        assert manifest["spec"]["activeDeadlineSeconds"] > 0
        assert templates[name]["retryStrategy"]["backoff"]["duration"]


def test_cluster_hygiene(spec: dict[str, Any]) -> None:
    body = spec["spec"]
    assert body["serviceAccountName"] == "cnai-pipeline"
    assert body["securityContext"]["runAsNonRoot"] is True
    assert body["synchronization"]["mutexes"][0]["name"] == (
        "cnai-retrain-{{workflow.parameters.git_branch}}"
    )
    assert body["onExit"] == "record-outcome"
    assert body["ttlStrategy"] and body["podGC"]["strategy"]
    text = yaml.safe_dump(spec)
    assert "artifacts" not in text  # data and models never travel as Argo artifacts
    for template in body["templates"]:
        if "script" in template:
            script = template["script"]
            assert script["resources"]["requests"] and script["resources"]["limits"]
            assert script["securityContext"]["allowPrivilegeEscalation"] is False
            refs = [next(iter(e.values()))["name"] for e in script["envFrom"]]
            assert refs == ["cnai-pipeline-config", "cnai-pipeline-secrets"]
            assert template["retryStrategy"]["backoff"]
            assert script["image"].startswith("ghcr.io/cnai-dev/cnai-pipeline:")
        if "resource" in template:
            manifest = template["resource"]["manifest"]
            assert "cnai-pipeline-config" in manifest and "runAsNonRoot: true" in manifest
            assert "limits:" in manifest and "serviceAccountName: cnai-pipeline" in manifest
    assert check_supported(spec) == []  # the local engine runs every field it uses
    custom = yaml.safe_load(compile_manifests("registry.example/cnai", "v9")["cnai-retrain.yaml"])
    assert "image: registry.example/cnai:v9" in yaml.safe_dump(custom)


def test_unsafe_values_never_reach_a_command_line() -> None:
    from cnai.errors import UsageError
    from pipelines.tasks import ingest_and_plan

    with pytest.raises(UsageError, match="git_branch"):
        ingest_and_plan(git_branch="main;$(rm -rf /)")
    with pytest.raises(UsageError, match="trigger"):
        ingest_and_plan(trigger="cron")
    with pytest.raises(UsageError, match="workers"):
        ingest_and_plan(workers="0")
    with pytest.raises(UsageError, match="model_name"):
        ingest_and_plan(model_name="m $(id)")


def test_the_model_name_is_read_at_run_time_not_compiled_in(spec: dict[str, Any]) -> None:
    """The compiled template names no model: ingest resolves an empty `model_name` from
    the configuration and register gets ingest's output."""
    assert "digits-classifier" not in yaml.safe_dump(spec)
    tasks = _tasks(spec)
    register = {p["name"]: p["value"] for p in tasks["register"]["arguments"]["parameters"]}
    assert register["model_name"] == "{{tasks.ingest.outputs.parameters.model_name}}"
    from cnai.config import load_settings
    from pipelines.tasks import configured_model_name

    assert configured_model_name(load_settings(Path("/nonexistent"), environ={})) == (
        "digits-classifier"
    )


# ------------------------------------------------------------------ end to end


def _record(home: Path, run_id: str) -> dict[str, Any]:
    path = home / "runs" / run_id / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _node(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next((t for t in record.get("tasks", []) if t["id"] == name), {})


def _versions(home: Path) -> list[Any]:
    from mlflow import MlflowClient

    from cnai.config import load_settings

    settings = load_settings(home, environ={})
    client = MlflowClient(settings.mlflow_tracking_uri)
    return list(client.search_model_versions("name='digits-classifier'"))


@pytest.mark.slow
def test_run_rerun_kill_and_retry(tmp_path: Path, ray_address: str) -> None:
    home = tmp_path / "home"
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(TINY_EXPERIMENT)
    env = {"RAY_ADDRESS": ray_address}
    base = ["-p", "workers=1", "-p", f"experiment={experiment}", "-p", "git_sha=e2e1"]

    first = run_cli(["--json", "run", *base, "-p", "epochs=1", "--run-id", "e2e-first"], home, env)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = first.json()
    assert summary["phase"] == "Succeeded"
    assert summary["model"] == {
        "name": "digits-classifier",
        "version": "1",
        "promoted": True,
        "reused": False,
    }
    assert {t["name"]: t["phase"] for t in summary["tasks"]} == {
        "ingest": "Succeeded",
        "tune": "Succeeded",
        "tune-result": "Succeeded",
        "train": "Succeeded",
        "train-result": "Succeeded",
        "register": "Succeeded",
        "onExit": "Succeeded",
    }

    # Nothing changed: everything after ingest is skipped by its `when`.
    second = run_cli(["--json", "run", *base, "-p", "epochs=1"], home, env)
    assert second.returncode == 0, second.stderr[-3000:]
    again = {t["name"]: t for t in second.json()["tasks"]}
    assert all(again[n]["skipped"] for n in ("tune", "train", "register"))
    assert second.json()["model"]["version"] == "1"
    # A skipped rerun promoted nothing (friction 8): it reuses what an earlier run registered.
    assert second.json()["model"]["promoted"] is False and second.json()["model"]["reused"]

    # New training parameters: tune is memoized (its key did not change), train runs;
    # the engine is killed with SIGKILL while training, then `cnai runs retry` finishes.
    cmd = [
        sys.executable,
        "-m",
        "cnai",
        "--home",
        str(home),
        "run",
        *base,
        "-p",
        "epochs=2",
        "--run-id",
        "e2e-killed",
    ]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")} | env
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 400
    train: dict[str, Any] = {}
    while time.time() < deadline and proc.poll() is None:
        train = _node(_record(home, "e2e-killed"), "train")
        if train.get("phase") == "Running" and train.get("pid"):
            break
        time.sleep(0.5)
    assert train.get("pid"), "training never started"
    time.sleep(3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = _record(home, "e2e-killed")
    assert _node(killed, "tune")["memoized"] is True
    assert _node(killed, "train")["phase"] == "Running"  # as the engine left it
    # The training process died with its engine (no orphan keeps training).
    gone_by = time.time() + 15
    while time.time() < gone_by and psutil.pid_exists(int(train["pid"])):
        time.sleep(0.2)
    assert (
        not psutil.pid_exists(int(train["pid"]))
        or psutil.Process(int(train["pid"])).status() == psutil.STATUS_ZOMBIE
    )

    shown = run_cli(["--json", "runs", "show", "e2e-killed"], home, env)
    assert shown.json()["phase"] == "Error"
    retried = run_cli(["--json", "runs", "retry", "e2e-killed"], home, env)
    assert retried.returncode == 0, retried.stderr[-3000:]
    result = retried.json()
    assert result["run_id"] == "e2e-killed" and result["phase"] == "Succeeded"
    after = _record(home, "e2e-killed")
    assert _node(after, "ingest")["finished_at"] == _node(killed, "ingest")["finished_at"]
    assert result["model"]["version"] == "2"

    # The table was appended once (first run); the registry gained exactly one version.
    from cnai.catalog import load_table
    from cnai.config import load_settings

    table = load_table(load_settings(home, environ={}))
    assert len(table.snapshots()) == 1
    assert sorted(int(v.version) for v in _versions(home)) == [1, 2]

    listed = run_cli(["--json", "runs", "list"], home, env).json()["runs"]
    assert {r["run_id"] for r in listed} >= {"e2e-first", "e2e-killed"}
    logs = run_cli(["runs", "logs", "e2e-killed", "train"], home, env)
    assert logs.returncode == 0 and "--- attempt" not in logs.stdout.split("RayJob")[0]
    assert "RayJob local-" in logs.stdout
