"""The ``--pipeline REF`` option shared by compile, run, submit, runs and pipelines."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnai.argo.pipeline import Pipeline
    from cnai.cli.main import Context


def add_pipeline_option(parser: argparse.ArgumentParser) -> None:
    """``--pipeline REF``: a short name of ``[tool.cnai] pipelines`` or ``module:object``."""
    parser.add_argument(
        "--pipeline",
        metavar="REF",
        help="a pipeline of the project ([tool.cnai] pipelines in pyproject.toml) or a "
        "module:object reference to a cnai.argo.pipeline.Pipeline (default: the project's "
        "default-pipeline; see `cnai pipelines`)",
    )


def selected_pipeline(args: argparse.Namespace, ctx: Context) -> Pipeline:
    """The Pipeline ``--pipeline`` names (or the project's default)."""
    from cnai.project import resolve_pipeline

    return resolve_pipeline(getattr(args, "pipeline", None), ctx.project)
