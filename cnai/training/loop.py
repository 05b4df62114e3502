"""The epoch loop shared by single-process trials and every DDP rank.

One implementation, so a hyperparameter the tune step found with
``run_trial`` (one process) means the same thing in a distributed ``train``:

- ``batch_size`` is the *global* batch: each of ``world_size`` ranks takes
  ``ceil(batch_size / world_size)`` rows per step, and every rank runs the same
  number of steps per epoch (its shuffled rows are wrapped around to fill them,
  as ``DistributedSampler`` pads), so collectives never wait on a rank that ran out;
- metrics are sums reduced over ranks (:class:`Collective`), so they describe the
  whole split, not one partition.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cnai.config import DatasetSpec
from cnai.errors import UsageError
from cnai.resolve import resolve_callable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from cnai.training.data import SplitArrays

TRAINING_KEYS = ("epochs", "lr", "batch_size", "weight_decay")
"""Hyperparameters the loop consumes; every other one goes to the model factory."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train: loop hyperparameters plus the model factory and its arguments."""

    epochs: int = 15
    """Passes over the training split."""
    lr: float = 0.003
    """Adam learning rate."""
    batch_size: int = 64
    """Global batch size (split evenly across ranks)."""
    weight_decay: float = 0.0
    """Adam weight decay (L2 penalty)."""
    seed: int = 0
    """Seed for model initialisation and per-epoch shuffles."""
    model_factory: str = "steps.models:digits_cnn"
    """``module:function`` building the model."""
    model_params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the model factory (its hyperparameters)."""

    def validate(self) -> None:
        """UsageError naming the first out-of-range hyperparameter."""
        if self.epochs < 1:
            raise UsageError(f"--epochs {self.epochs}: must be at least 1")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise UsageError(f"--lr {self.lr}: must be a positive number")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.weight_decay < 0:
            raise UsageError(f"--weight-decay {self.weight_decay}: must not be negative")

    def params(self) -> dict[str, Any]:
        """Flat parameters for MLflow (model parameters inlined)."""
        out = {k: v for k, v in asdict(self).items() if k != "model_params"}
        out.update(self.model_params)
        return out


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured, over all ranks."""

    epoch: int
    """0-based epoch index."""
    train_loss: float
    """Mean cross-entropy over the epoch's training steps."""
    val_loss: float
    """Mean cross-entropy on the validation split after the epoch (NaN when empty)."""
    val_accuracy: float
    """Accuracy on the validation split after the epoch (NaN when empty)."""
    samples: int
    """Training rows processed this epoch, all ranks together."""
    seconds: float
    """Wall time of the epoch on the reporting rank."""

    def as_dict(self) -> dict[str, float]:
        """The three metrics the contract names."""
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
        }


class Collective:
    """Sum-reduction across ranks; the base class is the single-process identity."""

    world_size = 1
    """Number of ranks taking part."""
    rank = 0
    """This process's rank."""

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``values`` over every rank."""
        return values

    def max(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise maximum of ``values`` over every rank."""
        return values


class DistributedCollective(Collective):
    """Reductions through the initialised ``torch.distributed`` process group."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.device = device

    def _reduce(self, values: torch.Tensor, op: Any) -> torch.Tensor:
        import torch.distributed as dist

        out = values.to(self.device).clone()
        dist.all_reduce(out, op=op)
        return out.cpu()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """All-reduce SUM."""
        import torch.distributed as dist

        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, values: torch.Tensor) -> torch.Tensor:
        """All-reduce MAX."""
        import torch.distributed as dist

        return self._reduce(values, dist.ReduceOp.MAX)


def resolve_factory(name: str) -> Callable[..., Any]:
    """The callable named ``module:function``; UsageError when it cannot be found."""
    return resolve_callable(name, what="model factory")


def build_model(config: TrainConfig, spec: DatasetSpec) -> nn.Module:
    """Call the configured factory; UsageError when it rejects the arguments.

    ``input_shape`` and ``num_classes`` are passed when the factory accepts them
    (by name or through ``**kwargs``).
    """
    from torch import nn

    factory = resolve_factory(config.model_factory)
    kwargs = dict(config.model_params)
    try:
        signature = inspect.signature(factory)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        names = set(signature.parameters)
    except (TypeError, ValueError):
        accepts_any, names = True, set()
    for key, value in (
        ("input_shape", tuple(spec.feature_shape)),
        ("num_classes", len(spec.classes)),
    ):
        if accepts_any or key in names:
            kwargs.setdefault(key, value)
    unknown = sorted(k for k in config.model_params if not accepts_any and k not in names)
    if unknown:
        raise UsageError(
            f"model factory {config.model_factory}: has no hyperparameter {unknown[0]!r}"
        )
    try:
        model = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"model factory {config.model_factory}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise UsageError(
            f"model factory {config.model_factory}: returned {type(model).__name__}, "
            "expected a torch.nn.Module"
        )
    return model


def check_model(model: nn.Module, spec: DatasetSpec) -> None:
    """UsageError unless the model maps a batch of rows to one logit per class."""
    import torch

    x = torch.zeros((2, *spec.feature_shape), dtype=torch.float32)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:  # any failure means the model does not fit the data
        raise UsageError(
            f"model: cannot run on inputs shaped {list(spec.feature_shape)} ({exc})"
        ) from exc
    if tuple(out.shape) != (2, len(spec.classes)):
        raise UsageError(
            f"model: returned shape {list(out.shape)[1:]} per row, "
            f"expected {len(spec.classes)} logits (one per class)"
        )
    model.train()


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def evaluate(
    model: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    rows: torch.Tensor,
    collective: Collective,
    batch: int = 4096,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``rows`` over every rank (NaN when none)."""
    import torch
    from torch.nn import functional

    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            index = rows[start : start + batch]
            logits = model(features[index])
            y = labels[index]
            loss_sum += float(functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(dim=1) == y).sum())
    model.train()
    totals = collective.sum(torch.tensor([loss_sum, float(correct), float(len(rows))]))
    count = float(totals[2])
    if count == 0:
        return math.nan, math.nan
    return float(totals[0]) / count, float(totals[1]) / count


