"""The batch-scoring pipeline, built only with the kit: WorkflowTemplate ``cnai-score``.

DAG::  ingest (new files, idempotent) -> score (the champion, rows the snapshot added)

Predictions go to ``<table>_predictions`` with the model version and the input
snapshot as lineage; re-running for a scored snapshot adds no rows (docs/authoring.md).
"""

from __future__ import annotations

from typing import Any

from cnai.argo import kit
from cnai.argo.pipeline import Pipeline, Platform

PARAMETERS = [
    {"name": "source", "value": "", "description": "Parquet/CSV file or folder to ingest "
     "first (path, file:// or s3:// URI); empty: the configured landing folder."},
    {"name": "model_name", "value": "", "description": "Registered model to score with; "
     "empty: the configured one."},
    {"name": "alias", "value": "champion", "description": "Alias of the version that scores."},
]  # fmt: skip
"""Workflow parameters, with the descriptions the Argo UI submit form shows."""


def build(platform: Platform) -> Any:
    """The Hera WorkflowTemplate ``cnai-score`` for ``platform``."""
    from hera.workflows import DAG

    with kit.pipeline_template(
        platform, "cnai-score", entrypoint="scoring", parameters=PARAMETERS, mutex="cnai-score"
    ) as template:
        ingest = kit.step_container(
            platform, "ingest", "steps.ingest:ingest", ("source",), outputs=("table", "snapshot_id")
        )
        score = kit.step_container(
            platform,
            "score",
            "steps.score:score",
            outputs=("predictions_table", "model_version", "rows_scored", "skipped"),
        )
        with DAG(name="scoring"):
            t_ingest = ingest(name="ingest", arguments=kit.workflow_args(template, "source"))
            t_ingest >> score(
                name="score",
                arguments={n: kit.output(t_ingest, n) for n in ("table", "snapshot_id")}
                | kit.workflow_args(template, "model_name", "alias"),
            )
    return template


pipeline = Pipeline(
    name="cnai-score",
    build=build,
    description="score new data with the champion into <table>_predictions",
    preload=("pyarrow", "pyiceberg.catalog.sql", "steps.ingest", "--", "mlflow"),
    source_modules=("cnai.ingest", "cnai.scoring", *kit.SOURCE_MODULES),
    code_packages=("steps", "pipelines"),
)
"""The scoring pipeline (``[tool.cnai] pipelines`` ``score``)."""
