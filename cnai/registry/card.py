"""The model card: a Markdown summary logged with every registered version.

It is stored as an artifact of the version's training run at
``model_card/<model name>-v<version>.md`` (the version tag ``cnai.model_card`` holds
that path), so the run page in MLflow shows it next to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnai.registry.gate import Decision
from cnai.registry.lineage import Lineage

CARD_DIR = "model_card"


def card_path(model_name: str, version: str) -> str:
    """Artifact path of a version's card inside its run."""
    return f"{CARD_DIR}/{model_name}-v{version}.md"


@dataclass(frozen=True)
class CardInput:
    """Everything the card shows."""

    model_name: str
    """Registered model name."""
    version: str
    """Registered version."""
    lineage: Lineage
    """Data and code the model came from."""
    metrics: dict[str, float]
    """Metrics on the held-out test split (register step's evaluation)."""
    run_metrics: dict[str, float]
    """Metrics the training run logged (final values)."""
    params: dict[str, str]
    """The training run's parameters (hyperparameters)."""
    decision: Decision
    """The gate's verdict."""
    champion_version: str | None
    """Version holding ``champion`` after the decision."""
    classes: tuple[Any, ...] = field(default_factory=tuple)
    """Class labels the model predicts."""
    features: int = 0
    """Number of feature columns."""
    task: str = "classification"
    """``model.task``: what the model predicts (a class label or a number)."""
    objective: str = "test_accuracy"
    """The metric the gate compared."""


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    lines = ["| field | value |", "|---|---|"]
    lines += [f"| {key} | {str(value).replace('|', '/')} |" for key, value in rows]
    return lines


def render(card: CardInput) -> str:
    """The card as Markdown."""
    lin = card.lineage
    lines = [
        f"# Model card: {card.model_name} v{card.version}",
        "",
        "## Data lineage",
        "",
        *_table(
            [
                ("Iceberg table", lin.table),
                ("snapshot id", lin.snapshot_id),
                ("data_version", lin.data_version),
                ("git sha", lin.git_sha or "not recorded"),
                ("git branch", lin.git_branch or "not recorded"),
                ("trigger", lin.trigger or "not recorded"),
                ("MLflow run", lin.run_id),
                ("MLflow logged model", lin.model_id or "run artifact `model`"),
                ("Argo workflow", f"{lin.argo_workflow_name} ({lin.argo_workflow_uid})")
                if lin.argo_workflow_name
                else ("Argo workflow", "not run under Argo"),
            ]
        ),
        "",
        f"Reproduce the evaluation rows: read table `{lin.table}` at snapshot "
        f"`{lin.snapshot_id}` and keep the rows `cnai.splits.assign_splits` puts in the "
        "test split (`cnai.training.data.read_split(settings, 'test', "
        f"{lin.snapshot_id}, '{lin.table}')`).",
        "",
        "## Metrics (held-out test split of that snapshot)",
        "",
        *_table([(k, f"{v:.4f}" if k != "test_rows" else int(v)) for k, v in card.metrics.items()]),
        "",
    ]
    if card.run_metrics:
        lines += [
            "Metrics logged by the training run:",
            "",
            *_table([(k, f"{v:.4f}") for k, v in sorted(card.run_metrics.items())]),
            "",
        ]
    lines += [
        "## Quality gate",
        "",
        f"- promoted to champion: {'yes' if card.decision.promoted else 'no'}",
        f"- reason: {card.decision.reason}",
        f"- champion after the decision: v{card.champion_version}"
        if card.champion_version
        else "- champion after the decision: none",
        "",
        "## Parameters",
        "",
        *(_table(sorted(card.params.items())) if card.params else ["(none logged)"]),
        "",
        "## Intended use",
        "",
        (
            f"Predicting the numeric target of rows of `{lin.table}` ({card.features} numeric "
            "feature columns) (regression). Load it with "
            if card.task == "regression"
            else f"Classifying rows of `{lin.table}` ({card.features} numeric feature columns) "
            f"into one of the classes {list(card.classes)}. Load it with "
        )
        + f'`mlflow.pyfunc.load_model("models:/{card.model_name}/{card.version}")` and call '
        "`predict` on a DataFrame of the feature columns; it returns one "
        + ("value" if card.task == "regression" else "class label")
        + " per row.",
        "",
        "## Limitations",
        "",
        "- Evaluated only on the held-out split of the snapshot above; accuracy on data "
        "drawn from another distribution (other writers, scanners, preprocessing) is unknown.",
        f"- The gate compares one metric ({card.objective}) on one split; it does not check "
        "calibration, per-class accuracy, latency or fairness across groups.",
        "- Inputs must have the training feature scale and column order; no input "
        "validation beyond the logged signature is done.",
        "",
    ]
    return "\n".join(lines)
