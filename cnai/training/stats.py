"""Statistics of the training split that a model factory may use (friction 6).

Every rank sums its own training rows and the sums are all-reduced, so each rank
(and a single-process trial) gets the same per-feature mean and standard deviation
of the whole training split. A factory that declares ``feature_mean`` and
``feature_std`` parameters receives them (see :func:`cnai.training.loop.build_model`);
:func:`cnai.models.mlp` standardises its inputs with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cnai.training.data import SplitArrays
    from cnai.training.loop import Collective

CHUNK_ROWS = 65536
"""Rows summed at a time."""
MIN_STD = 1e-6
"""A feature whose standard deviation is below this is divided by 1 (constant columns)."""


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature statistics of the training split, in the dataset's feature order."""

    mean: tuple[float, ...]
    """Mean of each feature."""
    std: tuple[float, ...]
    """Population standard deviation of each feature (1.0 where it is ~0)."""


def training_stats(data: SplitArrays, collective: Collective) -> FeatureStats:
    """The training split's per-feature mean and standard deviation over every rank."""
    import torch

    rows = data.index["train"]
    width = data.features.shape[1]
    sums, squares = np.zeros(width), np.zeros(width)
    for start in range(0, len(rows), CHUNK_ROWS):  # bounded float64 copies
        block = data.features[rows[start : start + CHUNK_ROWS]].astype(np.float64)
        sums += block.sum(axis=0)
        squares += (block * block).sum(axis=0)
    local = torch.from_numpy(np.concatenate([sums, squares, [float(len(rows))]]))
    totals = collective.sum(local).double().numpy()
    count = max(float(totals[-1]), 1.0)
    mean = totals[:width] / count
    variance = np.maximum(totals[width : 2 * width] / count - mean * mean, 0.0)
    std = np.sqrt(variance)
    std = np.where(std < MIN_STD, 1.0, std)
    return FeatureStats(tuple(float(v) for v in mean), tuple(float(v) for v in std))
