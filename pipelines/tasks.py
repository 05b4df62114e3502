"""The small Python tasks of the retrain pipeline, run by Hera's runner in the image.

Each function is a runner-script template (``python -m hera.workflows.runner -e
pipelines.tasks:NAME``): Argo hands it the template's input parameters and it
returns a Hera ``Output`` whose fields become the task's output parameters. The
heavy steps (tune, train) are RayJobs; the ``collect_*`` tasks read the summary
their entrypoint stored under the task's key and expose it as outputs.

Work avoidance: ``ingest_and_plan`` ingests, then derives the *work key* (hash of
data_version, git sha, the code version, experiment and training parameters).
The code version (:func:`code_version`) is a digest of the code the image runs,
so a changed image never reuses a memoized tune/train result or skips training,
also for runs without a git sha (data, nightly and manual runs). When the key equals
the one recorded on the table by the last successful registration, nothing
changed and ``needed`` is false, so every later task is skipped by its ``when``.
Keys are hashed into Argo's memoization key format (``^[a-zA-Z0-9][-a-zA-Z0-9]*$``)
by the authoring kit (:func:`cnai.argo.kit.work_key`), and the work key is recorded
on the table with :func:`cnai.argo.kit.record_on_table`.

Bad input (a parameter a task refuses, data ingest rejects) exits 2 with the reason as
the termination message (``exits_on_bad_input``); the retry strategies never retry it.

No ``from __future__ import annotations`` here: Hera reads the real annotations.
"""

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from hera.workflows import Output

from cnai.argo.kit import code_version as kit_code_version
from cnai.argo.kit import record_on_table, work_key
from cnai.argo.kit.record import TRAINED_KEY_PROPERTY, TRAINED_MODEL_PROPERTY
from cnai.engine.badinput import exits_on_bad_input
from cnai.errors import UsageError
from cnai.scoring import configured_model_name

TRIGGERS = ("push", "data", "schedule", "manual")
EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"

_SAFE = {
    "git_sha": re.compile(r"^[A-Za-z0-9._-]{0,80}$"),
    "git_branch": re.compile(r"^[A-Za-z0-9._/-]{0,200}$"),
    "experiment": re.compile(r"^[A-Za-z0-9._/-]{0,300}$"),
    "model_name": re.compile(r"^[A-Za-z0-9._-]{0,200}$"),
}


def code_version() -> str:
    """The code version of cnai plus the retrain Pipeline's ``code_packages``
    (:func:`cnai.argo.kit.code_version`)."""
    from pipelines.retrain import pipeline

    return kit_code_version(pipeline.code_packages)


def plan_keys(
    data_version: str,
    git_sha: str,
    experiment: str,
    workers: str,
    epochs: str,
    model_name: str,
    table: str,
) -> tuple[str, str]:
    """``(work key, tune key)`` of a run; both include :func:`code_version`."""
    code = code_version()
    fingerprint = experiment_fingerprint(experiment)
    work = work_key(
        "work", data_version, git_sha, code, fingerprint, workers, epochs, model_name, table
    )
    return work, work_key("tune", data_version, git_sha, code, fingerprint, table)


def train_key(
    data_version: str, git_sha: str, params: dict[str, Any], workers: str, table: str
) -> str:
    """The train step's memoization/result key; includes :func:`code_version`."""
    return work_key("train", data_version, git_sha, code_version(), params, workers, table)


def experiment_fingerprint(experiment: str) -> str:
    """What identifies a tune experiment: its file's content when it is a file, else its name."""
    for candidate in (
        Path(experiment),
        EXPERIMENTS_DIR / experiment,
        EXPERIMENTS_DIR / f"{experiment}.yaml",
    ):
        if experiment and candidate.is_file():
            return hashlib.sha256(candidate.read_bytes()).hexdigest()
    return experiment


def _check(name: str, value: str) -> str:
    """Values that reach a RayJob entrypoint must be shell- and YAML-safe words."""
    if not _SAFE[name].match(value):
        raise UsageError(
            f"parameter {name}={value!r}: only letters, digits and . _ / - are allowed"
        )
    return value


def _positive(name: str, value: str, allow_empty: bool = False) -> str:
    if allow_empty and value == "":
        return value
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"parameter {name}={value!r}: must be a positive integer")
    return value