class EpochLoop:
    """Trains one model on one rank's partition; call :meth:`run_epoch` per epoch."""

    def __init__(
        self,
        model: nn.Module,
        data: SplitArrays,
        spec: DatasetSpec,
        config: TrainConfig,
        collective: Collective,
        device: torch.device,
        ddp_model: nn.Module | None = None,
    ) -> None:
        import torch

        self.model = model
        self.train_model = ddp_model if ddp_model is not None else model
        self.config = config
        self.collective = collective
        self.device = device
        # Feature-major storage is kept as it is: splitting the feature axis into the
        # model's shape is a view, and each batch's row gather makes a dense copy.
        self.features = torch.from_numpy(data.features).to(device).reshape(-1, *spec.feature_shape)
        self.labels = _tensor(data.labels, device)
        self.rows = {split: _tensor(rows, device) for split, rows in data.index.items()}
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        local = torch.tensor([float(data.rows("train"))])
        self.max_rows = int(collective.max(local)[0])
        self.local_rows = data.rows("train")
        if self.max_rows == 0:
            raise UsageError("training split: has no rows (too little data for a train split)")
        self.per_rank_batch = max(1, math.ceil(config.batch_size / collective.world_size))

    def state(self, epoch: int) -> dict[str, Any]:
        """What a checkpoint needs to resume after ``epoch``."""
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def restore(self, state: dict[str, Any]) -> int:
        """Load a checkpoint; returns the next epoch to run."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["epoch"]) + 1

    def _order(self, epoch: int) -> np.ndarray:
        """This rank's row order for ``epoch``: a seeded shuffle, wrapped to fill the steps."""
        steps = math.ceil(self.max_rows / self.per_rank_batch)
        needed = steps * self.per_rank_batch
        if self.local_rows == 0:
            raise UsageError(
                f"rank {self.collective.rank}: its partition has no training rows "
                "(use fewer workers)"
            )
        rng = np.random.default_rng([self.config.seed, epoch, self.collective.rank])
        order = rng.permutation(self.local_rows)
        if needed > len(order):
            order = np.resize(order, needed)
        return order[:needed]

    def run_epoch(self, epoch: int) -> EpochMetrics:
        """One pass over the training rows, then validation; metrics over all ranks."""
        import time

        import torch
        from torch.nn import functional

        start = time.perf_counter()
        # Positions in the partition of this epoch's shuffled training rows.
        order = self.rows["train"][torch.from_numpy(self._order(epoch)).to(self.device)]
        self.train_model.train()
        loss_sum = torch.zeros((), device=self.device)
        for begin in range(0, len(order), self.per_rank_batch):
            index = order[begin : begin + self.per_rank_batch]
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.train_model(self.features[index])
            loss = functional.cross_entropy(logits, self.labels[index])
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(index)
        totals = self.collective.sum(torch.tensor([float(loss_sum), float(len(order))]))
        val_loss, val_accuracy = self._evaluate("validation")
        return EpochMetrics(
            epoch=epoch,
            train_loss=float(totals[0]) / float(totals[1]),
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            samples=int(totals[1]),
            seconds=time.perf_counter() - start,
        )

    def test(self) -> tuple[float, float]:
        """Loss and accuracy on the test split over all ranks."""
        return self._evaluate("test")

    def _evaluate(self, split: str) -> tuple[float, float]:
        return evaluate(self.model, self.features, self.labels, self.rows[split], self.collective)
