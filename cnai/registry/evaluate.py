"""Scoring a logged model on the held-out test split of an Iceberg snapshot.

The rows come from :func:`cnai.training.data.read_split` (the same stable-hash split
the train step used), so the candidate and the champion are judged on exactly the
rows the candidate never saw while training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnai.config import Settings
from cnai.errors import CnaiError, UsageError


@dataclass(frozen=True)
class TestSplit:
    """The held-out rows of one snapshot."""

    table: str
    """Iceberg table ``NS.NAME``."""
    snapshot_id: int
    """Snapshot the rows were read at."""
    features: np.ndarray
    """float32 (n, d) in the dataset's feature order."""
    labels: np.ndarray
    """int64 (n,) indices into ``DatasetSpec.classes`` (float32 targets for regression)."""

    @property
    def rows(self) -> int:
        """Number of test rows."""
        return len(self.labels)


def read_test_split(settings: Settings, table: str, snapshot_id: int) -> TestSplit:
    """The test split of ``table`` at ``snapshot_id``; CnaiError when it is empty."""
    from cnai.training.data import read_split

    features, labels = read_split(settings, "test", snapshot_id, table)
    if len(labels) == 0:
        raise CnaiError(f"table {table}: snapshot {snapshot_id} has no test rows to evaluate on")
    return TestSplit(table, snapshot_id, features, labels)


def load_model(uri: str, what: str, store: str, *, bad_input: bool = False) -> Any:
    """Load the pyfunc model at ``uri``; one error naming ``what`` and ``uri`` when it fails.

    Transient store errors are retried (:mod:`cnai.registry.retry`). A model whose files
    are missing or unreadable is UsageError when ``bad_input`` (the user named it, e.g.
    ``--run-id``), else CnaiError (the registry's own state, e.g. the champion).
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from cnai.registry import retry

    try:
        return retry.call(
            f"load {what} ({uri})", lambda: mlflow.pyfunc.load_model(uri), store=store
        )
    except (MlflowException, OSError, ValueError) as exc:
        problem = retry.first_line(exc)
        missing = "No such artifact" in problem or isinstance(exc, FileNotFoundError)
        reason = (
            "its model files are missing from the artifact store" if missing else "cannot be loaded"
        )
        kind = UsageError if bad_input else CnaiError
        raise kind(f"{what} ({uri}): {reason} ({problem})") from exc


def score(model: Any, split: TestSplit, settings: Settings) -> dict[str, float]:
    """Metrics of a loaded pyfunc model on ``split``.

    Classification: ``test_accuracy`` (predicted labels against the original labels),
    and ``test_log_loss`` when the model exposes ``predict_proba`` (cnai's
    :class:`cnai.model_io.TorchClassifier` does; its probability columns are matched
    to the labels through the model's own class list). Regression
    (``model.task: regression``): ``test_rmse`` and ``test_r2``. ``test_rows`` always.
    """
    import pandas as pd

    spec = settings.with_table(split.table).dataset
    frame = pd.DataFrame(split.features.astype(np.float64), columns=list(spec.features))
    predicted = np.asarray(model.predict(frame))
    if predicted.shape[0] != split.rows:
        raise CnaiError(
            f"model returned {predicted.shape[0]} predictions for {split.rows} test rows"
        )
    if spec.is_regression:
        return _regression_metrics(predicted, split)
    truth = np.asarray(spec.classes)[split.labels]
    try:
        matches = predicted.astype(truth.dtype) == truth
    except (TypeError, ValueError):  # e.g. a number predicted for string labels
        matches = np.asarray([str(p) == str(t) for p, t in zip(predicted, truth, strict=True)])
    metrics = {"test_accuracy": float(np.mean(matches)), "test_rows": float(split.rows)}
    inner = _unwrap(model)
    if inner is not None and hasattr(inner, "predict_proba"):
        proba = np.asarray(inner.predict_proba(frame), dtype=np.float64)
        own = list(getattr(inner, "classes", spec.classes))
        where = {value: i for i, value in enumerate(own)}
        columns = np.asarray([where.get(value, -1) for value in truth.tolist()])
        picked = np.where(columns >= 0, proba[np.arange(split.rows), np.maximum(columns, 0)], 0.0)
        metrics["test_log_loss"] = float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))
    return metrics


def _regression_metrics(predicted: np.ndarray, split: TestSplit) -> dict[str, float]:
    """``test_rmse``, ``test_r2`` (1 - SSE/SST; left out when the targets are constant), rows."""
    truth = split.labels.astype(np.float64)
    errors = predicted.astype(np.float64).reshape(-1) - truth
    sse = float(np.sum(errors * errors))
    sst = float(np.sum((truth - truth.mean()) ** 2))
    metrics = {"test_rmse": float(np.sqrt(sse / split.rows)), "test_rows": float(split.rows)}
    if sst > 0:
        metrics["test_r2"] = 1.0 - sse / sst
    return metrics


def _unwrap(model: Any) -> Any:
    try:
        return model.unwrap_python_model()
    except Exception:  # noqa: BLE001 - not a PythonModel flavour: no probabilities
        return None