class PlanOutputs(Output):
    """Outputs of ``ingest_and_plan``: the ingested snapshot and the work decision."""

    table: str = ""
    """The Iceberg table trained on."""
    snapshot_id: str = ""
    """The snapshot every later step reads (pinned for reproducibility)."""
    data_version: str = ""
    """Content hash of the table at that snapshot."""
    changed: bool = False
    """True when this run appended new data."""
    rows_added: int = 0
    """Rows this run appended."""
    needed: bool = True
    """False when data, code and parameters equal those of the last registered model."""
    work_key: str = ""
    """Hash of everything that determines the trained model."""
    tune_key: str = ""
    """Memoization/result key of the tune step."""
    git_sha: str = ""
    """Validated git sha (safe to put in a command line)."""
    git_branch: str = ""
    """Validated branch."""
    trigger: str = ""
    """Validated trigger."""
    experiment: str = ""
    """Validated experiment spec name or path."""
    workers: str = ""
    """Validated worker count."""
    epochs: str = ""
    """Validated epochs ("" = the tuned or default value)."""
    model_name: str = ""
    """The registered model name (the parameter, else the configured one)."""
    model: str = "{}"
    """JSON {name, version, promoted, run_id} of the last registration (when not needed)."""


@exits_on_bad_input
def ingest_and_plan(
    source: str = "",
    git_sha: str = "",
    git_branch: str = "",
    trigger: str = "manual",
    experiment: str = "",
    workers: str = "2",
    epochs: str = "",
    model_name: str = "",
) -> PlanOutputs:
    """Ingest new files (idempotent), then decide whether training is needed.

    ``model_name`` empty: the configured registered model name (read here, at run
    time, so the compiled template carries no model name).
    """
    if trigger not in TRIGGERS:
        raise UsageError(f"parameter trigger={trigger!r}: must be one of {', '.join(TRIGGERS)}")
    for name, value in (("git_sha", git_sha), ("git_branch", git_branch)):
        _check(name, value)
    _check("experiment", experiment)
    _check("model_name", model_name)
    _positive("workers", workers)
    _positive("epochs", epochs, allow_empty=True)

    from cnai.catalog import load_table
    from cnai.config import load_settings
    from steps.ingest import ingest

    settings = load_settings()
    model_name = model_name or configured_model_name(settings)
    summary = ingest(source or None, settings=settings)
    table = load_table(settings, summary["table"])
    key, tune_key = plan_keys(
        summary["data_version"], git_sha, experiment, workers, epochs, model_name, summary["table"]
    )
    recorded = table.properties.get(TRAINED_KEY_PROPERTY)
    needed = recorded != key
    print(
        f"work key {key}: "
        + ("training needed" if needed else "data, code and parameters unchanged; skipping"),
        flush=True,
    )
    return PlanOutputs(
        table=summary["table"],
        snapshot_id=str(summary["snapshot_id"]),
        data_version=summary["data_version"],
        changed=bool(summary["changed"]),
        rows_added=int(summary["rows_added"]),
        needed=needed,
        work_key=key,
        tune_key=tune_key,
        git_sha=git_sha,
        git_branch=git_branch,
        trigger=trigger,
        experiment=experiment,
        workers=workers,
        epochs=epochs,
        model_name=model_name,
        model="{}" if needed else table.properties.get(TRAINED_MODEL_PROPERTY, "{}"),
    )


class TuneOutputs(Output):
    """Outputs of ``collect_tune``."""

    best_params: str = "{}"
    """JSON of the chosen hyperparameters (with the workflow's epochs applied)."""
    best_params_b64: str = ""
    """The same, URL-safe base64 (what the train RayJob's command line carries)."""
    best_objective: float = 0.0
    """The best trial's objective value."""
    objective_metric: str = ""
    """The metric tune optimised."""
    parent_run_id: str = ""
    """The tune step's parent MLflow run."""
    train_key: str = ""
    """Memoization/result key of the train step."""


@exits_on_bad_input
def collect_tune(
    result_key: str,
    data_version: str,
    git_sha: str,
    workers: str,
    epochs: str,
    table: str,
) -> TuneOutputs:
    """Read the tune step's stored summary and derive the train step's key."""
    from cnai.config import load_settings
    from cnai.engine.entrypoint import encode_params
    from cnai.engine.results import load_result

    result = load_result(load_settings(), result_key)
    params = dict(result.get("best_params") or {})
    if epochs:
        params["epochs"] = int(epochs)
    return TuneOutputs(
        best_params=json.dumps(params, sort_keys=True),
        best_params_b64=encode_params(params),
        best_objective=float(result.get("best_objective") or 0.0),
        objective_metric=str(result.get("objective_metric", "")),
        parent_run_id=str(result.get("parent_run_id", "")),
        train_key=train_key(data_version, git_sha, params, workers, table),
    )


class TrainOutputs(Output):
    """Outputs of ``collect_train``."""

    run_id: str = ""
    """The MLflow run holding the trained model."""
    val_accuracy: float = 0.0
    """Final validation accuracy."""
    test_accuracy: float = 0.0
    """Test accuracy."""


