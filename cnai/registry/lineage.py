"""The tags that tie a registered model version to its data, code and run.

Every version cnai registers carries (keys are MLflow model-version tags):

==========================  ==========================================================
``cnai.run_id``             the MLflow training run
``cnai.model_id``           the MLflow logged model registered (``models:/<id>``)
``cnai.table``              Iceberg table ``NS.NAME`` trained and evaluated on
``cnai.snapshot_id``        Iceberg snapshot id trained and evaluated on
``cnai.data_version``       content hash of the table at that snapshot
``cnai.git_sha``            code revision (when the run recorded one)
``cnai.git_branch``         branch (when the run recorded one)
``cnai.trigger``            push / data / schedule / manual (when recorded)
``cnai.argo.workflow_name`` Argo workflow that registered it (inside Argo only)
``cnai.argo.workflow_uid``  its uid (inside Argo only)
==========================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Run tags written by the train step.
RUN_TABLE = "cnai.table"
RUN_SNAPSHOT = "cnai.snapshot_id"
RUN_DATA_VERSION = "cnai.data_version"
RUN_GIT_SHA = "cnai.git_sha"
RUN_GIT_BRANCH = "cnai.git_branch"
RUN_TRIGGER = "cnai.trigger"

# Version tags written by the register step.
RUN_ID = "cnai.run_id"
MODEL_ID = "cnai.model_id"
TABLE = "cnai.table"
SNAPSHOT_ID = "cnai.snapshot_id"
DATA_VERSION = "cnai.data_version"
GIT_SHA = "cnai.git_sha"
GIT_BRANCH = "cnai.git_branch"
TRIGGER = "cnai.trigger"
ARGO_WORKFLOW_NAME = "cnai.argo.workflow_name"
ARGO_WORKFLOW_UID = "cnai.argo.workflow_uid"

# Environment the retrain pipeline passes into its pods ({{workflow.name}}, {{workflow.uid}}).
ENV_ARGO_WORKFLOW_NAME = "ARGO_WORKFLOW_NAME"
ENV_ARGO_WORKFLOW_UID = "ARGO_WORKFLOW_UID"


@dataclass(frozen=True)
class Lineage:
    """Where a model came from: its run, data snapshot and code revision."""

    run_id: str
    """MLflow run that trained the model."""
    model_id: str | None
    """MLflow logged model id, None for a model logged as plain run artifacts."""
    table: str
    """Iceberg table ``NS.NAME``."""
    snapshot_id: int
    """Iceberg snapshot the model was trained (and is evaluated) on."""
    data_version: str
    """Content hash of the table at that snapshot."""
    git_sha: str | None = None
    """Code revision, when the run recorded it."""
    git_branch: str | None = None
    """Branch, when the run recorded it."""
    trigger: str | None = None
    """What started the retrain (push, data, schedule, manual), when recorded."""
    argo_workflow_name: str | None = None
    """Argo workflow name when registering inside Argo."""
    argo_workflow_uid: str | None = None
    """Argo workflow uid when registering inside Argo."""

    def tags(self) -> dict[str, str]:
        """The version tags (absent values left out)."""
        values = {
            RUN_ID: self.run_id,
            MODEL_ID: self.model_id,
            TABLE: self.table,
            SNAPSHOT_ID: str(self.snapshot_id),
            DATA_VERSION: self.data_version,
            GIT_SHA: self.git_sha,
            GIT_BRANCH: self.git_branch,
            TRIGGER: self.trigger,
            ARGO_WORKFLOW_NAME: self.argo_workflow_name,
            ARGO_WORKFLOW_UID: self.argo_workflow_uid,
        }
        return {key: value for key, value in values.items() if value}


def argo_context(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """Argo workflow (name, uid) from the environment; (None, None) outside Argo."""
    env = os.environ if environ is None else environ
    return env.get(ENV_ARGO_WORKFLOW_NAME) or None, env.get(ENV_ARGO_WORKFLOW_UID) or None
