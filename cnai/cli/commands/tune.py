"""``cnai tune``: run a Katib Experiment spec on Ray Tune, or export it for Katib."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``tune`` command."""
    parser = subparsers.add_parser(
        "tune",
        parents=[common],
        help="hyperparameter search from a Katib Experiment spec, executed by Ray Tune",
        description="Run the search a Katib kubeflow.org/v1beta1 Experiment describes "
        "(objective, algorithm, parameters, budget, medianstop) on Ray Tune, each trial "
        "training through the train step; log a parent MLflow run with one nested run per "
        "trial. With --export-katib, write the equivalent Katib Experiment resource instead.",
    )
    parser.add_argument(
        "--experiment",
        metavar="FILE",
        help="Katib Experiment YAML (default: the configuration's tune.experiment)",
    )
    parser.add_argument(
        "--table", help="NAMESPACE.NAME (default: the configuration's dataset.table)"
    )
    parser.add_argument(
        "--snapshot-id", type=int, help="snapshot to train on (default: the current one)"
    )
    parser.add_argument(
        "--export-katib",
        metavar="OUT.yaml",
        help="write a Katib Experiment custom resource for the same search and exit",
    )
    parser.add_argument(
        "--image",
        help="pipeline image the exported trials run "
        "(default: ghcr.io/cnai-dev/cnai-pipeline:latest)",
    )
    parser.add_argument(
        "--namespace", help="namespace of the exported Experiment (default: metadata or cnai)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: export the spec, or run the tune step with the context's settings."""
    if args.export_katib:
        return export(args, ctx)
    if args.image or args.namespace:
        from cnai.errors import UsageError

        raise UsageError("--image and --namespace only apply with --export-katib")
    from cnai.tuning.step import tune

    return tune(
        args.experiment,
        args.table,
        args.snapshot_id,
        settings=ctx.settings,
        progress=ctx.progress,
    )


def export(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Write the Katib Experiment resource; returns what was written."""
    from cnai.errors import UsageError
    from cnai.tuning.katib import DEFAULT_IMAGE, dump, export_katib
    from cnai.tuning.step import fixed_args, load

    spec = load(args.experiment, ctx.settings)
    table, snapshot_id = fixed_args(spec, args.table, args.snapshot_id)
    if table:
        from cnai.config import parse_table_identifier

        parse_table_identifier(table)
    image = args.image or spec.trial_args.image or DEFAULT_IMAGE
    from cnai.argo.platform import platform_for

    platform = platform_for(ctx.settings)
    resource = export_katib(spec, image, args.namespace, table, snapshot_id, platform)
    out = Path(args.export_katib)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dump(resource))
    except OSError as exc:
        raise UsageError(f"--export-katib {out}: cannot write: {exc.strerror or exc}") from exc
    return {
        "exported": str(out),
        "name": resource["metadata"]["name"],
        "namespace": resource["metadata"]["namespace"],
        "image": image,
        "algorithm": spec.algorithm.name,
        "max_trial_count": spec.max_trial_count,
        "parameters": [p.name for p in spec.parameters],
    }
