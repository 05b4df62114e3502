"""Recording a pipeline's decisions on an Iceberg table, as table properties.

A property update is a metadata-only commit: the table's data, snapshots and data
version are untouched. Pipelines record, e.g., the work key of the last run that
registered a model (so an unchanged rerun skips training) or the last snapshot they
scored. Concurrent commits are retried on Iceberg's optimistic-concurrency conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRAINED_KEY_PROPERTY = "cnai.pipeline.trained-key"
"""Table property: work key of the last pipeline run that registered a model."""
TRAINED_MODEL_PROPERTY = "cnai.pipeline.model"
"""Table property: JSON {name, version, promoted, run_id, workflow} of that registration."""
COMMIT_ATTEMPTS = 5
"""Attempts of one property commit against concurrent writers."""


def record_on_table(settings: Any, table_name: str, properties: Mapping[str, str]) -> None:
    """Set ``properties`` on table ``table_name`` (reloaded and retried on a conflict)."""
    from pyiceberg.exceptions import CommitFailedException

    from cnai.catalog import load_table

    for attempt in range(COMMIT_ATTEMPTS):
        table = load_table(settings, table_name)
        try:
            with table.transaction() as tx:
                tx.set_properties(dict(properties))
            return
        except CommitFailedException:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
