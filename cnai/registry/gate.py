"""The champion/challenger quality gate: when a new version takes alias ``champion``.

Both models are scored on the same rows (the candidate's held-out test split) by
the same code; the objective is test accuracy, higher is better. The candidate is
promoted when there is no champion, or when it beats the champion by more than
zero and by at least ``min_delta``. Ties keep the incumbent.
"""

from __future__ import annotations

from dataclasses import dataclass

OBJECTIVE = "test_accuracy"
"""Metric the gate compares (higher is better)."""

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
) -> Decision:
    """Compare the candidate's objective with the champion's (None: no champion yet)."""
    if min_delta < 0:
        raise ValueError(f"min_delta {min_delta}: must be >= 0")
    if champion is None:
        return Decision(True, f"no champion yet; {OBJECTIVE} {candidate:.4f}")
    who = f"champion v{champion_version}" if champion_version else "champion"
    delta = candidate - champion
    compared = f"{OBJECTIVE} {candidate:.4f} vs {who} {champion:.4f} (delta {delta:+.4f}"
    if delta > TOLERANCE and delta >= min_delta - TOLERANCE:
        return Decision(True, f"{compared} >= min_delta {min_delta:g})")
    if abs(delta) <= TOLERANCE:
        return Decision(False, f"{compared}, a tie keeps the incumbent)")
    return Decision(False, f"{compared} < min_delta {min_delta:g})")
