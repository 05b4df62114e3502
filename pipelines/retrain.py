"""The retrain pipeline, authored with Hera: WorkflowTemplate ``cnai-retrain``.

DAG (every task after ``ingest`` runs only ``when`` ingest says training is needed)::

    ingest -> tune (RayJob) -> tune-result -> train (RayJob) -> train-result -> register
    onExit: record-outcome

Small tasks are Hera runner scripts calling :mod:`pipelines.tasks` in the pipeline
image; tune and train are KubeRay ``RayJob`` resources whose entrypoint runs the
same step code (``python -m cnai.engine.entrypoint steps.train:train ...``). Only
small values travel as parameters; data and models stay in Iceberg and MLflow.
``compile_manifests`` returns the YAML ``cnai compile`` writes and ``cnai run``
executes locally.
"""

from __future__ import annotations

import itertools
from typing import Any, cast

import yaml

from cnai import __version__
from cnai.argo.pipeline import Pipeline
from cnai.engine.badinput import RETRY_UNLESS_BAD_INPUT

TEMPLATE_NAME = "cnai-retrain"
IMAGE = "ghcr.io/cnai-dev/cnai-pipeline"
SERVICE_ACCOUNT = "cnai-pipeline"
CONFIG_MAP = "cnai-pipeline-config"
SECRET = "cnai-pipeline-secrets"
MEMO_CACHE = "cnai-retrain-memo"
MODEL_NAME = "digits-classifier"
MEMO_MAX_AGE = "720h"
TUNE_DEADLINE_SECONDS = 4 * 3600
TRAIN_DEADLINE_SECONDS = 4 * 3600
WORKFLOW_DEADLINE_SECONDS = 12 * 3600
PRE_RUNNING_DEADLINE_SECONDS = 30 * 60
"""A RayJob whose Ray job is not running 30 min after it was created (pods unschedulable,
image not pullable) is Failed by KubeRay (reason PreRunningDeadlineExceeded)."""
RAYJOB_SUCCESS = "status.jobDeploymentStatus == Complete, status.jobStatus == SUCCEEDED"
"""Argo successCondition of the RayJob steps (ALL requirements must hold)."""
RAYJOB_FAILURE = (
    "status.jobDeploymentStatus in (Failed, ValidationFailed), status.jobStatus == STOPPED"
)
"""Argo failureCondition of the RayJob steps (ANY requirement fails the step; Argo v4.1.2
workflow/executor/resource.go lines 282-289). KubeRay v1.7.0 (rayjob_controller.go) marks
infrastructure failures (SubmissionFailed, DeadlineExceeded, PreRunningDeadlineExceeded,
JobStatusCheckTimeoutExceeded) on ``jobDeploymentStatus`` while ``jobStatus`` stays
empty/PENDING/RUNNING, and a STOPPED Ray job ends as a *Complete* deployment: a stopped
job produced no model, so it fails the step (see docs/pipeline.md)."""
RAY_VERSION = "2.60.0"
RUN_AS = 1000

PRELOAD = ["pyarrow", "pyiceberg.catalog.sql", "steps.ingest", "--", "mlflow"]
"""Modules the local engine's zygote imports ahead of the tasks (see cnai.engine.zygote):
the ingest task's before the first task starts, MLflow (later tasks) in the background."""

PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "git_sha",
        "value": "",
        "description": "Commit that triggered the run (tags the MLflow run; part of every "
        "memoization key). Letters, digits and . _ - only.",
    },
    {
        "name": "git_branch",
        "value": "main",
        "description": "Branch of that commit; runs for the same branch queue on a mutex.",
    },
    {
        "name": "repository",
        "value": "",
        "description": "Repository the commit belongs to (informational).",
    },
    {
        "name": "trigger",
        "value": "manual",
        "enum": ["push", "data", "schedule", "manual"],
        "description": "What started the run: a git push, new data, the nightly schedule "
        "or a person.",
    },
    {
        "name": "source",
        "value": "",
        "description": "Parquet/CSV file or folder to ingest (path, file:// or s3:// URI); "
        "empty: the configured landing folder.",
    },
    {
        "name": "experiment",
        "value": "",
        "description": "Tune experiment spec (a name under pipelines/experiments/ or a path); "
        "empty: the default experiment.",
    },
    {
        "name": "workers",
        "value": "2",
        "description": "Ray workers (DDP ranks) for the final training run.",
    },
    {
        "name": "epochs",
        "value": "",
        "description": "Epochs of the final training run; empty: the tuned (or default) value.",
    },
]
"""Workflow parameters, with the descriptions the Argo UI submit form shows."""


