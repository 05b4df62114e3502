"""The driver side of ``cnai train``: validate, own the MLflow run, run the worker group.

Order matters for the "no run left RUNNING" rule: every input is checked (table,
snapshot, hyperparameters, model factory, worker count) and Ray is reached
*before* the MLflow run starts; once it has started, any failure ends it FAILED.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from cnai.catalog import check_table_schema, data_version, load_table, snapshot_at
from cnai.config import Settings
from cnai.errors import CnaiError, UsageError
from cnai.progress import Progress
from cnai.training.checkpoint import run_checkpoint_uri
from cnai.training.classes import resolve_classes
from cnai.training.data import plan_partitions
from cnai.training.group import cluster_gpus, ensure_ray, run_group
from cnai.training.loop import TrainConfig, build_model, check_model
from cnai.training.worker import Fault, RankJob, train_rank

FAULT_ENV = "CNAI_TRAIN_FAULT"
"""``rank:epoch``: kill that rank at the start of that epoch, once (failure drills/tests)."""


@dataclass(frozen=True)
class TrainRequest:
    """One distributed training call."""

    config: TrainConfig
    """Hyperparameters and model factory."""
    snapshot_id: int | None = None
    """Snapshot to train on; None: the current one."""
    workers: int = 2
    """Number of DDP ranks."""
    use_gpu: bool = False
    """One GPU per rank and NCCL, when the cluster has GPUs."""
    max_restarts: int = 2
    """Restarts of the worker group after failures before giving up."""
    tags: dict[str, str | None] = field(default_factory=dict)
    """Extra MLflow tags (None values are skipped)."""


def parse_fault(raw: str | None) -> Fault | None:
    """The crash drill named by ``CNAI_TRAIN_FAULT`` (``rank:epoch``), if any."""
    if not raw:
        return None
    try:
        rank, epoch = (int(part) for part in raw.split(":"))
    except ValueError as exc:
        raise UsageError(f"{FAULT_ENV} {raw!r}: expected RANK:EPOCH") from exc
    return Fault(rank, epoch)


class _RunLogger:
    """Turns items streamed by rank 0 into MLflow calls and progress lines."""

    def __init__(self, client: Any, run_id: str, epochs: int, progress: Progress) -> None:
        self.client = client
        self.run_id = run_id
        self.epochs = epochs
        self.progress = progress
        self.logged: set[int] = set()
        self.final: dict[str, Any] | None = None
        self.started = time.perf_counter()

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        """Log one epoch's metrics once (a resumed epoch is not logged twice)."""
        from mlflow.entities import Metric

        epoch = int(metrics["epoch"])
        if epoch in self.logged:
            return
        self.logged.add(epoch)
        now = int(time.time() * 1000)
        values = [
            Metric(name, float(metrics[name]), now, epoch)
            for name in ("train_loss", "val_loss", "val_accuracy", "val_rmse")
            if name in metrics and not math.isnan(float(metrics[name]))
        ]
        self.client.log_batch(self.run_id, metrics=values, synchronous=True)
        quality = "val_rmse" if metrics.get("regression") else "val_accuracy"
        self.progress.info(
            f"epoch {epoch + 1}/{self.epochs}: train_loss {metrics['train_loss']:.4f} "
            f"val_loss {metrics['val_loss']:.4f} {quality} {metrics[quality]:.4f}"
        )

    def __call__(self, rank: int, item: dict[str, Any]) -> None:
        kind = item.get("kind")
        if kind == "ready":
            self.progress.info(
                f"workers ready in {time.perf_counter() - self.started:.1f}s "
                f"(rank 0 holds {item['train_rows']} training rows)"
            )
        elif kind == "resumed":
            self.progress.info(
                f"resumed from the last checkpoint at epoch {int(item['epoch']) + 1}"
            )
            for metrics in item["history"]:
                self.log_epoch(metrics)
        elif kind == "epoch":
            self.log_epoch(item["metrics"])
        elif kind == "final":
            for metrics in item["history"]:
                self.log_epoch(metrics)
            self.final = item


def _validate(request: TrainRequest, settings: Settings) -> tuple[Settings, Any, Any, Any]:
    """Check every input before anything starts; returns (settings with the classes
    resolved, table, snapshot, model)."""
    if request.workers < 1:
        raise UsageError(f"--workers {request.workers}: must be at least 1")
    if request.max_restarts < 0:
        raise UsageError(f"--max-restarts {request.max_restarts}: must not be negative")
    request.config.validate()
    spec = settings.dataset.require()
    table = load_table(settings, spec.table)
    snapshot = snapshot_at(table, request.snapshot_id)
    check_table_schema(table, spec)
    settings = resolve_classes(settings, None, snapshot.snapshot_id)
    spec = settings.dataset
    model = build_model(request.config, spec)
    check_model(model, spec)
    return settings, table, snapshot, model


