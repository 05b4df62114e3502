"""One Katib trial: ``python -m cnai.tuning.trial --hparam NAME=VALUE ...``.

This is what the trial Job of an exported Katib Experiment runs in the pipeline
image. It trains one configuration through the train step's ``run_trial`` (the
same code path ``cnai tune`` runs locally) and prints, after every epoch, one
line Katib's StdOut metrics collector parses with its default filter::

    2026-01-01T00:00:00.000000Z epoch=3 val_accuracy=0.95833333 val_loss=0.15 ...

Settings come from the environment (the ConfigMap and Secret of the pipeline).
Exit codes follow the CLI: 2 for a bad argument, 1 for a failed trial.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from cnai.errors import CnaiError


def parse_hparams(
    items: Sequence[str], types: dict[str, type], factory: str = "the train step"
) -> dict[str, Any]:
    """``NAME=VALUE`` strings -> hyperparameters converted to their declared types.

    ``types``: what the loop and ``factory`` declare (see :mod:`cnai.training.hparams`).
    """
    from cnai.training.hparams import parse_assignments

    return parse_assignments(items, types, factory)


def metrics_line(step: int, metrics: dict[str, float], when: datetime | None = None) -> str:
    """One Katib StdOut line: RFC 3339 timestamp, then ``name=value`` in plain decimals."""
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    values = " ".join(f"{name}={float(value):.8f}" for name, value in sorted(metrics.items()))
    return f"{stamp} epoch={step} {values}"


def run(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    trial_fn: Callable[..., Any] | None = None,
) -> dict[str, float]:
    """Parse arguments, train, print one metrics line per epoch; returns the last metrics."""
    from cnai.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m cnai.tuning.trial", description=__doc__)
    parser.add_argument("--hparam", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--table", default=None, help="NAMESPACE.NAME (default: configured)")
    parser.add_argument("--snapshot-id", type=int, default=None)
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    from cnai.training.hparams import hyperparameters, types_of

    settings = load_settings()
    if trial_fn is None:
        from cnai.training.step import run_trial

        trial_fn = run_trial
    hparams = parse_hparams(
        args.hparam, types_of(hyperparameters(settings)), settings.model_factory
    )
    steps = 0

    def report(epoch: int, metrics: dict[str, float], epochs: int) -> None:
        nonlocal steps
        steps += 1
        print(metrics_line(steps, metrics), file=stream, flush=True)

    return dict(
        trial_fn(
            hparams,
            settings=settings,
            table=args.table,
            snapshot_id=args.snapshot_id,
            report=report,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    try:
        run(argv)
    except CnaiError as exc:
        print(f"cnai trial: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
