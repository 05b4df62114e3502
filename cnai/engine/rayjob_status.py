"""The ``status`` a KubeRay v1.7.0 operator gives a RayJob, for each way a local run ends.

The local engine runs a RayJob's entrypoint itself, then evaluates the template's
``successCondition``/``failureCondition`` against the status KubeRay would have
written, so that the conditions a cluster relies on are exercised here. The
terminal states follow ray-project/kuberay v1.7.0:

- ``ray-operator/apis/ray/v1/rayjob_types.go`` (lines 18-77): ``jobStatus`` (the Ray
  job: "", PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED), ``jobDeploymentStatus``
  (the RayJob: Initializing, Running, Complete, Failed, ValidationFailed, ...) and
  the ``reason`` of a Failed deployment;
- ``ray-operator/controllers/ray/rayjob_controller.go``: a terminal Ray job makes
  the deployment Complete, or Failed with reason AppFailed when the job FAILED
  (lines 343-348), so a STOPPED job is a *Complete* deployment; a submitter that
  fails before the job reports a terminal state makes it Failed with reason
  SubmissionFailed while ``jobStatus`` stays as it was (lines 1103-1110, 1155-1162);
  passing ``activeDeadlineSeconds`` or ``preRunningDeadlineSeconds`` makes it
  Failed with DeadlineExceeded / PreRunningDeadlineExceeded (line 1257) without
  touching ``jobStatus``; a spec the operator rejects is ValidationFailed (line 151).

Written by hand: no library models KubeRay's state machine, and the few facts used
are transcribed above with their source.
"""

from __future__ import annotations

from enum import Enum


class LocalOutcome(Enum):
    """How the local stand-in for a RayJob ended."""

    SUCCEEDED = "succeeded"
    """The entrypoint exited 0."""
    APP_FAILED = "app-failed"
    """The entrypoint exited non-zero."""
    STOPPED = "stopped"
    """The job was stopped (the run was cancelled while it ran)."""
    SUBMISSION_FAILED = "submission-failed"
    """The entrypoint (or the Ray runtime it needs) could not be started."""
    DEADLINE_EXCEEDED = "deadline-exceeded"
    """``activeDeadlineSeconds`` (or the step's deadline) passed while it ran."""
    VALIDATION_FAILED = "validation-failed"
    """The manifest is one the operator would reject."""


def kuberay_status(outcome: LocalOutcome, message: str) -> dict[str, str]:
    """The RayJob ``status`` fields KubeRay v1.7.0 reports for ``outcome``."""
    job, deployment, reason = {
        LocalOutcome.SUCCEEDED: ("SUCCEEDED", "Complete", ""),
        LocalOutcome.APP_FAILED: ("FAILED", "Failed", "AppFailed"),
        LocalOutcome.STOPPED: ("STOPPED", "Complete", ""),
        LocalOutcome.SUBMISSION_FAILED: ("PENDING", "Failed", "SubmissionFailed"),
        LocalOutcome.DEADLINE_EXCEEDED: ("RUNNING", "Failed", "DeadlineExceeded"),
        LocalOutcome.VALIDATION_FAILED: ("", "ValidationFailed", "ValidationFailed"),
    }[outcome]
    status = {"jobStatus": job, "jobDeploymentStatus": deployment, "message": message}
    if reason:
        status["reason"] = reason
    return status
