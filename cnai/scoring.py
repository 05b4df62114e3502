"""Batch scoring: predictions of a registered model for the rows a snapshot added.

:func:`score` reads an Iceberg table at a snapshot, loads ``models:/<name>@<alias>``
(the champion by default) the way ``cnai serve`` does (:func:`cnai.serving.model.
load_version`, checked against its signature), and appends one prediction per new row
to ``<namespace>.<table>_predictions`` with lineage columns: the model name and
version, and the input snapshot id.

Incremental and idempotent per input snapshot:

- the rows scored are those of the snapshot's data files that were not in the last
  *scored* ancestor snapshot (ingest only appends), so each row is scored once;
- the append and the table property :data:`LAST_SCORED_PROPERTY` are one Iceberg
  commit whose snapshot summary carries :data:`INPUT_SNAPSHOT_PROPERTY`; a snapshot
  already in a summary (or an ancestor of one) is skipped, so re-running for the same
  snapshot adds no rows, also when two runs race (the loser's commit conflicts,
  it reloads and finds the snapshot scored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnai.config import ROW_HASH_COLUMN, Settings, load_settings
from cnai.errors import UsageError
from cnai.progress import Progress

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

PREDICTIONS_SUFFIX = "_predictions"
"""``<table><suffix>`` is the predictions table of ``<table>``."""
INPUT_SNAPSHOT_PROPERTY = "cnai.scoring.input-snapshot"
"""Snapshot summary key of a predictions commit: the input snapshot it scored."""
LAST_SCORED_PROPERTY = "cnai.scoring.last-input-snapshot"
"""Predictions table property: the input snapshot scored last."""
MODEL_PROPERTY = "cnai.scoring.model"
"""Snapshot summary key of a predictions commit: ``<name>/<version>`` that scored it."""
PREDICTION_COLUMN = "prediction"
"""The model's output for the row."""
LINEAGE_COLUMNS = ("model_name", "model_version", "input_snapshot_id")
"""Columns naming where each prediction came from."""
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def configured_model_name(settings: Settings) -> str:
    """The registered model name of the configuration (its ``model_name`` setting when
    it has one, else the registry's default)."""
    from cnai.registry.register import MODEL_NAME

    return str(getattr(settings, "model_name", "") or MODEL_NAME)


def predictions_table_name(table: str) -> str:
    """``ns.name`` -> ``ns.name_predictions``."""
    return f"{table}{PREDICTIONS_SUFFIX}"


def champion_version(settings: Settings, model_name: str, alias: str = "champion") -> str:
    """The version ``models:/<model_name>@<alias>`` names; UsageError when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
    try:
        found = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            raise UsageError(
                f"model {model_name}: no version with alias {alias!r} to score with "
                "(register one first: `cnai run` or `cnai register`)"
            ) from exc
        raise
    return str(found.version)


def _scored_inputs(predictions: Table) -> set[int]:
    found: set[int] = set()
    for snapshot in predictions.snapshots():
        raw = (snapshot.summary.additional_properties if snapshot.summary else {}).get(
            INPUT_SNAPSHOT_PROPERTY
        )
        if raw:
            found.add(int(raw))
    last = predictions.properties.get(LAST_SCORED_PROPERTY)
    if last:
        found.add(int(last))
    return found


def _covered_by(table: Table, snapshot_id: int, scored: set[int]) -> int | None:
    """A scored snapshot whose lineage includes ``snapshot_id`` (its rows are scored)."""
    from cnai.catalog import lineage

    for other in sorted(scored):
        if table.snapshot_by_id(other) is None:
            continue
        if snapshot_id in {s.snapshot_id for s in lineage(table, other)}:
            return other
    return None


def _files(table: Table, snapshot_id: int) -> dict[str, Any]:
    return {t.file.file_path: t for t in table.scan(snapshot_id=snapshot_id).plan_files()}


def new_rows(table: Table, snapshot_id: int, scored: set[int]) -> tuple[pa.Table, int | None]:
    """Rows of ``snapshot_id`` not in its last scored ancestor, and that ancestor's id."""
    import pyarrow as pa
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    from cnai.catalog import lineage

    ancestors = [s.snapshot_id for s in lineage(table, snapshot_id)][:-1]
    previous = next((s for s in reversed(ancestors) if s in scored), None)
    tasks = _files(table, snapshot_id)
    if previous is not None:
        for path in _files(table, previous):
            tasks.pop(path, None)
    if not tasks:
        return pa.table({}), previous
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    return scan.to_table(list(tasks.values())), previous


def _predict(settings: Settings, model_name: str, version: str, rows: pa.Table) -> Any:
    import numpy as np

    from cnai.serving.model import load_version
    from cnai.tracking import configure

    configure(settings)
    try:
        served = load_version(model_name, version)
    except ValueError as exc:
        raise UsageError(f"model {model_name} v{version}: cannot score: {exc}") from exc
    missing = [c for c in served.spec.features if c not in rows.column_names]
    if missing:
        raise UsageError(
            f"model {model_name} v{version}: the table lacks its feature columns {missing[:5]}"
        )
    matrix = np.column_stack(
        [rows.column(c).to_numpy(zero_copy_only=False) for c in served.spec.features]
    ).astype(np.float32)
    return served.predict(matrix)


