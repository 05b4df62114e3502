"""`git push` -> post-receive hook -> gateway -> run, with real git and a real gateway.

The first test checks the hook and the filters with a recorder launcher; the second runs
the real pipeline (`cnai run`) once, with git_sha equal to the pushed commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.test_events_support import (
    SECRET,
    GatewayProcess,
    argv_params,
    recorded,
    start_gateway,
    write_recorder,
)

ENGINE = REPO / "cnai" / "cli" / "commands" / "run.py"
SMOKE_EXPERIMENT = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: events-smoke
spec:
  objective:
    type: maximize
    objectiveMetricName: val_accuracy
  algorithm:
    algorithmName: random
  maxTrialCount: 1
  parallelTrialCount: 1
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.005", max: "0.01"}
    - name: epochs
      parameterType: int
      feasibleSpace: {min: "1", max: "1"}
"""


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **(env or {}),
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=True
    )
    return result.stdout + result.stderr


def _commit(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", message)
    return _git(work, "rev-parse", "HEAD").strip()


def _repos(tmp_path: Path, gateway: GatewayProcess) -> tuple[Path, Path]:
    """A bare origin with the hook installed, and a clone to push from."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    result = run_cli(
        ["events", "install-hook", "--repo", str(origin), "--url", gateway.url + "/push", "--json"],
        gateway.home,
    )
    assert result.returncode == 0, result.stderr
    assert result.json()["repository"] == "cnai-dev/cnai"
    hook = Path(result.json()["hook"])
    assert hook.stat().st_mode & 0o111 and SECRET not in hook.read_text()
    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", str(origin), str(work))
    return origin, work


def _push(work: Path, *refspec: str) -> str:
    return _git(work, "push", "origin", *refspec, env={"CNAI_GITHUB_WEBHOOK_SECRET": SECRET})


def _decisions(gateway: GatewayProcess) -> list[str]:
    return [e["decision"] for e in gateway.log_lines() if e.get("kind") == "delivery"]


def test_git_push_through_the_hook_runs_only_relevant_default_branch_pushes(
    tmp_path: Path,
) -> None:
    record = tmp_path / "runs.jsonl"
    launcher = f"{sys.executable} {write_recorder(tmp_path)}"
    gateway = start_gateway(
        tmp_path / "home", ["--launcher", launcher], env={"RECORDER_FILE": str(record)}
    )
    try:
        _, work = _repos(tmp_path, gateway)
        _commit(work, {"README.md": "hello\n"}, "readme")
        out = _push(work, "HEAD:main")  # creates main; README only
        assert "200" in out
        _git(work, "checkout", "-q", "-b", "dev")
        _commit(work, {"steps/extra.py": "x = 1\n"}, "dev change")
        _push(work, "dev")
        _git(work, "checkout", "-q", "main")
        _commit(work, {"README.md": "hello again\n"}, "readme only")
        _push(work, "main")
        assert recorded(record) == []
        sha = _commit(work, {"steps/train_tweak.py": "y = 2\n", "README.md": "x\n"}, "code")
        out = _push(work, "main")
        assert "202" in out, out
        _push(work, ":dev")  # a branch deletion
        deadline = time.time() + 30
        while not recorded(record) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        runs = recorded(record)
        assert len(runs) == 1
        params = argv_params(runs[0]["argv"])
        assert params["git_sha"] == sha
        assert params["git_branch"] == "main" and params["trigger"] == "push"
        decisions = _decisions(gateway)
        assert decisions.count("accepted") == 1
        assert "filtered: ref refs/heads/dev" in decisions
        assert sum(d.startswith("filtered: [commits") for d in decisions) == 2
    finally:
        assert gateway.stop() == 0


@pytest.mark.slow
@pytest.mark.skipif(not ENGINE.exists(), reason="the local engine (`cnai run`) has not landed")
def test_git_push_runs_the_real_pipeline_with_the_pushed_sha(
    tmp_path: Path, ray_address: str
) -> None:
    home = tmp_path / "home"
    experiment = tmp_path / "smoke-experiment.yaml"
    experiment.write_text(SMOKE_EXPERIMENT)
    params = ["-p", "workers=1", "-p", "epochs=1", "-p", f"experiment={experiment}"]
    gateway = start_gateway(home, params, env={"RAY_ADDRESS": ray_address})
    try:
        _, work = _repos(tmp_path, gateway)
        _commit(work, {"README.md": "hello\n"}, "readme")
        _push(work, "HEAD:main")
        sha = _commit(work, {"pipelines/experiments/note.txt": "retrain\n"}, "pipeline change")
        out = _push(work, "main")
        answer = json.loads(out[out.index("{") : out.rindex("}") + 1])
        run_id = answer["run_id"]
        record = gateway.wait_run(run_id, timeout=900)
        log = Path(record["log_path"]).read_text()
        assert record["status"] == "succeeded", log[-3000:]
        assert record["phase"] == "Succeeded"
        show = run_cli(["runs", "show", run_id, "--json"], home)
        assert show.returncode == 0, show.stderr
        assert sha in show.stdout
    finally:
        assert gateway.stop() == 0
