"""``cnai register``: register a training run's model and apply the champion gate."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``register`` command."""
    parser = subparsers.add_parser(
        "register",
        parents=[common],
        help="register a training run's model; it becomes champion only when it is better",
        description="Evaluate the run's model on the held-out test split of the Iceberg "
        "snapshot it was trained on, register it as a new model version tagged with its "
        "lineage (or reuse the version already registered for the run), set alias "
        "challenger, and move alias champion to it only when it beats the champion on the "
        "same rows by at least --min-delta.",
    )
    parser.add_argument("--run-id", required=True, help="MLflow run id of a train step run")
    parser.add_argument(
        "--model-name",
        default=None,
        help="registered model name (default: the configuration's model.name)",
    )
    parser.add_argument(
        "--min-delta",
        type=float,
        default=0.0,
        help="how much the candidate must improve the gate's metric (test accuracy; test "
        "RMSE for model.task regression) over the champion to replace it "
        "(default 0.0; ties keep the champion)",
    )
    parser.set_defaults(handler=run, render=render)


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: run the register step with the context's settings."""
    from cnai.registry.register import register as register_step

    return register_step(
        args.run_id,
        args.model_name,
        args.min_delta,
        settings=ctx.settings,
        progress=ctx.progress,
    )


def render(result: dict[str, Any]) -> str:
    """Human summary: the version, its aliases and the gate's reason."""
    verb = "registered" if result["created"] else "already registered"
    aliases = ", ".join(result["aliases"]) or "none"
    champion = result["champion_version"]
    metrics = "  ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items())
    decision = "promoted" if result["promoted"] else "not promoted"
    return "\n".join(
        [
            f"{verb}: {result['model_name']} v{result['version']} (aliases: {aliases})",
            f"decision: {decision} - {result['reason']}",
            f"champion: v{champion}" if champion is not None else "champion: none",
            f"metrics:  {metrics}",
        ]
    )