def _pod_security() -> Any:
    from hera.workflows import models as m

    return m.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=RUN_AS,
        run_as_group=RUN_AS,
        fs_group=RUN_AS,
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def _container_security() -> Any:
    from hera.workflows import models as m

    return m.SecurityContext(
        allow_privilege_escalation=False,
        run_as_non_root=True,
        capabilities=m.Capabilities(drop=["ALL"]),
    )


def _env_from() -> list[Any]:
    from hera.workflows import ConfigMapEnvFrom, SecretEnvFrom

    return [ConfigMapEnvFrom(name=CONFIG_MAP), SecretEnvFrom(name=SECRET)]


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Any:
    from hera.workflows import Resources

    return Resources(
        cpu_request=cpu, memory_request=memory, cpu_limit=cpu_limit, memory_limit=memory_limit
    )


def _k8s_container(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": SECRET}}],
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _pod_template(name: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app.kubernetes.io/part-of": "cnai"}},
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
            },
            "containers": [_k8s_container(name, image)],
        },
    }


def rayjob_manifest(step: str, entrypoint: str, image: str, workers: str, deadline: int) -> str:
    """A RayJob running ``entrypoint`` on a fresh Ray cluster (head + ``workers`` pods).

    ``workers`` may be a ``{{...}}`` reference: it is written unquoted so that the
    substituted value is an integer.
    """
    marker = "__CNAI_WORKERS__"
    manifest = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "generateName": f"cnai-{step}-",
            "labels": {
                "app.kubernetes.io/part-of": "cnai",
                "cnai.dev/step": step,
                "cnai.dev/workflow": "{{workflow.name}}",
            },
        },
        "spec": {
            "entrypoint": entrypoint,
            "activeDeadlineSeconds": deadline,
            "preRunningDeadlineSeconds": PRE_RUNNING_DEADLINE_SECONDS,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "submissionMode": "K8sJobMode",
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "headGroupSpec": {
                    # The head only coordinates; training runs on the worker pods.
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": _pod_template("ray-head", image),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": marker,
                        "minReplicas": 1,
                        "maxReplicas": 64,
                        "rayStartParams": {},
                        "template": _pod_template("ray-worker", image),
                    }
                ],
            },
        },
    }
    text = yaml.safe_dump(manifest, sort_keys=False, width=1000)
    return text.replace(marker, workers)


