"""The class list of a classification data set: declared, or inferred from the table.

Without ``dataset.classes`` the classes are the distinct label values of the snapshot
being trained on (every split), sorted (integers numerically, strings by code point),
so the same snapshot always gives the same output order. The train step logs the
list with the model (the pyfunc wrapper's ``classes``, the model's MLflow metadata
and ``classes.json``); register infers the same list from the same snapshot.
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow.compute as pc

from cnai.catalog import load_table, snapshot_at
from cnai.config import Settings
from cnai.errors import UsageError

MAX_INFERRED_CLASSES = 1000
"""The most distinct labels inferred as classes; more asks for a declaration (or regression)."""


def resolve_classes(settings: Settings, table: str | None, snapshot_id: int | None) -> Settings:
    """``settings`` whose dataset lists its classes (inferred at the snapshot when undeclared).

    Regression and declared classes are returned unchanged. UsageError when the
    snapshot holds fewer than 2 or more than :data:`MAX_INFERRED_CLASSES` distinct labels.
    """
    settings = settings.with_table(table)
    spec = settings.dataset
    if spec.is_regression or spec.classes:
        return settings
    iceberg = load_table(settings, spec.table)
    snapshot = snapshot_at(iceberg, snapshot_id)
    labels = iceberg.scan(
        snapshot_id=snapshot.snapshot_id, selected_fields=(spec.label,)
    ).to_arrow_batch_reader()
    seen: set[int | str] = set()
    for batch in labels:
        column = batch.column(spec.label)
        seen.update(v for v in pc.unique(column.drop_null()).to_pylist() if v is not None)
        if len(seen) > MAX_INFERRED_CLASSES:
            break
    where = f"table {spec.table} at snapshot {snapshot.snapshot_id}"
    if len(seen) > MAX_INFERRED_CLASSES:
        raise UsageError(
            f"dataset.classes: not declared and {where} holds more than "
            f"{MAX_INFERRED_CLASSES} distinct labels (rule: declare dataset.classes, or set "
            "model.task: regression for a numeric target)"
        )
    if len(seen) < 2:
        raise UsageError(
            f"dataset.classes: not declared and {where} holds {len(seen)} distinct label(s) "
            f"{sorted(seen, key=str)} (rule: a classifier needs at least 2 classes)"
        )
    return replace(settings, dataset=replace(spec, classes=tuple(sorted(seen))))
