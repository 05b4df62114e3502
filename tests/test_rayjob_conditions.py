"""The RayJob steps end (fail or succeed) on every terminal state KubeRay v1.7.0 reports.

Facts (ray-project/kuberay v1.7.0):
- ray-operator/apis/ray/v1/rayjob_types.go:18-23 (jobStatus values), :49-58
  (jobDeploymentStatus values), :71-77 (Failed reasons);
- ray-operator/controllers/ray/rayjob_controller.go:343-348 (a terminal job makes the
  deployment Complete, or Failed/AppFailed when FAILED: STOPPED ends Complete),
  :1103-1110 and :1155-1162 (submitter failure: Failed/SubmissionFailed, jobStatus
  untouched), :1257-1258 (preRunningDeadlineSeconds: Failed/PreRunningDeadlineExceeded),
  :151 (ValidationFailed).
- argoproj/argo-workflows v4.1.2 workflow/executor/resource.go:279-305: a step fails
  when ANY failureCondition requirement matches, succeeds when ALL successCondition
  requirements match, and otherwise keeps polling until its deadline.

Before the fix the steps used ``failureCondition: status.jobStatus in (FAILED, STOPPED)``:
a submission failure (jobStatus PENDING) or a deadline (RUNNING) matched neither
condition, so the step hung for its 4 h deadline.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.engine.executors import ResourceExecutor, TaskContext
from cnai.engine.rayjob_status import LocalOutcome, kuberay_status
from cnai.errors import CnaiError


def rayjob_templates() -> dict[str, dict[str, Any]]:
    """The compiled tune and train resource templates."""
    from pipelines.retrain import compile_manifests

    doc = yaml.safe_load(next(iter(compile_manifests().values())))
    return {t["name"]: t for t in doc["spec"]["templates"] if "resource" in t}


@pytest.mark.parametrize("step", ["tune", "train"])
@pytest.mark.parametrize("outcome", list(LocalOutcome))
def test_every_terminal_rayjob_state_ends_the_step(step: str, outcome: LocalOutcome) -> None:
    template = rayjob_templates()[step]
    manifest = yaml.safe_load(
        template["resource"]["manifest"].replace("{{", "x").replace("}}", "x")
    )
    obj = {**manifest, "status": {**kuberay_status(outcome, "why"), "jobId": "j"}}
    attempt = ResourceExecutor._conclude(template, template["resource"], obj, step)
    if outcome is LocalOutcome.SUCCEEDED:
        assert attempt.phase == "Succeeded", attempt.message
    else:
        assert attempt.phase == "Failed"
        assert attempt.message.startswith("failure condition"), attempt.message


def test_rayjobs_carry_a_pre_running_deadline() -> None:
    """Unschedulable pods or an unpullable image fail the RayJob instead of waiting 4 h."""
    from pipelines.retrain import PRE_RUNNING_DEADLINE_SECONDS

    for template in rayjob_templates().values():
        spec = yaml.safe_load(template["resource"]["manifest"].replace("{{", "").replace("}}", ""))
        spec = spec["spec"]
        assert spec["preRunningDeadlineSeconds"] == PRE_RUNNING_DEADLINE_SECONDS
        assert 0 < spec["preRunningDeadlineSeconds"] < spec["activeDeadlineSeconds"]


def test_a_local_submission_failure_fails_the_step_by_its_failure_condition(
    tmp_path: Path,
) -> None:
    """The local engine cannot start the job (no Ray runtime): like KubeRay's
    SubmissionFailed, the template's failureCondition must match it."""
    template = rayjob_templates()["tune"]

    def no_ray() -> dict[str, str]:
        raise CnaiError("ray did not start")

    scope = {f"inputs.parameters.{p['name']}": "v1" for p in template["inputs"]["parameters"]} | {
        "workflow.name": "wf"
    }
    ctx = TaskContext(
        node_id="n",
        template=template,
        scope=scope,
        sandbox=tmp_path / "sandbox",
        log=tmp_path / "log",
        env={},
        deadline=None,
        cancelled=threading.Event(),
        ray_env=no_ray,
    )
    attempt = ResourceExecutor().run(ctx)
    assert attempt.phase == "Failed", attempt.message
    assert attempt.message.startswith("failure condition"), attempt.message
    assert "ray did not start" in attempt.message


def test_failure_conditions_match_on_any_requirement_like_argo() -> None:
    from cnai.engine.expr import condition_matches

    obj = {"status": {"jobStatus": "STOPPED", "jobDeploymentStatus": "Complete"}}
    text = "status.jobDeploymentStatus in (Failed), status.jobStatus == STOPPED"
    assert condition_matches(text, obj, "t", any_requirement=True)
    assert not condition_matches(text, obj, "t")
