"""``cnai ingest``: validated, idempotent append of Parquet/CSV files to Iceberg."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``ingest`` command."""
    parser = subparsers.add_parser(
        "ingest",
        parents=[common],
        help="append new Parquet/CSV files to the Iceberg table (one snapshot, idempotent)",
        description="Validate source files against the data contract and append the new "
        "ones to the Iceberg table as one snapshot. Re-ingesting the same files is a no-op.",
    )
    parser.add_argument(
        "--source",
        help="Parquet/CSV file or folder: path, file:// or s3:// URI "
        "(default: <home>/landing, seeded with the digits data set when empty)",
    )
    parser.add_argument(
        "--table", help="NAMESPACE.NAME (default: the configuration's dataset.table)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: run the ingest step with the context's settings."""
    from cnai.ingest import ingest

    return ingest(args.source, args.table, settings=ctx.settings, progress=ctx.progress)
