"""Fixed cost of one distributed training call: cnai's Ray worker group vs plain DDP.

Both sides do the same work: 2 ranks join a gloo process group, wrap a tiny
linear model in DistributedDataParallel, run one batch forward/backward/step
(one gradient all-reduce) and tear down. Measured side by side in the same run,
alternating, ``--repeats`` times each (median reported):

- ours: :func:`cnai.training.group.run_group` on an already-running local Ray
  (placement group, one actor per rank, rendezvous, streamed result) - the cost
  every ``cnai train`` call pays; starting Ray itself is a once-per-cluster cost,
  reported separately as ``ray_init_s``;
- baseline: ``torch.multiprocessing.start_processes`` (spawn) of 2 processes
  doing the same DDP step.

Optionally (``--ray-train``) also times Ray Train's ``TorchTrainer.fit`` doing
the same step, for reference. The last line is the JSON summary
(ratio = ours / baseline seconds, lower is better; target <= 1.5).

    python benchmarks/train_overhead.py [--repeats 3] [--ray-train]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORLD_SIZE = 2


def one_ddp_step() -> float:
    """Tiny model, one batch, one all-reduced gradient step; returns the loss."""
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def ours_rank(context: Any, payload: Any) -> Iterator[float]:
    """Rank function for the Ray worker group (process group already joined)."""
    loss = one_ddp_step()
    if context.rank == 0:
        yield loss


def _baseline_rank(rank: int, port: int) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        one_ddp_step()
        # Every rank done before any leaves: rank 0 hosts the TCP store, and a rank that
        # tore down while the other still used it aborted ("terminate called without an
        # active exception", seen once in `make bench`).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def time_baseline() -> float:
    """Seconds for torch.multiprocessing (spawn) + gloo DDP doing one step."""
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    start = time.perf_counter()
    mp.start_processes(_baseline_rank, args=(port,), nprocs=WORLD_SIZE, start_method="spawn")
    return time.perf_counter() - start


def time_ours() -> float:
    """Seconds for one cnai worker-group call doing one step (Ray already running)."""
    from cnai.training.group import run_group

    losses: list[float] = []
    start = time.perf_counter()
    run_group(ours_rank, None, WORLD_SIZE, max_restarts=0, on_item=lambda r, x: losses.append(x))
    seconds = time.perf_counter() - start
    assert len(losses) == 1
    return seconds


def _ray_train_loop(config: dict[str, Any]) -> None:
    one_ddp_step()


def time_ray_train(storage: str) -> float:
    """Seconds for Ray Train's TorchTrainer.fit doing one step (reference only)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        _ray_train_loop,
        scaling_config=ScalingConfig(num_workers=WORLD_SIZE, use_gpu=False),
        run_config=RunConfig(storage_path=storage),
    )
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def main() -> None:
    """Run both sides and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray-train", action="store_true", help="also time TorchTrainer.fit")
    args = parser.parse_args()

    import logging
    import tempfile

    import ray

    start = time.perf_counter()
    ray.init(
        num_cpus=max(WORLD_SIZE, os.cpu_count() or 1),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    ray_init = time.perf_counter() - start
    ours: list[float] = []
    baseline: list[float] = []
    reference: list[float] = []
    try:
        for index in range(args.repeats):
            ours.append(time_ours())
            baseline.append(time_baseline())
            print(f"repeat {index + 1}: ours {ours[-1]:.2f}s baseline {baseline[-1]:.2f}s")
        if args.ray_train:
            with tempfile.TemporaryDirectory() as storage:
                reference.append(time_ray_train(storage))
            print(f"ray train TorchTrainer.fit: {reference[-1]:.2f}s")
    finally:
        ray.shutdown()
    ours_s, base_s = statistics.median(ours), statistics.median(baseline)
    summary: dict[str, Any] = {
        "benchmark": "train_overhead",
        "ratio": round(ours_s / base_s, 3),
        "ours": round(ours_s, 3),
        "baseline": round(base_s, 3),
        "unit": "s",
        "ours_runs": [round(v, 3) for v in ours],
        "baseline_runs": [round(v, 3) for v in baseline],
        "ray_init_s": round(ray_init, 3),
        "world_size": WORLD_SIZE,
        "cpus": os.cpu_count(),
    }
    if reference:
        summary["ray_train_fit_s"] = round(reference[0], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
