"""The champion/challenger quality gate: when a new version takes alias ``champion``.

Both models are scored on the same rows (the candidate's held-out test split) by
the same code; the objective is test accuracy (higher is better) for classification
and test RMSE (lower is better) for ``model.task: regression``. The candidate is
promoted when there is no champion, or when it improves on the champion by more than
zero and by at least ``min_delta`` (in the objective's units). Ties keep the incumbent.
"""

from __future__ import annotations

from dataclasses import dataclass

OBJECTIVE = "test_accuracy"
"""Metric the gate compares for classification (higher is better)."""
REGRESSION_OBJECTIVE = "test_rmse"
"""Metric the gate compares for regression (lower is better)."""


@dataclass(frozen=True)
class Objective:
    """The metric the gate compares and its direction."""

    metric: str = OBJECTIVE
    """Metric name, as :func:`cnai.registry.evaluate.score` returns it."""
    higher_is_better: bool = True
    """True for accuracy; False for an error such as RMSE."""


ACCURACY = Objective(OBJECTIVE, True)
"""Classification's objective."""
RMSE = Objective(REGRESSION_OBJECTIVE, False)
"""Regression's objective."""


def objective_for(task: str) -> Objective:
    """The gate's objective for ``model.task``."""
    return RMSE if task == "regression" else ACCURACY


TOLERANCE = 1e-12
"""Float noise ignored when comparing (accuracies are ratios of row counts)."""


@dataclass(frozen=True)
class Decision:
    """The gate's verdict for one candidate."""

    promoted: bool
    """True when the candidate becomes champion."""
    reason: str
    """One sentence explaining the verdict, with the numbers compared."""


def decide(
    candidate: float,
    champion: float | None,
    min_delta: float = 0.0,
    champion_version: str | None = None,
    objective: Objective = ACCURACY,
) -> Decision:
    """Compare the candidate's objective with the champion's (None: no champion yet).

    ``delta`` is the candidate's value minus the champion's; the improvement is
    ``delta`` when higher is better, ``-delta`` when lower is better.
    """
    if min_delta < 0:
        raise ValueError(f"min_delta {min_delta}: must be >= 0")
    name = objective.metric
    if champion is None:
        return Decision(True, f"no champion yet; {name} {candidate:.4f}")
    who = f"champion v{champion_version}" if champion_version else "champion"
    delta = candidate - champion
    gain = delta if objective.higher_is_better else -delta
    direction = "" if objective.higher_is_better else f", lower is better: gain {gain:+.4f}"
    compared = f"{name} {candidate:.4f} vs {who} {champion:.4f} (delta {delta:+.4f}{direction}"
    if gain > TOLERANCE and gain >= min_delta - TOLERANCE:
        return Decision(True, f"{compared} >= min_delta {min_delta:g})")
    if abs(gain) <= TOLERANCE:
        return Decision(False, f"{compared}, a tie keeps the incumbent)")
    return Decision(False, f"{compared} < min_delta {min_delta:g})")
