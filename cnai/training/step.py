"""Train step: N Ray workers train one model with PyTorch DDP on an Iceberg snapshot.

The step reads the table at a snapshot (default: current), gives each worker a
contiguous slice of the snapshot's rows, and trains with all-reduced gradients
(gloo on CPU, NCCL on GPUs). Rank 0 checkpoints every epoch; if a worker dies
the group restarts from the last checkpoint (bounded). The driver (this process)
owns the single MLflow run and logs params, per-epoch metrics, system metrics,
tags and the model. See docs/training.md.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cnai.config import DEFAULT_MODEL_FACTORY, Settings, load_settings
from cnai.progress import Progress
from cnai.training.hparams import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    LOOP_HYPERPARAMETERS,
    check,
    hyperparameters,
    types_of,
)
from cnai.training.loop import TRAINING_KEYS, TrainConfig
from cnai.training.trial import Report, run_single

DEFAULT_MAX_RESTARTS = 2
__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "DEFAULT_MAX_RESTARTS",
    "make_config",
    "run_trial",
    "train",
]


def __getattr__(name: str) -> Any:
    """``HYPERPARAMETERS``: name -> type of the loop's and the *default* model factory's
    hyperparameters (:data:`cnai.config.DEFAULT_MODEL_FACTORY`), computed on access.
    The configured factory's are :func:`cnai.training.hparams.hyperparameters`."""
    if name == "HYPERPARAMETERS":
        return types_of(hyperparameters(factory=DEFAULT_MODEL_FACTORY))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_config(hparams: dict[str, Any], settings: Settings, seed: int = 0) -> TrainConfig:
    """A TrainConfig from a hyperparameter dict (unset or None values keep defaults).

    Every name must be declared (the loop's or the configured factory's, see
    :mod:`cnai.training.hparams`); values are converted to the declared types.
    UsageError naming the factory otherwise.
    """
    declared = types_of(hyperparameters(settings))
    values = check(hparams, declared, settings.model_factory, where="hyperparameter")
    loop_args: dict[str, Any] = {key: default for key, (_, default) in LOOP_HYPERPARAMETERS.items()}
    loop_args.update({k: v for k, v in values.items() if k in TRAINING_KEYS})
    model_params = {k: v for k, v in values.items() if k not in TRAINING_KEYS}
    return TrainConfig(
        **loop_args,
        seed=seed,
        model_factory=settings.model_factory,
        model_params=model_params,
    )


def run_trial(
    hparams: dict[str, Any],
    *,
    settings: Settings,
    table: str | None = None,
    snapshot_id: int | None = None,
    report: Report,
) -> dict[str, float]:
    """Train one configuration in this process (one worker), for hyperparameter tuning.

    Runs the same epoch loop as :func:`train`; calls ``report(epoch, {"val_accuracy",
    "val_loss", "train_loss"}, epochs)`` after each epoch (``epochs``: how many this
    configuration trains unless stopped) and stops early when it returns True.
    Logs nothing to MLflow. Returns the last epoch's metrics plus ``epochs_completed``.
    """
    config = make_config(hparams, settings)
    return run_single(config, settings, report, table=table, snapshot_id=snapshot_id)


def train(
    table: str | None = None,
    snapshot_id: int | None = None,
    workers: int = 2,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH_SIZE,
    use_gpu: bool = False,
    weight_decay: float = 0.0,
    model_params: dict[str, Any] | None = None,
    seed: int = 0,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    git_sha: str | None = None,
    git_branch: str | None = None,
    trigger: str | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
    **hparams: Any,
) -> dict[str, Any]:
    """Train the configured model on the table at a snapshot with ``workers`` DDP ranks.

    Args:
        table: ``NS.NAME``; default: the configured dataset table.
        snapshot_id: the snapshot to train on; default: the current one.
        workers: number of DDP ranks (Ray actors), at least 1.
        epochs, lr, batch_size, weight_decay: loop hyperparameters (batch is global).
        use_gpu: one GPU per worker and NCCL, when the Ray cluster has GPUs.
        model_params: keyword arguments for the model factory that are not declared
            hyperparameters (passed as given, not type-checked).
        seed: initialisation and shuffling seed.
        max_restarts: how many times a failed worker group is restarted from the
            last checkpoint before the step fails.
        git_sha, git_branch, trigger: provenance tags for the MLflow run.
        settings: stores and dataset; default: resolved from the environment.
        progress: where to report progress; default: plain lines on stderr.
        hparams: the model factory's declared hyperparameters by name (see
            :mod:`cnai.training.hparams`; None or absent: the factory's default). They
            are keyword arguments so the RayJob entrypoint's ``--params-b64`` JSON
            (the tuned parameters) reaches them by name; an undeclared name is a
            UsageError naming the factory.

    Returns:
        ``{"run_id", "world_size", "backend", "epochs", "val_accuracy",
        "test_accuracy", "checkpoint_uri", "train_seconds", "samples_per_second",
        "restarts"}``.
    """
    from cnai.training.runner import TrainRequest, train_distributed

    settings = (settings or load_settings()).with_table(table)
    declared = types_of(hyperparameters(settings))
    extra = dict(model_params or {})
    given = {k: extra.pop(k) for k in list(extra) if k in declared}
    config = make_config(
        {
            **given,
            **hparams,
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "weight_decay": weight_decay,
        },
        settings,
        seed=seed,
    )
    config = replace(config, model_params={**extra, **config.model_params})
    request = TrainRequest(
        config=config,
        snapshot_id=snapshot_id,
        workers=workers,
        use_gpu=use_gpu,
        max_restarts=max_restarts,
        tags={"cnai.git_sha": git_sha, "cnai.git_branch": git_branch, "cnai.trigger": trigger},
    )
    return train_distributed(request, settings, progress or Progress())
