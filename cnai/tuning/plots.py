"""Figures of a finished experiment (matplotlib, no display needed).

- :func:`objective_per_trial`: each trial's objective, coloured by how it ended,
  with the best-so-far line and the goal;
- :func:`parallel_coordinates`: one axis per searched hyperparameter plus the
  objective, one line per trial coloured by its objective;
- :func:`learning_curves`: the objective metric per epoch of every trial, showing
  where medianstop cut trials short.

Figures are built with ``matplotlib.figure.Figure`` directly (Agg canvas), never
through pyplot, so no GUI backend or global state is involved.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cnai.tuning.runner import TrialRecord
    from cnai.tuning.spec import Experiment

STATUS_COLORS = {
    "succeeded": "#2a9d8f",
    "early_stopped": "#e9c46a",
    "failed": "#e76f51",
    "killed": "#8d99ae",
}


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def objective_per_trial(experiment: Experiment, trials: list[TrialRecord]) -> Figure:
    """Scatter of objective by trial number, best-so-far line and goal line."""
    objective = experiment.objective
    figure = _figure()
    ax = figure.add_subplot()
    measured = [t for t in trials if t.objective is not None]
    for status, color in STATUS_COLORS.items():
        points = [t for t in measured if t.status == status]
        if points:
            ax.scatter(
                [t.number for t in points],
                [float(t.objective or 0.0) for t in points],
                color=color,
                label=f"{status.replace('_', ' ')} ({len(points)})",
                zorder=3,
                edgecolors="black",
                linewidths=0.5,
            )
    failed = [t for t in trials if t.objective is None]
    if failed and measured:
        low = min(t.objective for t in measured if t.objective is not None)
        ax.scatter(
            [t.number for t in failed],
            [low] * len(failed),
            marker="x",
            color=STATUS_COLORS["failed"],
            label=f"no objective ({len(failed)})",
        )
    best: list[tuple[int, float]] = []
    current: float | None = None
    for t in sorted(measured, key=lambda r: r.number):
        counts = t.status in ("succeeded", "early_stopped") and t.objective is not None
        if counts and (current is None or objective.better(t.objective or 0.0, current)):
            current = t.objective
        if current is not None:
            best.append((t.number, current))
    if best:
        ax.step(
            *zip(*best, strict=True), where="post", color="black", alpha=0.6, label="best so far"
        )
    if objective.goal is not None:
        ax.axhline(objective.goal, color="#264653", linestyle="--", label=f"goal {objective.goal}")
    ax.set_xlabel("trial (start order)")
    ax.set_ylabel(f"{objective.metric} ({objective.type})")
    ax.set_title(f"{experiment.name}: objective per trial ({experiment.algorithm.name})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return figure


def _axis_position(values: list[Any], log: bool) -> tuple[list[float], list[str]]:
    """Values mapped to [0, 1] on one axis, and the tick labels at 0 and 1 (or categories)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        numbers = [math.log10(v) if log and v > 0 else float(v) for v in values]
        low, high = min(numbers), max(numbers)
        span = high - low or 1.0
        labels = [f"{min(values):.3g}", f"{max(values):.3g}"]
        return [(n - low) / span for n in numbers], labels
    categories = sorted({str(v) for v in values})
    scale = max(len(categories) - 1, 1)
    return [categories.index(str(v)) / scale for v in values], categories


def parallel_coordinates(experiment: Experiment, trials: list[TrialRecord]) -> Figure:
    """One vertical axis per hyperparameter plus the objective; one line per trial."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    measured = [t for t in trials if t.objective is not None and t.params]
    # A dimension every trial shares (e.g. a fixed epochs) tells nothing: leave it out.
    parameters = [
        p
        for p in experiment.parameters
        if len({repr(t.params.get(p.target)) for t in measured}) > 1
    ]
    names = [p.target for p in parameters] + [experiment.objective.metric]
    figure = _figure(max(6.0, 1.6 * len(names) + 2), 4.5)
    ax = figure.add_subplot()
    if not measured:
        ax.text(0.5, 0.5, "no trial reported an objective", ha="center", va="center")
        ax.set_axis_off()
        return figure
    columns: list[list[float]] = []
    labels: list[list[str]] = []
    for parameter in parameters:
        values = [t.params.get(parameter.target) for t in measured]
        positions, ticks = _axis_position(values, parameter.distribution == "logUniform")
        columns.append(positions)
        labels.append(ticks)
    scores = [float(t.objective) for t in measured if t.objective is not None]
    positions, ticks = _axis_position(scores, False)
    columns.append(positions)
    labels.append(ticks)
    norm = Normalize(min(scores), max(scores) if max(scores) > min(scores) else min(scores) + 1)
    cmap = colormaps["viridis" if experiment.objective.type == "maximize" else "viridis_r"]
    xs = list(range(len(names)))
    for row, trial in enumerate(measured):
        style = "--" if trial.status == "early_stopped" else "-"
        ax.plot(
            xs,
            [column[row] for column in columns],
            style,
            color=cmap(norm(scores[row])),
            alpha=0.8,
            linewidth=1.5,
        )
    for x, ticks_here in zip(xs, labels, strict=True):
        ax.axvline(x, color="black", linewidth=0.8)
        if len(ticks_here) == 2 and ticks_here[0] != ticks_here[1]:
            ax.text(x, -0.06, ticks_here[0], ha="center", va="top", fontsize="small")
            ax.text(x, 1.04, ticks_here[1], ha="center", va="bottom", fontsize="small")
        else:
            scale = max(len(ticks_here) - 1, 1)
            for k, tick in enumerate(ticks_here):
                ax.text(x + 0.03, k / scale, tick, ha="left", va="center", fontsize="small")
    ax.set_xticks(xs, names)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    ax.set_xlim(-0.3, len(names) - 0.7)
    ax.set_title(f"{experiment.name}: hyperparameters vs {experiment.objective.metric}")
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=experiment.objective.metric)
    return figure


def learning_curves(experiment: Experiment, trials: list[TrialRecord]) -> Figure:
    """The objective metric per epoch of every trial (dashed: early-stopped)."""
    metric = experiment.objective.metric
    figure = _figure()
    ax = figure.add_subplot()
    for trial in trials:
        values = trial.history.get(metric) or []
        if not values:
            continue
        ax.plot(
            range(1, len(values) + 1),
            values,
            "--" if trial.status == "early_stopped" else "-",
            color=STATUS_COLORS.get(trial.status, "black"),
            marker="o",
            markersize=3,
            alpha=0.8,
        )
    early = experiment.early_stopping
    if early is not None and early.algorithm == "medianstop":
        ax.axvline(
            early.start_step,
            color="black",
            linestyle=":",
            label=f"medianstop start_step {early.start_step}",
        )
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{experiment.name}: {metric} per epoch (dashed: early-stopped)")
    ax.grid(alpha=0.3)
    return figure
