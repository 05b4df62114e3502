"""What every DDP rank runs: read its partition, resume, train, checkpoint, report.

Rank 0 writes a checkpoint after every epoch and then streams that epoch's
metrics to the driver; at the end it streams the final weights and test metrics.
Other ranks stream nothing. After a restart every rank loads the newest
checkpoint, so training continues from the last completed epoch.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from cnai.config import Settings
from cnai.training.checkpoint import load_latest, s3_options, save_checkpoint
from cnai.training.data import DataPlan, load_partition
from cnai.training.group import RankContext
from cnai.training.loop import DistributedCollective, EpochLoop, TrainConfig, build_model
from cnai.training.stats import training_stats

EXAMPLE_ROWS = 5
"""Feature rows rank 0 sends back as the logged model's input example."""


@dataclass(frozen=True)
class Fault:
    """A deliberate worker crash for failure drills: ``rank`` dies at the start of ``epoch``.

    Only fires on the first attempt, so the restarted group can finish. Set with
    ``CNAI_TRAIN_FAULT=rank:epoch`` in the environment of the process calling train.
    """

    rank: int
    """Rank whose process is killed (SIGKILL, as the OOM killer would)."""
    epoch: int
    """0-based epoch at whose start it dies."""


@dataclass(frozen=True)
class RankJob:
    """Everything a rank needs, sent once per attempt from the driver."""

    settings: Settings
    """Stores and dataset (the catalog is reopened on each worker)."""
    plan: DataPlan
    """Which rows each rank reads."""
    config: TrainConfig
    """Hyperparameters and model factory."""
    checkpoint_uri: str
    """Folder or URI of this run's checkpoints."""
    fault: Fault | None = None
    """Optional crash drill."""


def train_rank(context: RankContext, job: RankJob) -> Iterator[dict[str, Any]]:
    """The rank function given to :func:`cnai.training.group.run_group`."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    device = torch.device("cuda:0" if context.use_gpu else "cpu")
    spec = job.settings.with_table(job.plan.table).dataset
    config = job.config
    data = load_partition(job.settings, job.plan, context.rank)
    collective = DistributedCollective(device)
    stats = training_stats(data, collective)
    torch.manual_seed(config.seed)
    model = build_model(config, spec, stats).to(device)
    ddp = DistributedDataParallel(model, device_ids=[0] if context.use_gpu else None)
    loop = EpochLoop(model, data, spec, config, collective, device, ddp)

    if context.rank == 0:
        yield {"kind": "ready", "attempt": context.attempt, "train_rows": data.rows("train")}
    s3 = s3_options(job.settings)
    state = load_latest(job.checkpoint_uri, s3)
    history: list[dict[str, Any]] = []
    start = 0
    if state is not None:
        start = loop.restore(state)
        history = list(state.get("history", []))
        if context.rank == 0:
            yield {"kind": "resumed", "epoch": start, "history": history}

    for epoch in range(start, config.epochs):
        fault = job.fault
        if fault and context.attempt == 0 and (fault.rank, fault.epoch) == (context.rank, epoch):
            os.kill(os.getpid(), signal.SIGKILL)
        metrics = asdict(loop.run_epoch(epoch))
        history.append(metrics)
        if context.rank == 0:
            uri = save_checkpoint(
                job.checkpoint_uri, epoch, {**loop.state(epoch), "history": history}, s3
            )
            yield {"kind": "epoch", "metrics": metrics, "checkpoint": uri}

    test_loss, test_accuracy = loop.test()  # accuracy, or RMSE for regression
    if context.rank == 0:
        rows = data.index["validation"][:EXAMPLE_ROWS]
        if len(rows) == 0:
            rows = data.index["train"][:EXAMPLE_ROWS]
        example = data.features[rows]
        yield {
            "kind": "final",
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": history,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "example": example,
        }
