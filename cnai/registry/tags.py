"""Model-version tags the register step writes besides lineage (cnai.registry.lineage)."""

from __future__ import annotations

import contextlib

from cnai.registry.gate import OBJECTIVE

STATUS_TAG = "cnai.registration"
"""``pending`` from creation until the alias decision is applied, then ``complete``."""
TOKEN_TAG = "cnai.registration.token"
"""Unique per create call; finds a version whose creation response was lost."""
PROMOTED_TAG = "cnai.gate.promoted"
"""``true`` when the gate made this version champion."""
REASON_TAG = "cnai.gate.reason"
"""The gate's one-sentence reason."""
INCUMBENT_TAG = "cnai.gate.incumbent_version"
"""The champion the version was compared with (absent when there was none)."""
MIN_DELTA_TAG = "cnai.gate.min_delta"
"""The min_delta the gate used."""
OBJECTIVE_TAG = "cnai.gate.objective"
"""The metric the gate compared."""
METRIC_PREFIX = "cnai.metric."
"""Prefix of the evaluation metrics (``cnai.metric.test_accuracy``, ...)."""
CHAMPION_METRIC = "champion_" + OBJECTIVE
"""Metric name of the incumbent champion's objective on the same rows (classification;
for regression ``champion_test_rmse``)."""
CARD_TAG = "cnai.model_card"
"""Artifact path of the model card inside the version's run."""


def metrics_from_tags(tags: dict[str, str]) -> dict[str, float]:
    """The evaluation metrics recorded on a version (``cnai.metric.*`` tags)."""
    out: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith(METRIC_PREFIX):
            with contextlib.suppress(ValueError):
                out[key[len(METRIC_PREFIX) :]] = float(value)
    return dict(sorted(out.items()))
