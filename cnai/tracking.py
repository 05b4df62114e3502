"""MLflow set-up shared by the train, tune and register steps.

The tracking and registry URIs come from the settings (SQLite under the home by
default, any MLflow server by configuration); experiments cnai creates put their
artifacts under ``settings.mlflow_artifact_root``.
"""

from __future__ import annotations

from pathlib import Path

from cnai.config import Settings

EXPERIMENT = "cnai-retrain"
"""The experiment every training run is logged to."""


def configure(settings: Settings) -> None:
    """Point the mlflow client library at the configured stores."""
    import mlflow

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(settings.mlflow_registry_uri or uri)


def ensure_experiment(settings: Settings, name: str = EXPERIMENT) -> str:
    """The id of experiment ``name``, created (race-safe) with cnai's artifact location."""
    import mlflow
    from mlflow.exceptions import MlflowException

    configure(settings)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = f"{settings.mlflow_artifact_root.rstrip('/')}/{name}"
    try:
        return str(mlflow.create_experiment(name, artifact_location=location))
    except MlflowException:
        # Another process created it between our look-up and create.
        again = mlflow.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)
