"""Step results keyed by a pipeline key, kept in MLflow.

A RayJob's entrypoint cannot hand output parameters to Argo, so it stores its
step's summary here under the task's key (the same key its template memoizes on)
and a small script task downstream reads it back and exposes the values as
output parameters. Results live in experiment ``cnai-pipeline`` as one run per
stored result, tagged ``cnai.result_key``; the newest run for a key wins.
"""

from __future__ import annotations

import json
from typing import Any

from cnai.config import Settings
from cnai.errors import CnaiError

RESULTS_EXPERIMENT = "cnai-pipeline"
KEY_TAG = "cnai.result_key"
RESULT_TAG = "cnai.result"
MAX_TAG_CHARS = 5000


def save_result(settings: Settings, key: str, result: dict[str, Any]) -> str:
    """Store ``result`` under ``key``; returns the MLflow run id holding it."""
    from mlflow import MlflowClient

    from cnai.tracking import ensure_experiment

    experiment = ensure_experiment(settings, RESULTS_EXPERIMENT)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
    text = json.dumps(result, sort_keys=True, default=str)
    run = client.create_run(experiment, run_name=f"result-{key}", tags={KEY_TAG: key})
    if len(text) <= MAX_TAG_CHARS:
        client.set_tag(run.info.run_id, RESULT_TAG, text)
    else:
        client.log_text(run.info.run_id, text, "result.json")
    client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


def load_result(settings: Settings, key: str) -> dict[str, Any]:
    """The newest result stored under ``key``; CnaiError when there is none."""
    from mlflow import MlflowClient

    from cnai.tracking import configure

    configure(settings)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
    experiment = client.get_experiment_by_name(RESULTS_EXPERIMENT)
    runs = (
        client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment is not None
        else []
    )
    if not runs:
        raise CnaiError(
            f"result {key}: not found in MLflow experiment {RESULTS_EXPERIMENT} "
            "(was the memoization cache kept while MLflow was reset? clear it and rerun)"
        )
    run = runs[0]
    text = run.data.tags.get(RESULT_TAG)
    if text is None:
        import mlflow

        text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/result.json")
    return dict(json.loads(text))
