"""The library's default model factory: a tabular MLP that standardises its inputs.

``train.model_factory`` defaults to ``cnai.models:mlp``. It fits any numeric feature
table: the features are flattened, standardised with the training split's per-feature
mean and standard deviation (given by the train step, see :mod:`cnai.training.stats`;
kept in the model's state so the logged model applies the same scaling), then pass
through one hidden layer. ``num_classes`` outputs: one logit per class, or 1 value
for regression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class TabularMLP(nn.Module):
    """``(x - mean) / std`` -> Linear -> ReLU -> Dropout -> Linear."""

    mean: torch.Tensor
    """Per-feature mean subtracted from the inputs (a buffer)."""
    std: torch.Tensor
    """Per-feature standard deviation the inputs are divided by (a buffer)."""

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden: int,
        dropout: float,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        # Buffers, not parameters: saved with the weights, never trained.
        self.register_buffer("mean", _vector(mean, input_size, 0.0, "feature_mean"))
        self.register_buffer("std", _vector(std, input_size, 1.0, "feature_std"))
        self.net = nn.Sequential(
            nn.Linear(input_size, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for a batch shaped ``(n, *input_shape)``."""
        return self.net((x.flatten(1) - self.mean) / self.std)


def _vector(values: Sequence[float] | None, size: int, fill: float, name: str) -> torch.Tensor:
    if values is None:
        return torch.full((size,), fill, dtype=torch.float32)
    if len(values) != size:
        raise ValueError(f"{name}: {len(values)} values for {size} features")
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: int = 64,
    dropout: float = 0.1,
    feature_mean: Sequence[float] | None = None,
    feature_std: Sequence[float] | None = None,
) -> nn.Module:
    """The default model: a one-hidden-layer MLP over standardised features.

    Args:
        input_shape: shape of one row's features (flattened here).
        num_classes: number of outputs (one per class; 1 for regression).
        hidden: units of the hidden layer.
        dropout: dropout probability after the hidden layer, in [0, 1).
        feature_mean, feature_std: the training split's per-feature statistics (the
            train step passes them); None: no scaling until trained weights are loaded.
    """
    if hidden < 1:
        raise ValueError(f"hidden {hidden}: must be at least 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout {dropout}: must be in [0, 1)")
    if num_classes < 1:
        raise ValueError(f"num_classes {num_classes}: must be at least 1")
    size = math.prod(int(d) for d in input_shape)
    return TabularMLP(size, num_classes, hidden, dropout, feature_mean, feature_std)
