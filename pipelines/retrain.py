"""The retrain pipeline, authored with the kit (:mod:`cnai.argo.kit`): ``cnai-retrain``.

DAG (every task after ``ingest`` runs only ``when`` ingest says training is needed)::

    ingest -> tune (RayJob) -> tune-result -> train (RayJob) -> train-result -> register
    onExit: record-outcome

Small tasks are runner scripts calling :mod:`pipelines.tasks` in the pipeline image;
tune and train are KubeRay ``RayJob`` resources whose entrypoint runs the same step
code (``python -m cnai.engine.entrypoint steps.train:train ...``, derived from the
step's signature). Only small values travel as parameters; data and models stay in
Iceberg and MLflow. ``pipeline`` is what the cnai CLI and chart use.
"""

from __future__ import annotations

import itertools
from typing import Any

from cnai.argo import kit
from cnai.argo.kit.rayjob import PRE_RUNNING_DEADLINE_SECONDS, RAYJOB_FAILURE, RAYJOB_SUCCESS
from cnai.argo.pipeline import Pipeline, Platform

TEMPLATE_NAME = "cnai-retrain"
IMAGE = Platform.image
MEMO_CACHE = "cnai-retrain-memo"
TUNE_DEADLINE_SECONDS = 4 * 3600
TRAIN_DEADLINE_SECONDS = 4 * 3600
WORKFLOW_DEADLINE_SECONDS = 12 * 3600
PRELOAD = [
    "pyarrow",
    "pyiceberg.catalog.sql",
    "pyiceberg.io.pyarrow",
    "steps.ingest",
    "--",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.tracing.processor.base_mlflow",
]
"""Modules the local engine's zygote imports ahead of the tasks (see cnai.engine.zygote):
the ingest task's (with the file IO every table load uses) before the first task starts;
MLflow, its SQL stores and the tracing processor ``set_tracking_uri`` imports (each
imported on first use, ~1.5 s together, by every task that reads a result, registers or
records the outcome), which only later tasks use, in the background once a second
task starts."""
__all__ = [
    "IMAGE",
    "PARAMETERS",
    "PRELOAD",
    "PRE_RUNNING_DEADLINE_SECONDS",
    "RAYJOB_FAILURE",
    "RAYJOB_SUCCESS",
    "TEMPLATE_NAME",
    "build",
    "compile_manifests",
    "pipeline",
]

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
    {
        "name": "model_name",
        "value": "",
        "description": "Registered model name; empty: the configured one.",
    },
]
"""Workflow parameters, with the descriptions the Argo UI submit form shows."""


def build(platform: Platform) -> Any:
    """The Hera WorkflowTemplate ``cnai-retrain`` for ``platform``."""
    from hera.workflows import DAG, Parameter

    from pipelines import tasks

    memo = kit.memoize(MEMO_CACHE)
    with kit.pipeline_template(
        platform,
        TEMPLATE_NAME,
        entrypoint="retrain",
        on_exit="record-outcome",
        parameters=PARAMETERS,
        mutex="cnai-retrain-{{workflow.parameters.git_branch}}",
    ) as template:
        ingest = kit.runner_script(platform, "ingest", tasks.ingest_and_plan)
        collect_tune = kit.runner_script(platform, "collect-tune", tasks.collect_tune)
        collect_train = kit.runner_script(platform, "collect-train", tasks.collect_train)
        # Not memoized: register() is idempotent per training run (it reuses the
        # version already registered for it) and must record the work key each time.
        register = kit.runner_script(platform, "register", tasks.register_model)
        outcome = ("status", "failures", "duration")
        kit.runner_script(
            platform,
            "record-outcome",
            tasks.record_outcome,
            inputs=[Parameter(name="workflow_name", value="{{workflow.name}}")]
            + [Parameter(name=n, value=f"{{{{workflow.{n}}}}}") for n in outcome]
            + [
                Parameter(name=n, value=f"{{{{workflow.parameters.{n}}}}}")
                for n in ("git_sha", "git_branch", "trigger")
            ],
        )
        tune = kit.rayjob_step(
            platform,
            "tune",
            "steps.tune:tune",
            ("experiment", "table", "snapshot_id"),
            deadline=TUNE_DEADLINE_SECONDS,
            memoize=memo,
        )
        train = kit.rayjob_step(
            platform,
            "train",
            "steps.train:train",
            ("table", "snapshot_id", "workers", "git_sha", "git_branch", "trigger"),
            params_b64="hparams_b64",
            workers="workers",
            deadline=TRAIN_DEADLINE_SECONDS,
            memoize=memo,
        )

        with DAG(name="retrain"):
            t_ingest = ingest(
                name="ingest",
                arguments=kit.workflow_args(
                    template,
                    "source",
                    "git_sha",
                    "git_branch",
                    "trigger",
                    "experiment",
                    "workers",
                    "epochs",
                    "model_name",
                ),
            )
            needed = kit.is_true(t_ingest, "needed")

            def plan(*names: str) -> dict[str, Any]:
                return {n: kit.output(t_ingest, n) for n in names}

            t_tune = tune(
                name="tune",
                when=needed,
                arguments=plan("experiment", "table", "snapshot_id")
                | {"result_key": kit.output(t_ingest, "tune_key")},
            )
            t_collect_tune = collect_tune(
                name="tune-result",
                when=needed,
                arguments={"result_key": kit.output(t_ingest, "tune_key")}
                | plan("data_version", "git_sha", "workers", "epochs", "table"),
            )
            t_train = train(
                name="train",
                when=needed,
                arguments=plan(
                    "table", "snapshot_id", "workers", "git_sha", "git_branch", "trigger"
                )
                | {
                    "hparams_b64": kit.output(t_collect_tune, "best_params_b64"),
                    "result_key": kit.output(t_collect_tune, "train_key"),
                },
            )
            t_collect_train = collect_train(
                name="train-result",
                when=needed,
                arguments={"result_key": kit.output(t_collect_tune, "train_key")},
            )
            t_register = register(
                name="register",
                when=needed,
                arguments={"run_id": kit.output(t_collect_train, "run_id")}
                | plan("model_name", "work_key", "table")
                | {"workflow_name": "{{workflow.name}}"},
            )
            chain = [t_ingest, t_tune, t_collect_tune, t_train, t_collect_train, t_register]
            for upstream, downstream in itertools.pairwise(chain):
                upstream >> downstream
    return template


pipeline = Pipeline(
    name=TEMPLATE_NAME,
    build=build,
    description="ingest -> tune -> train -> register, skipped when nothing changed",
    preload=tuple(PRELOAD),
    source_modules=(
        "pipelines.tasks",
        "cnai.tuning.step",
        "cnai.training.step",
        *kit.SOURCE_MODULES,
    ),
    code_packages=("steps", "pipelines"),
)
"""The retrain pipeline (``[tool.cnai] pipelines`` ``retrain``)."""


def compile_manifests(image: str | None = None, tag: str | None = None) -> dict[str, str]:
    """Every file ``cnai compile --out DIR`` writes: {file name: YAML text}."""
    return pipeline.manifests(Platform(image=image or IMAGE, tag=tag))
