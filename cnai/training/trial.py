"""Single-process training through the shared epoch loop (what the tune step runs)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from cnai.catalog import load_table, snapshot_at
from cnai.config import Settings
from cnai.training.classes import resolve_classes
from cnai.training.data import SplitArrays, load_partition, plan_partitions
from cnai.training.loop import Collective, EpochLoop, TrainConfig, build_model, check_model
from cnai.training.stats import training_stats

Report = Callable[[int, dict[str, float], int], "bool | None"]
"""Called after each epoch with (epoch, metrics, epochs): the 0-based epoch, its
metrics and the number of epochs the run trains unless stopped; returning True
stops the trial."""

_CACHE: dict[tuple[Any, ...], SplitArrays] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


def cached_partition(settings: Settings, table: str | None, snapshot_id: int | None) -> SplitArrays:
    """The whole table at a snapshot as split arrays, cached per process.

    A snapshot never changes, so trials of one tuning run read the table once.
    """
    spec = settings.with_table(table).dataset
    resolved = snapshot_at(load_table(settings, spec.table), snapshot_id).snapshot_id
    key = (
        settings.catalog_name,
        tuple(sorted(settings.catalog_properties.items())),
        spec,
        resolved,
    )
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    data = load_partition(settings, plan_partitions(settings, 1, resolved, spec.table), 0)
    with _CACHE_LOCK:
        _CACHE[key] = data
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return data


def run_single(
    config: TrainConfig,
    settings: Settings,
    report: Report,
    table: str | None = None,
    snapshot_id: int | None = None,
) -> dict[str, float]:
    """Train in this process; returns the last epoch's metrics plus ``epochs_completed``."""
    import torch

    config.validate()
    settings = resolve_classes(settings, table, snapshot_id)
    spec = settings.dataset
    data = cached_partition(settings, table, snapshot_id)
    torch.manual_seed(config.seed)
    model = build_model(config, spec, training_stats(data, Collective()))
    check_model(model, spec)
    loop = EpochLoop(model, data, spec, config, Collective(), torch.device("cpu"))
    last: dict[str, float] = {}
    completed = 0
    # One intra-op thread: the model is small, trials run side by side, and spinning
    # OpenMP threads on a busy machine cost far more than they gain.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for epoch in range(config.epochs):
            metrics = loop.run_epoch(epoch).as_dict()
            last = metrics
            completed = epoch + 1
            if report(epoch, dict(metrics), config.epochs):
                break
    finally:
        torch.set_num_threads(threads)
    return {**last, "epochs_completed": float(completed)}
