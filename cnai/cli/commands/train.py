"""``cnai train``: distributed DDP training on Ray of the table at a snapshot."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from cnai.errors import UsageError

if TYPE_CHECKING:
    from cnai.cli.main import Context


def _model_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (numbers, lists...)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


DEPRECATED_ALIASES = ("channels", "hidden", "dropout")
"""Former fixed options, kept as aliases of ``--hparam NAME=VALUE``."""


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``train`` command."""
    from cnai.training.step import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_EPOCHS,
        DEFAULT_LR,
        DEFAULT_MAX_RESTARTS,
    )

    parser = subparsers.add_parser(
        "train",
        parents=[common],
        help="train the model with N DDP workers on Ray (one MLflow run)",
        description="Read the Iceberg table at a snapshot, split it by row-key hash and "
        "train the configured model with PyTorch DDP on N Ray workers. Checkpoints every "
        "epoch and restarts from the last one if a worker dies. Logs one MLflow run.",
    )
    parser.add_argument(
        "--table", help="NAMESPACE.NAME (default: the configuration's dataset.table)"
    )
    parser.add_argument("--snapshot-id", type=int, help="snapshot to train on (default: current)")
    parser.add_argument("--workers", type=int, default=2, help="DDP ranks (default 2)")
    parser.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help=f"default {DEFAULT_EPOCHS}"
    )
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"default {DEFAULT_LR}")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"global batch size, split across workers (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--weight-decay", type=float, default=0.0, help="default 0")
    parser.add_argument(
        "--hparam",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter the configured model factory declares (its keyword "
        "parameters with a default and an int/float/bool/str annotation), typed by the "
        "declaration; repeatable (an unknown NAME is refused, listing the declared ones)",
    )
    for name in DEPRECATED_ALIASES:
        parser.add_argument(
            f"--{name}",
            dest=f"alias_{name}",
            metavar="VALUE",
            help=f"deprecated: --hparam {name}=VALUE",
        )
    parser.add_argument(
        "--model-param",
        action="append",
        type=_model_param,
        default=[],
        metavar="KEY=VALUE",
        help="extra keyword argument for the model factory that is not a declared "
        "hyperparameter, VALUE parsed as JSON (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="init/shuffle seed (default 0)")
    parser.add_argument(
        "--use-gpu", action="store_true", help="one GPU per worker and NCCL (when GPUs exist)"
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=DEFAULT_MAX_RESTARTS,
        help=f"restarts from the last checkpoint after worker failures "
        f"(default {DEFAULT_MAX_RESTARTS})",
    )
    parser.add_argument("--git-sha", help="tag the MLflow run with this commit")
    parser.add_argument("--git-branch", help="tag the MLflow run with this branch")
    parser.add_argument("--trigger", help="tag: what started this run (push|data|schedule|manual)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: run the train step with the context's settings."""
    from cnai.training.hparams import hyperparameters, parse_assignments, types_of
    from cnai.training.step import train

    settings = ctx.settings
    declared = types_of(hyperparameters(settings))
    words = list(args.hparam)
    for name in DEPRECATED_ALIASES:
        value = getattr(args, f"alias_{name}")
        if value is not None:
            words.append(f"{name}={value}")
    hparams = parse_assignments(words, declared, settings.model_factory)
    for name in ("epochs", "lr", "batch_size", "weight_decay"):
        if name in hparams:
            raise UsageError(f"--hparam {name}: use --{name.replace('_', '-')} instead")
    model_params = dict(args.model_param)
    for name in model_params:
        if name in declared:
            raise UsageError(f"--model-param {name}: a declared hyperparameter, use --hparam")
    return train(
        table=args.table,
        snapshot_id=args.snapshot_id,
        workers=args.workers,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        use_gpu=args.use_gpu,
        weight_decay=args.weight_decay,
        model_params=model_params,
        seed=args.seed,
        max_restarts=args.max_restarts,
        git_sha=args.git_sha,
        git_branch=args.git_branch,
        trigger=args.trigger,
        settings=settings,
        progress=ctx.progress,
        **hparams,
    )
