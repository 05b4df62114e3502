"""One registered model version, loaded and warmed up for serving.

Requests are validated against the version's MLflow signature by
:mod:`cnai.serving.inputs` before they reach the model, so the model is called on a
ready float32 matrix: cnai's own :class:`cnai.model_io.TorchClassifier` directly
(no DataFrame round trip), any other pyfunc through ``predict`` on a DataFrame with
the signature's columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnai.serving.inputs import InputSpec

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A loaded version: what requests are checked against and what answers them."""

    name: str
    """Registered model name."""
    version: str
    """Registered version number."""
    spec: InputSpec
    """Feature columns from the version's signature."""
    predict: Predict
    """Rows (float32, ``(n, width)``) -> one prediction per row."""

    def output_datatype(self, predictions: np.ndarray) -> str:
        """The v2 datatype of ``predictions``."""
        if predictions.dtype.kind in "iu":
            return "INT64"
        if predictions.dtype.kind == "f":
            return "FP64"
        if predictions.dtype.kind == "b":
            return "BOOL"
        return "BYTES"


def _predictor(pyfunc_model: Any, spec: InputSpec) -> Predict:
    from cnai.model_io import TorchClassifier, TorchRegressor

    try:
        inner = pyfunc_model.unwrap_python_model()
    except Exception:  # noqa: BLE001 - not a PythonModel flavour
        inner = None
    if isinstance(inner, (TorchClassifier, TorchRegressor)) and tuple(inner.features) == (
        spec.features
    ):
        classifier = inner

        def direct(rows: np.ndarray) -> np.ndarray:
            return np.asarray(classifier.predict(None, rows))  # type: ignore[arg-type]

        return direct

    import pandas as pd

    columns = list(spec.features)

    def generic(rows: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(rows.astype(np.float64), columns=columns)
        return np.asarray(pyfunc_model.predict(frame))

    return generic


def load_version(name: str, version: str) -> ServedModel:
    """Load ``models:/name/version`` and check it answers one row.

    Raises ValueError when its signature cannot be served, and whatever MLflow raises
    when it cannot be loaded.
    """
    import mlflow.pyfunc

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Tt]ype hint", category=UserWarning)
        pyfunc_model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    spec = InputSpec.from_signature(pyfunc_model.metadata.signature)
    served = ServedModel(name, str(version), spec, _predictor(pyfunc_model, spec))
    answer = served.predict(np.zeros((1, spec.width), dtype=np.float32))
    if len(answer) != 1:
        raise ValueError(f"{name} v{version}: returned {len(answer)} predictions for one row")
    return served
