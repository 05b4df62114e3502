"""Ingest step: validate landed Parquet/CSV files and append them to the Iceberg table.

A thin step of the reference project: the work is :func:`cnai.ingest.ingest`.
"""

from cnai.ingest import ingest

__all__ = ["ingest"]
