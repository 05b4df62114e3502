"""Recording a pipeline's decisions on an Iceberg table, as table properties.

A property update is a metadata-only commit: the table's data, snapshots and data
version are untouched. Pipelines record, e.g., the work key of the last run that
registered a model (so an unchanged rerun skips training) or the last snapshot they
scored. A commit that loses a race with another writer is retried by
:func:`cnai.retrying.commit_policy` (the one retry policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRAINED_KEY_PROPERTY = "cnai.pipeline.trained-key"
"""Table property: work key of the last pipeline run that registered a model."""
TRAINED_MODEL_PROPERTY = "cnai.pipeline.model"
"""Table property: JSON {name, version, promoted, run_id, workflow} of that registration."""


def record_on_table(settings: Any, table_name: str, properties: Mapping[str, str]) -> None:
    """Set ``properties`` on table ``table_name`` (reloaded and retried on a conflict)."""
    from pyiceberg.exceptions import CommitFailedException

    from cnai.catalog import load_table
    from cnai.retrying import commit_policy

    def commit() -> None:
        table = load_table(settings, table_name)
        with table.transaction() as tx:
            tx.set_properties(dict(properties))

    def conflict(exc: BaseException) -> bool:
        return isinstance(exc, CommitFailedException)

    commit_policy(conflict, give_up=lambda exc, _attempts: exc)(commit)
