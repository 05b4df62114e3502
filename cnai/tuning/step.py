"""Tune step: a Katib ``Experiment`` spec executed by Ray Tune, recorded in MLflow.

The spec (default: the configuration's ``tune.experiment``) is validated against the
supported Katib subset and the hyperparameters the training loop and the configured
model factory declare (see docs/tuning.md, :mod:`cnai.training.hparams`), the table's
snapshot is pinned so every trial sees the same rows, and the trials run on Ray Tune
through the train step's ``run_trial`` code path, one worker per trial. The experiment
is one MLflow parent run with a nested run per trial, ``best_params.json`` and plots.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnai.config import DatasetSpec, Settings, load_settings
from cnai.errors import CnaiError, UsageError
from cnai.progress import Progress


def default_experiment(settings: Settings | None = None) -> Path:
    """Path of the default Experiment spec: the configuration's ``tune.experiment``
    (the reference project's ``cnai.yaml`` sets ``pipelines/experiments/retrain.yaml``).

    UsageError when none is configured (give ``--experiment`` or set ``tune.experiment``).
    """
    from cnai.errors import UsageError

    settings = settings or load_settings()
    if not settings.tune_experiment:
        raise UsageError(
            "no experiment: give --experiment FILE or set tune.experiment in the configuration"
        )
    return Path(settings.tune_experiment)


TASK_METRICS = {"classification": "val_accuracy", "regression": "val_rmse"}
"""The quality metric trials report per ``model.task`` (both report the losses)."""


def check_objective(spec: Any, dataset: DatasetSpec) -> None:
    """UsageError when the experiment's metrics are not reported for ``model.task``
    (e.g. ``val_accuracy`` for a regression, whose trials report ``val_rmse``)."""
    other = next(m for task, m in TASK_METRICS.items() if task != dataset.task)
    names = (spec.objective.metric, *spec.objective.additional_metrics)
    if other in names:
        raise UsageError(
            f"experiment {spec.source}: metric {other!r} is not reported for model.task "
            f"{dataset.task} (rule: trials report {TASK_METRICS[dataset.task]}, val_loss and "
            "train_loss)"
        )


def load(experiment: str | os.PathLike[str] | None = None, settings: Settings | None = None) -> Any:
    """The validated :class:`~cnai.tuning.spec.Experiment` at ``experiment`` (or the default).

    Its objective must be a metric the task's trials report (:func:`check_objective`).
    Its parameters must be hyperparameters of the training loop or of the configured
    model factory (:func:`cnai.training.hparams.hyperparameters`): a spec searching a
    name the factory does not declare is refused here (UsageError naming the factory),
    before any trial runs.
    """
    from cnai.training.hparams import hyperparameters, types_of
    from cnai.tuning.spec import load_experiment

    settings = settings or load_settings()
    declared = types_of(hyperparameters(settings))
    spec = load_experiment(
        experiment or default_experiment(settings),
        declared,
        owner=f"the training loop or model factory {settings.model_factory}",
    )
    check_objective(spec, settings.dataset)
    return spec


def fixed_args(
    spec: Any, table: str | None, snapshot_id: int | None
) -> tuple[str | None, int | None]:
    """Table and snapshot: the caller's, else those an exported trial template pins."""
    from cnai.errors import UsageError

    pinned = spec.trial_args
    for flag, given, fixed in (
        ("--table", table, pinned.table),
        ("--snapshot-id", snapshot_id, pinned.snapshot_id),
    ):
        if given is not None and fixed is not None and given != fixed:
            raise UsageError(
                f"{flag} {given}: the experiment's trial template pins {fixed} ({spec.source})"
            )
    return table or pinned.table, snapshot_id if snapshot_id is not None else pinned.snapshot_id


def tune(
    experiment: str | os.PathLike[str] | None = None,
    table: str | None = None,
    snapshot_id: int | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the Katib Experiment ``experiment`` on Ray Tune.

    Args:
        experiment: path of a Katib ``kubeflow.org/v1beta1`` Experiment YAML;
            default: the configuration's ``tune.experiment`` (see
            :func:`default_experiment`).
        table: ``NS.NAME`` to train on; default: the configured table.
        snapshot_id: snapshot to train on; default: the current one (pinned at start).
        settings: stores and dataset; default: resolved from the environment.
        progress: where to report progress; default: plain lines on stderr.

    Returns:
        ``{"best_params", "best_objective", "objective_metric", "goal_reached",
        "trials": {"succeeded", "early_stopped", "failed", "killed"},
        "parent_run_id", ...}`` (plus experiment, algorithm, parallelism,
        trial_epochs, best_trial_run_id, table, snapshot_id, data_version).

    Raises:
        UsageError: the spec is unsupported or invalid (exit 2).
        CnaiError: more than maxFailedTrialCount trials failed, or none produced
            an objective (exit 1); ``data`` holds the same summary.
    """
    settings = settings or load_settings()
    progress = progress or Progress()
    spec = load(experiment, settings)  # a bad spec fails here, before any heavy import
    from mlflow import MlflowClient

    from cnai.catalog import data_version, load_table, snapshot_at
    from cnai.tracking import configure, ensure_experiment
    from cnai.training.group import ensure_ray
    from cnai.tuning.mlflow_log import (
        TUNE_EXPERIMENT,
        MlflowTrialLogger,
        log_parallelism,
        log_summary,
        progress_listener,
        start_parent,
    )
    from cnai.tuning.runner import (
        EARLY_STOPPED,
        FAILED,
        KILLED,
        SUCCEEDED,
        run_experiment,
    )

    table, snapshot_id = fixed_args(spec, table, snapshot_id)
    scoped = settings.with_table(table)
    iceberg = load_table(scoped, scoped.dataset.table)
    snapshot_id = snapshot_at(iceberg, snapshot_id).snapshot_id
    version = data_version(iceberg, snapshot_id)

    configure(settings)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
    experiment_id = ensure_experiment(settings, TUNE_EXPERIMENT)
    parent_run_id = start_parent(
        client,
        experiment_id,
        spec,
        {
            "cnai.table": scoped.dataset.table,
            "cnai.snapshot_id": str(snapshot_id),
            "cnai.data_version": version,
        },
    )
    client.log_text(parent_run_id, Path(spec.source).read_text(), "experiment.yaml")
    logger = MlflowTrialLogger(client, experiment_id, parent_run_id, spec)
    started_ray = False
    try:
        started_ray = ensure_ray(settings)
        outcome = run_experiment(
            spec,
            settings,
            table=scoped.dataset.table,
            snapshot_id=snapshot_id,
            listeners=[logger, *progress_listener(progress, spec)],
            progress=progress,
        )
    except BaseException:
        client.set_terminated(parent_run_id, "FAILED")
        raise
    finally:
        if started_ray:
            import ray

            ray.shutdown()

    best = outcome.best(spec.objective)
    summary: dict[str, Any] = {
        "experiment": spec.name,
        "algorithm": spec.algorithm.name,
        "best_params": dict(best.params) if best else {},
        "best_objective": best.objective if best else None,
        "objective_metric": spec.objective.metric,
        "goal_reached": outcome.goal_reached,
        "trials": {
            "succeeded": outcome.count(SUCCEEDED),
            "early_stopped": outcome.count(EARLY_STOPPED),
            "failed": outcome.count(FAILED),
            "killed": outcome.count(KILLED),
        },
        "trial_epochs": outcome.trial_epochs,
        "max_trial_count": spec.max_trial_count,
        "parallelism": outcome.parallelism,
        "parent_run_id": parent_run_id,
        "best_trial_run_id": logger.run_ids.get(best.trial_id) if best else None,
        "table": scoped.dataset.table,
        "snapshot_id": snapshot_id,
        "data_version": version,
    }
    log_parallelism(client, parent_run_id, outcome.parallelism)
    log_summary(client, parent_run_id, spec, outcome, summary)
    failure = _failure(spec, outcome, best is None)
    client.set_terminated(parent_run_id, "FAILED" if failure else "FINISHED")
    if failure:
        raise CnaiError(failure, data=summary)
    if best is not None:
        progress.info(
            f"best {spec.objective.metric}={best.objective:.4f} (trial {best.number}) "
            f"with {best.params}; MLflow parent run {parent_run_id}"
        )
    return summary


def _failure(spec: Any, outcome: Any, no_best: bool) -> str | None:
    """Why the experiment failed (Katib: failed trials beyond the budget), or None."""
    from cnai.tuning.runner import FAILED

    failed = [t for t in outcome.trials if t.status == FAILED]
    last = f"; last error: {failed[-1].error}" if failed and failed[-1].error else ""
    if outcome.failed_budget_exceeded:
        return (
            f"experiment {spec.name}: {len(failed)} trial(s) failed, more than "
            f"spec.maxFailedTrialCount {spec.max_failed_trial_count}{last}"
        )
    if no_best:
        return f"experiment {spec.name}: no trial reported {spec.objective.metric}{last}"
    return None
