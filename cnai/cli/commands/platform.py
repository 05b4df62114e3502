"""``cnai platform``: a local PostgreSQL-backed Iceberg catalog and MLflow server."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``platform up|down|status``."""
    parser = subparsers.add_parser(
        "platform",
        parents=[common],
        help="start/stop a local PostgreSQL + mlflow server profile under the home",
        description="The cluster's kind of stores on this machine: an Iceberg SQL catalog "
        "and MLflow on a throwaway PostgreSQL cluster, MLflow behind `mlflow server`. "
        "`up` writes <home>/config.yaml so every command uses them; `down` stops them "
        "and restores the previous config.",
    )
    sub = parser.add_subparsers(dest="platform_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", parents=[common], help="start PostgreSQL and mlflow server")
    up.set_defaults(handler=_up)
    down = sub.add_parser("down", parents=[common], help="stop what `up` started")
    down.add_argument(
        "--purge", action="store_true", help="also delete the databases, artifacts and warehouse"
    )
    down.set_defaults(handler=_down)
    show = sub.add_parser("status", parents=[common], help="what runs for this home")
    show.set_defaults(handler=_status)


def _up(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    from cnai.platform.profile import up

    with ctx.progress.status("starting PostgreSQL and mlflow server"):
        return up(ctx.home)


def _down(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    from cnai.platform.profile import down

    return down(ctx.home, purge=args.purge)


def _status(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    from cnai.platform.profile import status

    return status(ctx.home)