def train_distributed(
    request: TrainRequest, settings: Settings, progress: Progress
) -> dict[str, Any]:
    """Run one distributed training; returns the ``cnai train --json`` summary."""
    settings, table, snapshot, model = _validate(request, settings)
    spec = settings.dataset
    quality = "rmse" if spec.is_regression else "accuracy"
    fault = parse_fault(os.environ.get(FAULT_ENV))
    plan = plan_partitions(settings, request.workers, snapshot.snapshot_id, spec.table)
    empty = [rank for rank, part in enumerate(plan.partitions) if not part]
    if empty:
        raise UsageError(
            f"--workers {request.workers}: table {spec.table} has only {plan.total_rows} row(s) "
            f"at snapshot {snapshot.snapshot_id}"
        )
    version = data_version(table, snapshot.snapshot_id)

    import mlflow

    from cnai.model_io import log_model
    from cnai.tracking import configure, ensure_experiment

    started_ray = ensure_ray(settings)
    try:
        use_gpu = request.use_gpu
        if use_gpu and cluster_gpus() < 1:
            progress.info("--use-gpu: the Ray cluster has no GPU; training on CPU with gloo")
            use_gpu = False
        experiment_id = ensure_experiment(settings)
        configure(settings)
        mlflow.set_system_metrics_sampling_interval(1)
        mlflow.set_system_metrics_samples_before_logging(1)
        client = mlflow.MlflowClient()
        with mlflow.start_run(experiment_id=experiment_id, log_system_metrics=True) as run:
            run_id = run.info.run_id
            checkpoint_uri = run_checkpoint_uri(settings, run_id)
            tags = {
                "cnai.table": spec.table,
                "cnai.snapshot_id": str(snapshot.snapshot_id),
                "cnai.data_version": version,
                "cnai.checkpoint_uri": checkpoint_uri,
                **{k: v for k, v in request.tags.items() if v},
            }
            mlflow.set_tags(tags)
            mlflow.log_params(
                {
                    **request.config.params(),
                    "workers": request.workers,
                    "backend": "nccl" if use_gpu else "gloo",
                    "use_gpu": use_gpu,
                    "max_restarts": request.max_restarts,
                    "train_rows_total": plan.total_rows,
                }
            )
            logger = _RunLogger(client, run_id, request.config.epochs, progress)
            job = RankJob(settings, plan, request.config, checkpoint_uri, fault)
            progress.info(
                f"training {spec.table}@{snapshot.snapshot_id} on {request.workers} worker(s) "
                f"({'nccl' if use_gpu else 'gloo'}); MLflow run {run_id}"
            )
            start = logger.started = time.perf_counter()
            result = run_group(
                train_rank,
                job,
                request.workers,
                use_gpu=use_gpu,
                max_restarts=request.max_restarts,
                on_item=logger,
                progress=progress,
            )
            train_seconds = time.perf_counter() - start
            final = logger.final
            if final is None:
                raise CnaiError("training finished without a final result from rank 0")
            model.load_state_dict(final["state_dict"])
            history = final["history"]
            last = history[-1]
            samples = sum(int(h["samples"]) for h in history)
            busy = sum(float(h["seconds"]) for h in history)
            # val_accuracy's last per-epoch value already is the run's final one.
            mlflow.log_metrics(
                {
                    f"test_{quality}": float(final["test_accuracy"]),
                    "test_loss": float(final["test_loss"]),
                    "restarts": float(result.restarts),
                    "train_seconds": train_seconds,
                    "samples_per_second": samples / busy if busy > 0 else 0.0,
                },
                step=int(last["epoch"]),
            )
            progress.info("logging the model to MLflow")
            log_model(model, spec, final["example"])
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return {
        "run_id": run_id,
        "world_size": request.workers,
        "backend": result.backend,
        "epochs": request.config.epochs,
        f"val_{quality}": float(last[f"val_{quality}"]),
        f"test_{quality}": float(final["test_accuracy"]),
        "checkpoint_uri": checkpoint_uri,
        "train_seconds": round(train_seconds, 3),
        "samples_per_second": round(samples / busy, 1) if busy > 0 else 0.0,
        "restarts": result.restarts,
    }
