"""MLflow records of a tuning experiment: one parent run, one nested run per trial.

The parent run (experiment :data:`TUNE_EXPERIMENT`) holds the spec, the search
settings, the counts, the best parameters as ``best_params.json`` and the plots
under ``plots/``. Each trial is a child run (tag ``mlflow.parentRunId``) with its
hyperparameters as params, ``train_loss`` / ``val_loss`` / ``val_accuracy`` per
epoch (step = epoch), the extracted ``objective`` and its final status (tag
``cnai.trial_status``; run status FINISHED, FAILED or KILLED).

Everything is written from the driver process with ``MlflowClient``, so trials in
Ray workers never touch the tracking store and no fluent active run is disturbed.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from cnai.tuning.runner import EARLY_STOPPED, FAILED, KILLED, SUCCEEDED, TrialRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from cnai.progress import Progress
    from cnai.tuning.runner import Outcome
    from cnai.tuning.spec import Experiment

TUNE_EXPERIMENT = "cnai-tune"
"""MLflow experiment holding tuning runs (training runs stay in ``cnai-retrain``)."""

_RUN_STATUS = {SUCCEEDED: "FINISHED", EARLY_STOPPED: "FINISHED", FAILED: "FAILED", KILLED: "KILLED"}


def _param_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


class MlflowTrialLogger:
    """A :class:`~cnai.tuning.runner.TrialListener` writing nested MLflow runs."""

    def __init__(
        self, client: MlflowClient, experiment_id: str, parent_run_id: str, experiment: Experiment
    ) -> None:
        self.client = client
        """Client bound to the configured tracking store."""
        self.experiment_id = experiment_id
        """MLflow experiment of the parent and child runs."""
        self.parent_run_id = parent_run_id
        """The experiment's parent run."""
        self.experiment = experiment
        """The tuning experiment."""
        self.run_ids: dict[str, str] = {}
        """Ray trial id -> MLflow child run id."""

    def trial_started(self, record: TrialRecord) -> None:
        """Create the child run with the trial's hyperparameters."""
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{self.experiment.name}-trial-{record.number:03d}",
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                "cnai.tune.experiment": self.experiment.name,
                "cnai.tune.trial_id": record.trial_id,
                "cnai.tune.trial_number": str(record.number),
            },
        )
        self.run_ids[record.trial_id] = run.info.run_id
        params = [Param(k, _param_value(v)) for k, v in sorted(record.params.items())]
        if params:
            self.client.log_batch(run.info.run_id, params=params)

    def trial_reported(self, record: TrialRecord, epoch: int, metrics: dict[str, float]) -> None:
        """Log one epoch's metrics (step = epoch)."""
        from mlflow.entities import Metric

        run_id = self.run_ids.get(record.trial_id)
        if run_id is None:
            return
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, epoch) for k, v in metrics.items()]
        self.client.log_batch(run_id, metrics=batch)

    def trial_ended(self, record: TrialRecord) -> None:
        """Record the objective and final status; end the child run."""
        run_id = self.run_ids.get(record.trial_id)
        if run_id is None:
            return
        if record.objective is not None:
            self.client.log_metric(run_id, "objective", record.objective)
        self.client.set_tag(run_id, "cnai.trial_status", record.status)
        self.client.log_metric(run_id, "epochs_completed", record.epochs)
        if record.error:
            self.client.set_tag(run_id, "cnai.trial_error", record.error[:5000])
        self.client.set_terminated(run_id, _RUN_STATUS.get(record.status, "FINISHED"))