def build(image: str | None = None, tag: str | None = None) -> Any:
    """The Hera WorkflowTemplate object (``image:tag`` of the pipeline image)."""
    from hera.workflows import (
        DAG,
        Parameter,
        Resource,
        RetryStrategy,
        Script,
        Task,
        WorkflowTemplate,
    )
    from hera.workflows import models as m

    from pipelines import tasks

    full_image = f"{image or IMAGE}:{tag or __version__}"
    needed = "{{tasks.ingest.outputs.parameters.needed}} == true"
    memo = m.Cache(config_map=m.LocalObjectReference(name=MEMO_CACHE))

    def script(name: str, source: Any, **extra: Any) -> Script:
        return Script(
            name=name,
            source=source,
            constructor="runner",
            image=full_image,
            image_pull_policy="IfNotPresent",
            env_from=_env_from(),
            resources=_resources("250m", "512Mi", "1", "2Gi"),
            security_context=_container_security(),
            **extra,
        )

    # Retry runtime failures, never bad input: a task that refuses its parameters exits 2
    # (cnai.engine.badinput) and the expression stops the retries, on Argo and locally.
    transient = RetryStrategy(
        limit=3,
        retry_policy="OnFailure",
        expression=RETRY_UNLESS_BAD_INPUT,
        backoff=m.Backoff(duration="10s", factor=m.IntOrString(2), max_duration="10m"),
    )
    ray_retry = RetryStrategy(
        limit=1,
        retry_policy="OnFailure",
        backoff=m.Backoff(duration="30s", factor=m.IntOrString(2), max_duration="30m"),
    )

    with WorkflowTemplate(
        name=TEMPLATE_NAME,
        entrypoint="retrain",
        on_exit="record-outcome",
        service_account_name=SERVICE_ACCOUNT,
        active_deadline_seconds=WORKFLOW_DEADLINE_SECONDS,
        arguments=[Parameter(**p) for p in PARAMETERS],
        synchronization=m.Synchronization(
            mutexes=[m.Mutex(name="cnai-retrain-{{workflow.parameters.git_branch}}")]
        ),
        ttl_strategy=m.TTLStrategy(seconds_after_success=86400, seconds_after_failure=604800),
        pod_gc=m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m"),
        security_context=_pod_security(),
        labels={"app.kubernetes.io/part-of": "cnai"},
    ) as template:
        ingest = script("ingest", tasks.ingest_and_plan, retry_strategy=transient)
        collect_tune = script("collect-tune", tasks.collect_tune, retry_strategy=transient)
        collect_train = script("collect-train", tasks.collect_train, retry_strategy=transient)
        # Not memoized: register() is idempotent per training run (it reuses the
        # version already registered for it) and must record the work key each time.
        register = script("register", tasks.register_model, retry_strategy=transient)
        script(
            "record-outcome",
            tasks.record_outcome,
            retry_strategy=transient,
            inputs=[
                Parameter(name="workflow_name", value="{{workflow.name}}"),
                Parameter(name="status", value="{{workflow.status}}"),
                Parameter(name="failures", value="{{workflow.failures}}"),
                Parameter(name="duration", value="{{workflow.duration}}"),
                Parameter(name="git_sha", value="{{workflow.parameters.git_sha}}"),
                Parameter(name="git_branch", value="{{workflow.parameters.git_branch}}"),
                Parameter(name="trigger", value="{{workflow.parameters.trigger}}"),
            ],
        )

        tune_entry = (
            "python -m cnai.engine.entrypoint steps.tune:tune"
            " --param experiment={{inputs.parameters.experiment}}"
            " --param table={{inputs.parameters.table}}"
            " --param snapshot_id={{inputs.parameters.snapshot_id}}"
            " --result-key {{inputs.parameters.result_key}}"
        )
        tune = Resource(
            name="tune",
            action="create",
            set_owner_reference=True,
            manifest=rayjob_manifest("tune", tune_entry, full_image, "2", TUNE_DEADLINE_SECONDS),
            success_condition=RAYJOB_SUCCESS,
            failure_condition=RAYJOB_FAILURE,
            active_deadline_seconds=TUNE_DEADLINE_SECONDS,
            retry_strategy=ray_retry,
            memoize=m.Memoize(
                key="{{inputs.parameters.result_key}}", max_age=MEMO_MAX_AGE, cache=memo
            ),
            inputs=[
                Parameter(name=n) for n in ("experiment", "table", "snapshot_id", "result_key")
            ],
        )
        train_entry = (
            "python -m cnai.engine.entrypoint steps.train:train"
            " --param table={{inputs.parameters.table}}"
            " --param snapshot_id={{inputs.parameters.snapshot_id}}"
            " --param workers={{inputs.parameters.workers}}"
            " --param git_sha={{inputs.parameters.git_sha}}"
            " --param git_branch={{inputs.parameters.git_branch}}"
            " --param trigger={{inputs.parameters.trigger}}"
            " --params-b64 {{inputs.parameters.hparams_b64}}"
            " --result-key {{inputs.parameters.result_key}}"
        )
        train = Resource(
            name="train",
            action="create",
            set_owner_reference=True,
            manifest=rayjob_manifest(
                "train",
                train_entry,
                full_image,
                "{{inputs.parameters.workers}}",
                TRAIN_DEADLINE_SECONDS,
            ),
            success_condition=RAYJOB_SUCCESS,
            failure_condition=RAYJOB_FAILURE,
            active_deadline_seconds=TRAIN_DEADLINE_SECONDS,
            retry_strategy=ray_retry,
            memoize=m.Memoize(
                key="{{inputs.parameters.result_key}}", max_age=MEMO_MAX_AGE, cache=memo
            ),
            inputs=[
                Parameter(name=n)
                for n in (
                    "table",
                    "snapshot_id",
                    "workers",
                    "git_sha",
                    "git_branch",
                    "trigger",
                    "hparams_b64",
                    "result_key",
                )
            ],
        )

        plan = "{{tasks.ingest.outputs.parameters.%s}}"
        with DAG(name="retrain"):
            t_ingest = ingest(
                name="ingest",
                arguments={
                    "source": "{{workflow.parameters.source}}",
                    "git_sha": "{{workflow.parameters.git_sha}}",
                    "git_branch": "{{workflow.parameters.git_branch}}",
                    "trigger": "{{workflow.parameters.trigger}}",
                    "experiment": "{{workflow.parameters.experiment}}",
                    "workers": "{{workflow.parameters.workers}}",
                    "epochs": "{{workflow.parameters.epochs}}",
                    "model_name": MODEL_NAME,
                },
            )
            t_tune = tune(
                name="tune",
                when=needed,
                arguments={
                    "experiment": plan % "experiment",
                    "table": plan % "table",
                    "snapshot_id": plan % "snapshot_id",
                    "result_key": plan % "tune_key",
                },
            )
            t_collect_tune = collect_tune(
                name="tune-result",
                when=needed,
                arguments={
                    "result_key": plan % "tune_key",
                    "data_version": plan % "data_version",
                    "git_sha": plan % "git_sha",
                    "workers": plan % "workers",
                    "epochs": plan % "epochs",
                    "table": plan % "table",
                },
            )
            tuned = "{{tasks.tune-result.outputs.parameters.%s}}"
            t_train = train(
                name="train",
                when=needed,
                arguments={
                    "table": plan % "table",
                    "snapshot_id": plan % "snapshot_id",
                    "workers": plan % "workers",
                    "git_sha": plan % "git_sha",
                    "git_branch": plan % "git_branch",
                    "trigger": plan % "trigger",
                    "hparams_b64": tuned % "best_params_b64",
                    "result_key": tuned % "train_key",
                },
            )
            t_collect_train = collect_train(
                name="train-result",
                when=needed,
                arguments={"result_key": tuned % "train_key"},
            )
            t_register = register(
                name="register",
                when=needed,
                arguments={
                    "run_id": "{{tasks.train-result.outputs.parameters.run_id}}",
                    "model_name": MODEL_NAME,
                    "work_key": plan % "work_key",
                    "table": plan % "table",
                    "workflow_name": "{{workflow.name}}",
                },
            )
            chain = [t_ingest, t_tune, t_collect_tune, t_train, t_collect_train, t_register]
            for upstream, downstream in itertools.pairwise(chain):
                cast(Task, upstream) >> cast(Task, downstream)
    return template


def compile_manifests(image: str | None = None, tag: str | None = None) -> dict[str, str]:
    """Every file ``cnai compile --out DIR`` writes: {file name: YAML text}."""
    template = build(image, tag)
    text = yaml.safe_dump(template.to_dict(), sort_keys=False, width=1000)
    return {f"{TEMPLATE_NAME}.yaml": text}


pipeline = Pipeline(
    name=TEMPLATE_NAME,
    build=lambda platform: build(platform.image, platform.tag),
    description="ingest -> tune -> train -> register the digits classifier",
    preload=tuple(PRELOAD),
    source_modules=("pipelines.tasks",),
)
"""The retrain pipeline as cnai finds it (``[tool.cnai] pipelines`` in pyproject.toml)."""
