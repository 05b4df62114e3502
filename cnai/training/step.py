"""Train step: N Ray workers train one model with PyTorch DDP on an Iceberg snapshot.

The step reads the table at a snapshot (default: current), gives each worker a
contiguous slice of the snapshot's rows, and trains with all-reduced gradients
(gloo on CPU, NCCL on GPUs). Rank 0 checkpoints every epoch; if a worker dies
the group restarts from the last checkpoint (bounded). The driver (this process)
owns the single MLflow run and logs params, per-epoch metrics, system metrics,
tags and the model. See docs/training.md.
"""

from __future__ import annotations

from typing import Any

from cnai.config import Settings, load_settings
from cnai.progress import Progress
from cnai.training.loop import TRAINING_KEYS, TrainConfig
from cnai.training.trial import Report, run_single

DEFAULT_EPOCHS = 15
DEFAULT_LR = 0.003
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_RESTARTS = 2

HYPERPARAMETERS: dict[str, type] = {
    "epochs": int,
    "lr": float,
    "batch_size": int,
    "weight_decay": float,
    "channels": int,
    "hidden": int,
    "dropout": float,
}
"""Every hyperparameter the tune step may search: name -> Python type.

``epochs``, ``lr``, ``batch_size`` (global) and ``weight_decay`` drive the loop;
``channels``, ``hidden`` and ``dropout`` go to the model factory (the default
``steps.models:digits_cnn`` accepts them).
"""


def make_config(hparams: dict[str, Any], settings: Settings, seed: int = 0) -> TrainConfig:
    """A TrainConfig from a hyperparameter dict (unset or None values keep defaults)."""
    values = {k: v for k, v in hparams.items() if v is not None}
    loop_args: dict[str, Any] = {
        "epochs": DEFAULT_EPOCHS,
        "lr": DEFAULT_LR,
        "batch_size": DEFAULT_BATCH_SIZE,
        "weight_decay": 0.0,
    }
    for key in TRAINING_KEYS:
        if key in values:
            loop_args[key] = HYPERPARAMETERS[key](values[key])
    model_params = {
        k: (HYPERPARAMETERS[k](v) if k in HYPERPARAMETERS else v)
        for k, v in values.items()
        if k not in TRAINING_KEYS
    }
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
    channels: int | None = None,
    hidden: int | None = None,
    dropout: float | None = None,
    model_params: dict[str, Any] | None = None,
    seed: int = 0,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    git_sha: str | None = None,
    git_branch: str | None = None,
    trigger: str | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the configured model on the table at a snapshot with ``workers`` DDP ranks.

    Args:
        table: ``NS.NAME``; default: the configured dataset table.
        snapshot_id: the snapshot to train on; default: the current one.
        workers: number of DDP ranks (Ray actors), at least 1.
        epochs, lr, batch_size, weight_decay: loop hyperparameters (batch is global).
        use_gpu: one GPU per worker and NCCL, when the Ray cluster has GPUs.
        channels, hidden, dropout: model hyperparameters (None: the factory's default).
        model_params: further keyword arguments for a custom model factory.
        seed: initialisation and shuffling seed.
        max_restarts: how many times a failed worker group is restarted from the
            last checkpoint before the step fails.
        git_sha, git_branch, trigger: provenance tags for the MLflow run.
        settings: stores and dataset; default: resolved from the environment.
        progress: where to report progress; default: plain lines on stderr.

    Returns:
        ``{"run_id", "world_size", "backend", "epochs", "val_accuracy",
        "test_accuracy", "checkpoint_uri", "train_seconds", "samples_per_second",
        "restarts"}``.
    """
    from cnai.training.runner import TrainRequest, train_distributed

    settings = (settings or load_settings()).with_table(table)
    hparams: dict[str, Any] = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "weight_decay": weight_decay,
        "channels": channels,
        "hidden": hidden,
        "dropout": dropout,
        **(model_params or {}),
    }
    request = TrainRequest(
        config=make_config(hparams, settings, seed=seed),
        snapshot_id=snapshot_id,
        workers=workers,
        use_gpu=use_gpu,
        max_restarts=max_restarts,
        tags={"cnai.git_sha": git_sha, "cnai.git_branch": git_branch, "cnai.trigger": trigger},
    )
    return train_distributed(request, settings, progress or Progress())
