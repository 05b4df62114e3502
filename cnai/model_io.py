"""How a trained model is stored in MLflow and loaded back.

The contract every step relies on: a training run logs its model under the artifact
name ``model`` as an MLflow pyfunc whose ``predict`` takes a pandas DataFrame (or a
2-D array) holding the dataset's feature columns and returns one original class
label per row (values from ``DatasetSpec.classes``, declared or inferred: integers or
strings), or for ``model.task: regression`` one number per row. ``predict_proba`` on
the unwrapped classifier gives per-class probabilities. The class list and the task
are also in the model's MLflow metadata (``metadata: {task, classes}``) and in the
run artifact ``classes.json``. Load it anywhere with
``mlflow.pyfunc.load_model("runs:/<id>/model")`` or ``models:/<name>@champion``.

The model's classes are pickled by reference, so the code that defines them must be
importable where the model is loaded. Classes from installed distributions (torch,
cnai) are, through ``pip_requirements``; a project's own model code (the factory's
module, e.g. ``steps.models``) is not, so its top-level packages travel with the
model as MLflow ``code_paths`` (:func:`project_code_paths`), and the model loads in
a process that has never seen the project (``mlflow models serve``, another team's
scorer).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cnai.config import DatasetSpec

if TYPE_CHECKING:
    import torch
    from mlflow.models.model import ModelInfo

MODEL_ARTIFACT = "model"
CLASSES_ARTIFACT = "classes.json"
"""Run artifact ``{"task", "classes"}``: the class list the model's outputs index."""


def _features_array(model_input: Any, features: tuple[str, ...]) -> np.ndarray:
    if hasattr(model_input, "columns"):
        return np.asarray(model_input[list(features)], dtype=np.float32)
    return np.asarray(model_input, dtype=np.float32).reshape(-1, len(features))


def _classifier_base() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class TorchClassifier(_classifier_base()):  # type: ignore[misc]
    """A torch module plus what it needs to read rows of the table and name classes."""

    def __init__(
        self,
        module: torch.nn.Module,
        features: tuple[str, ...],
        classes: tuple[int | str, ...],
        feature_shape: tuple[int, ...],
    ) -> None:
        self.module = module.cpu().eval()
        self.features = tuple(features)
        self.classes = tuple(classes)
        self.feature_shape = tuple(feature_shape)

    def predict_proba(self, model_input: Any) -> np.ndarray:
        """Class probabilities, one row per input row, columns in ``classes`` order."""
        import torch

        x = torch.from_numpy(_features_array(model_input, self.features))
        with torch.no_grad():
            logits = self.module(x.reshape(-1, *self.feature_shape))
        return torch.softmax(logits, dim=1).numpy()

    # pd.DataFrame is a hint MLflow accepts without schema inference (the signature
    # logged with the model does the validation); other hints make it warn.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """One class label per row."""
        index = self.predict_proba(model_input).argmax(axis=1)
        return np.asarray(self.classes)[index]


class TorchRegressor(_classifier_base()):  # type: ignore[misc]
    """A torch module returning one number per row (``model.task: regression``)."""

    def __init__(
        self, module: torch.nn.Module, features: tuple[str, ...], feature_shape: tuple[int, ...]
    ) -> None:
        self.module = module.cpu().eval()
        self.features = tuple(features)
        self.feature_shape = tuple(feature_shape)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """One predicted value (float64) per row."""
        import torch

        x = torch.from_numpy(_features_array(model_input, self.features))
        with torch.no_grad():
            out = self.module(x.reshape(-1, *self.feature_shape))
        return out.reshape(-1).numpy().astype(np.float64)


def pip_requirements() -> list[str]:
    """Exact requirements of the logged model (given, so MLflow need not infer them)."""
    import mlflow
    import pandas
    import torch

    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pandas.__version__}",
    ]


def project_code_paths(module: torch.nn.Module) -> list[str]:
    """Folders (packages) or files (modules) of the project code ``module`` is made of.

    Every class in the module tree is looked at; its top-level module is shipped
    unless it is part of Python itself or of an installed distribution (those are
    importable wherever the model's requirements are installed). Sorted, no repeats.
    """
    from importlib.metadata import packages_distributions

    installed = packages_distributions()
    paths: set[str] = set()
    for cls in {type(part) for part in module.modules()}:
        top = cls.__module__.partition(".")[0]
        if top == "__main__":
            continue  # cloudpickle stores classes of the running script by value
        if top in installed or top in sys.stdlib_module_names or top in sys.builtin_module_names:
            continue
        root = sys.modules.get(top)
        if root is None:
            continue
        locations = list(getattr(root, "__path__", []))  # a package: its folder(s)
        if not locations and getattr(root, "__file__", None):
            locations = [str(root.__file__)]  # a plain module: its file
        paths.update(str(Path(location).resolve()) for location in locations)
    return sorted(paths)


def log_model(module: torch.nn.Module, spec: DatasetSpec, example: np.ndarray) -> ModelInfo:
    """Log ``module`` to the active MLflow run as the ``model`` artifact.

    A classifier (``spec.classes`` resolved: declared or inferred) or a regressor
    (``spec.is_regression``). ``example`` is a few rows of features (2-D, feature
    order) used for the input example and the signature. The task and the class list
    go into the model's metadata and into the run artifact ``classes.json``; the
    project code the module is made of goes with it (:func:`project_code_paths`).
    """
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    wrapper: Any
    if spec.is_regression:
        wrapper = TorchRegressor(module, spec.features, spec.input_shape)
    else:
        wrapper = TorchClassifier(module, spec.features, spec.classes, spec.input_shape)
    frame = pd.DataFrame(np.asarray(example, dtype=np.float64), columns=list(spec.features))
    signature = infer_signature(frame, wrapper.predict(None, frame))
    metadata = {"task": spec.task, "classes": [_plain(c) for c in spec.classes]}
    mlflow.log_dict(metadata, CLASSES_ARTIFACT)
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=wrapper,
        signature=signature,
        input_example=frame,
        pip_requirements=pip_requirements(),
        metadata=metadata,
        code_paths=project_code_paths(module) or None,
    )


log_classifier = log_model
"""Former name of :func:`log_model`."""


def _plain(value: Any) -> int | str:
    """A class label as JSON has it (numpy integers become ints)."""
    return value if isinstance(value, str) else int(value)
