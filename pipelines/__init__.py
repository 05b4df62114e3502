"""The reference project's pipelines (Hera, built with :mod:`cnai.argo.kit`) and
Katib-style experiment specs.

``[tool.cnai] pipelines`` in pyproject.toml names each as ``module:object``;
:data:`PIPELINES` holds the same objects by short name.
"""

from cnai.argo.pipeline import Pipeline
from pipelines.retrain import pipeline as _retrain
from pipelines.score import pipeline as _score

PIPELINES: dict[str, Pipeline] = {"retrain": _retrain, "score": _score}
"""Short name -> Pipeline (``retrain``: cnai-retrain, ``score``: cnai-score)."""

__all__ = ["PIPELINES"]