@exits_on_bad_input
def collect_train(result_key: str) -> TrainOutputs:
    """Read the train step's stored summary."""
    from cnai.config import load_settings
    from cnai.engine.results import load_result

    result = load_result(load_settings(), result_key)
    return TrainOutputs(
        run_id=str(result["run_id"]),
        val_accuracy=float(result.get("val_accuracy") or 0.0),
        test_accuracy=float(result.get("test_accuracy") or 0.0),
    )


class RegisterOutputs(Output):
    """Outputs of ``register_model``."""

    model_name: str = ""
    """Registered model name."""
    version: str = ""
    """The version registered for the run."""
    promoted: bool = False
    """True when it became the champion."""
    champion_version: str = ""
    """The champion after the gate."""
    reason: str = ""
    """Why the gate decided as it did."""


@exits_on_bad_input
def register_model(
    run_id: str, model_name: str, work_key: str, table: str, workflow_name: str = ""
) -> RegisterOutputs:
    """Register the run's model (idempotent per run), record the work key on the table, and
    (in a cluster) point the champion's InferenceService at the champion if it changed."""
    from cnai.config import load_settings
    from steps.register import register

    settings = load_settings()
    result = register(run_id, model_name, settings=settings)
    model = {
        "name": result["model_name"],
        "version": str(result["version"]),
        "promoted": bool(result["promoted"]),
        "run_id": run_id,
        "workflow": workflow_name,
    }
    record_on_table(
        settings,
        table,
        {
            TRAINED_KEY_PROPERTY: work_key,
            TRAINED_MODEL_PROPERTY: json.dumps(model, sort_keys=True),
        },
    )
    _follow_champion(str(result["model_name"]), result.get("champion_version"))
    return RegisterOutputs(
        model_name=str(result["model_name"]),
        version=str(result["version"]),
        promoted=bool(result["promoted"]),
        champion_version=str(result.get("champion_version") or ""),
        reason=str(result.get("reason", "")),
    )


def _follow_champion(model_name: str, champion_version: Any) -> None:
    """In a cluster, patch the model's KServe InferenceService if the champion changed."""
    from cnai.serving.kserve import sync_inference_service

    outcome = sync_inference_service(model_name, champion_version)
    # A log line (stderr): stdout is the task's Argo `result`.
    print(json.dumps({"serving": outcome}), file=sys.stderr, flush=True)


@exits_on_bad_input
def record_outcome(
    workflow_name: str,
    status: str,
    failures: str = "[]",
    duration: str = "",
    git_sha: str = "",
    git_branch: str = "",
    trigger: str = "",
) -> None:
    """Exit handler: print the outcome; record it as an MLflow run in ``cnai-pipeline``.

    Every outcome is printed (the node's log and result). Failed runs and runs that
    registered a model are also recorded in MLflow; a succeeded run that changed
    nothing (data, code and parameters unchanged) is not, so a no-change run stays
    cheap (it never imports MLflow).
    """
    try:
        failed = json.loads(failures or "[]") or []
    except ValueError:
        failed = [failures]
    outcome = {
        "workflow": workflow_name,
        "status": status,
        "failed_tasks": [f.get("displayName") for f in failed if isinstance(f, dict)],
        "duration_seconds": duration,
        "git_sha": git_sha,
        "git_branch": git_branch,
        "trigger": trigger,
    }
    print(json.dumps(outcome), flush=True)
    from cnai.config import load_settings

    settings = load_settings()
    if status == "Succeeded" and not _registered_by(settings, workflow_name):
        return
    from mlflow import MlflowClient

    from cnai.engine.results import RESULTS_EXPERIMENT
    from cnai.tracking import ensure_experiment

    experiment = ensure_experiment(settings, RESULTS_EXPERIMENT)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
    tags = {f"cnai.{k}": str(v) for k, v in outcome.items() if k != "failed_tasks"}
    tags["cnai.failed_tasks"] = ",".join(str(t) for t in outcome["failed_tasks"])
    run = client.create_run(experiment, run_name=f"outcome-{workflow_name}", tags=tags)
    client.set_terminated(run.info.run_id, "FINISHED" if status == "Succeeded" else "FAILED")


def _registered_by(settings: Any, workflow_name: str) -> bool:
    """True when the last registration recorded on the table was made by this workflow."""
    from cnai.catalog import load_table
    from cnai.errors import CnaiError

    try:
        table = load_table(settings)
    except CnaiError:
        return False
    recorded = json.loads(table.properties.get(TRAINED_MODEL_PROPERTY, "{}") or "{}")
    return bool(recorded.get("workflow") == workflow_name)