def _prediction_rows(
    settings: Settings,
    rows: pa.Table,
    predictions: Any,
    model_name: str,
    version: str,
    snapshot_id: int,
) -> pa.Table:
    import pyarrow as pa

    keep = [c for c in (*settings.dataset.key, ROW_HASH_COLUMN) if c in rows.column_names]
    n = rows.num_rows
    columns: dict[str, Any] = {c: rows.column(c) for c in dict.fromkeys(keep)}
    columns[PREDICTION_COLUMN] = pa.array(list(predictions.tolist()))
    columns["model_name"] = pa.array([model_name] * n, pa.string())
    columns["model_version"] = pa.array([int(version)] * n, pa.int64())
    columns["input_snapshot_id"] = pa.array([snapshot_id] * n, pa.int64())
    return pa.table(columns)


def _predictions_table(settings: Settings, name: str, schema: pa.Schema) -> Table:
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError

    from cnai.catalog import open_catalog

    catalog = open_catalog(settings)
    try:
        return catalog.load_table(name)
    except NoSuchTableError:
        pass
    try:
        return catalog.create_table(name, schema=schema)
    except TableAlreadyExistsError:
        return catalog.load_table(name)


def _outcome(
    table: str, snapshot_id: int, model_name: str, version: str, rows: int, reason: str = ""
) -> dict[str, Any]:
    return {
        "table": table,
        "snapshot_id": snapshot_id,
        "predictions_table": predictions_table_name(table),
        "model_name": model_name,
        "model_version": version,
        "rows_scored": rows,
        "skipped": bool(reason),
        "reason": reason,
    }


def score(
    table: str | None = None,
    snapshot_id: int | None = None,
    model_name: str | None = None,
    alias: str = "champion",
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score the rows ``snapshot_id`` of ``table`` added with ``models:/<model_name>@<alias>``.

    Args:
        table: ``NS.NAME`` to score; default: the configured table.
        snapshot_id: the input snapshot; default: the current one (pinned at start).
        model_name: registered model; default: the configured one.
        alias: the model alias to score with.
        settings: stores and dataset; default: resolved from the environment.
        progress: where to report progress; default: plain lines on stderr.

    Returns:
        ``{"table", "snapshot_id", "predictions_table", "model_name", "model_version",
        "rows_scored", "skipped", "reason"}``.

    Raises:
        UsageError: no such table or snapshot, no model version with the alias, or a
        model that does not take the table's feature columns.
    """
    from pyiceberg.exceptions import CommitFailedException

    from cnai.catalog import load_table, open_catalog, snapshot_at
    from cnai.retrying import commit_policy

    settings = settings or load_settings()
    progress = progress or Progress()
    source = load_table(settings, table)
    name = table or settings.dataset.table
    snapshot = snapshot_at(source, snapshot_id).snapshot_id
    model_name = model_name or configured_model_name(settings)
    out = predictions_table_name(name)
    catalog = open_catalog(settings)
    version = ""

    def attempt() -> dict[str, Any]:
        nonlocal version
        predictions = catalog.load_table(out) if catalog.table_exists(out) else None
        scored = _scored_inputs(predictions) if predictions is not None else set()
        covered = _covered_by(source, snapshot, scored)
        if covered is not None:
            progress.info(f"{name}@{snapshot}: already scored; nothing to do")
            why = f"snapshot {snapshot} already scored (with snapshot {covered})"
            return _outcome(name, snapshot, model_name, "", 0, why)
        version = version or champion_version(settings, model_name, alias)
        rows, previous = new_rows(source, snapshot, scored)
        since = f" since snapshot {previous}" if previous is not None else ""
        progress.info(f"{name}@{snapshot}: scoring {rows.num_rows} new rows{since}")
        if rows.num_rows == 0 and predictions is None:
            return _outcome(name, snapshot, model_name, version, 0)
        frame = None
        if rows.num_rows:
            values = _predict(settings, model_name, version, rows)
            frame = _prediction_rows(settings, rows, values, model_name, version, snapshot)
            if predictions is None:
                predictions = _predictions_table(settings, out, frame.schema)
        assert predictions is not None
        lineage = {
            INPUT_SNAPSHOT_PROPERTY: str(snapshot),
            MODEL_PROPERTY: f"{model_name}/{version}",
        }
        # One commit: the rows (their snapshot names its input) and the property. A
        # conflict re-reads what is scored and tries again (cnai.retrying.commit_policy).
        with predictions.transaction() as tx:
            if frame is not None:
                tx.append(frame, snapshot_properties=lineage)
            tx.set_properties({LAST_SCORED_PROPERTY: str(snapshot)})
        return _outcome(name, snapshot, model_name, version, rows.num_rows)

    def conflict(exc: BaseException) -> bool:
        return isinstance(exc, CommitFailedException)

    outcome: dict[str, Any] = commit_policy(conflict, give_up=lambda exc, _n: exc)(attempt)
    return outcome