class ProgressListener:
    """A :class:`~cnai.tuning.runner.TrialListener` printing one line per finished trial."""

    def __init__(self, progress: Progress, experiment: Experiment) -> None:
        self.progress = progress
        """Where lines go."""
        self.experiment = experiment
        """The tuning experiment."""

    def trial_started(self, record: TrialRecord) -> None:
        """Nothing: trials are reported when they end."""

    def trial_reported(self, record: TrialRecord, epoch: int, metrics: dict[str, float]) -> None:
        """Nothing: per-epoch detail goes to MLflow."""

    def trial_ended(self, record: TrialRecord) -> None:
        """``trial 3/8 succeeded: val_accuracy=0.9712 after 5 epoch(s) {...}``."""
        metric = self.experiment.objective.metric
        shown = f"{metric}={record.objective:.4f}" if record.objective is not None else "no metric"
        detail = f" ({record.error})" if record.error else ""
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(record.params.items()))
        self.progress.info(
            f"trial {record.number}/{self.experiment.max_trial_count} "
            f"{record.status.replace('_', ' ')}: {shown} after {record.epochs} epoch(s) "
            f"[{params}]{detail}"
        )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def log_summary(
    client: MlflowClient,
    run_id: str,
    experiment: Experiment,
    outcome: Outcome,
    summary: dict[str, Any],
) -> None:
    """Counts, best result, ``best_params.json`` and the PNG plots on the parent run."""
    from cnai.tuning import plots

    metrics: dict[str, float] = {
        "trials_succeeded": outcome.count(SUCCEEDED),
        "trials_early_stopped": outcome.count(EARLY_STOPPED),
        "trials_failed": outcome.count(FAILED),
        "trials_killed": outcome.count(KILLED),
        "trial_epochs": outcome.trial_epochs,
    }
    if summary.get("best_objective") is not None:
        metrics["best_objective"] = float(summary["best_objective"])
        metrics[f"best_{experiment.objective.metric}"] = float(summary["best_objective"])
    for name, value in metrics.items():
        client.log_metric(run_id, name, float(value))
    client.set_tag(run_id, "cnai.tune.goal_reached", str(summary.get("goal_reached")).lower())
    client.log_dict(
        run_id,
        {
            "experiment": experiment.name,
            "objective_metric": experiment.objective.metric,
            "objective_type": experiment.objective.type,
            "best_objective": summary.get("best_objective"),
            "best_params": summary.get("best_params"),
            "best_trial_run_id": summary.get("best_trial_run_id"),
        },
        "best_params.json",
    )
    trials = outcome.trials
    for name, build in (
        ("objective_per_trial", plots.objective_per_trial),
        ("parallel_coordinates", plots.parallel_coordinates),
        ("learning_curves", plots.learning_curves),
    ):
        client.log_figure(run_id, build(experiment, trials), f"plots/{name}.png")


def start_parent(
    client: MlflowClient,
    experiment_id: str,
    experiment: Experiment,
    tags: dict[str, str],
) -> str:
    """Create the parent run with the search settings as params; returns its id."""
    from mlflow.entities import Param

    run = client.create_run(
        experiment_id,
        run_name=experiment.name,
        tags={"cnai.tune.experiment": experiment.name, **tags},
    )
    params = {
        "algorithm": experiment.algorithm.name,
        "objective_metric": experiment.objective.metric,
        "objective_type": experiment.objective.type,
        "goal": experiment.objective.goal,
        "max_trial_count": experiment.max_trial_count,
        "parallel_trial_count": experiment.parallel_trial_count,
        "max_failed_trial_count": experiment.max_failed_trial_count,
    }
    for key, value in experiment.algorithm.settings.items():
        params[f"algorithm.{key}"] = value
    if experiment.early_stopping is not None and experiment.early_stopping.algorithm == "asha":
        params["early_stopping"] = "asha"
        params["asha.grace_period"] = experiment.early_stopping.grace_period
        params["asha.reduction_factor"] = experiment.early_stopping.reduction_factor
        params["asha.max_t"] = experiment.early_stopping.max_t
    elif experiment.early_stopping is not None:
        params["early_stopping"] = "medianstop"
        params["medianstop.min_trials_required"] = experiment.early_stopping.min_trials_required
        params["medianstop.start_step"] = experiment.early_stopping.start_step
    for parameter in experiment.parameters:
        params[f"space.{parameter.target}"] = _describe(parameter)
    client.log_batch(
        run.info.run_id,
        params=[Param(k, _param_value(v)) for k, v in params.items() if v is not None],
    )
    return str(run.info.run_id)


def _describe(parameter: Any) -> str:
    if parameter.values:
        return f"{parameter.type} {list(parameter.values)}"
    step = f" step {parameter.step:g}" if parameter.step is not None else ""
    return f"{parameter.type} [{parameter.min:g}, {parameter.max:g}]{step} {parameter.distribution}"


def log_parallelism(client: MlflowClient, run_id: str, parallelism: dict[str, int]) -> None:
    """Concurrent trials requested, CPUs free and concurrency used, as params."""
    from mlflow.entities import Param

    client.log_batch(
        run_id, params=[Param(f"parallel.{k}", str(v)) for k, v in parallelism.items()]
    )


def progress_listener(progress: Progress | None, experiment: Experiment) -> list[Any]:
    """A progress listener when there is somewhere to report, else none."""
    return [ProgressListener(progress, experiment)] if progress is not None else []
