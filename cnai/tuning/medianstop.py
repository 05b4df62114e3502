"""Katib's ``medianstop`` early-stopping rule, as a Ray Tune trial scheduler.

The rule (Katib's documented median stopping rule, after Google Vizier): a running
trial is stopped at step ``s`` when its objective value reported at ``s`` is
strictly worse than the median, over the *completed* trials, of each completed
trial's running average of the objective over steps ``1..s`` — once at least
``min_trials_required`` trials completed and ``s >= start_step``.

- steps are the trial's reports, 1-based (one per epoch here);
- "completed" means succeeded: trials that were early-stopped, failed or killed do
  not enter the median (as in Katib, which reads only succeeded trials' logs);
- a completed trial with fewer than ``s`` steps contributes its average over all
  its steps;
- a trial is never stopped at its own last step: it has done all its work by then,
  so it ends as succeeded and joins the median.

How Ray Tune's own ``MedianStoppingRule`` differs, and why it is not used: it
compares the trial's *best* value so far (not its value at ``s``); its median is
over every trial that reached ``s``, running ones included, not completed ones
only; its running averages start at ``grace_period`` rather than step 1; it may
*pause* trials instead of stopping them; and it counts ``min_samples_required``
among those trials rather than completed ones.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class MedianStopRule:
    """The rule's bookkeeping, independent of any scheduler (easy to test exactly)."""

    def __init__(self, min_trials_required: int, start_step: int, mode: str) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode {mode!r}: expected max or min")
        self.min_trials_required = min_trials_required
        """Completed trials needed before the rule applies."""
        self.start_step = start_step
        """First step at which a trial may be stopped."""
        self.mode = mode
        """``max``: higher objective is better; ``min``: lower is better."""
        self.completed: dict[str, list[float]] = {}
        """Objective per step of every completed (succeeded) trial."""

    def complete(self, trial_id: str, values: list[float]) -> None:
        """Record a trial that ran to completion, with its objective at each step."""
        if values:
            self.completed[trial_id] = list(values)

    def median_at(self, step: int) -> float | None:
        """Median of the completed trials' running averages at ``step``, or None if too few."""
        if len(self.completed) < self.min_trials_required:
            return None
        averages = [statistics.fmean(v[:step]) for v in self.completed.values()]
        return statistics.median(averages)

    def should_stop(self, step: int, value: float) -> bool:
        """True when a trial reporting ``value`` at ``step`` must stop."""
        if step < self.start_step:
            return False
        median = self.median_at(step)
        if median is None:
            return False
        return value < median if self.mode == "max" else value > median


class MedianStopScheduler(FIFOScheduler):
    """Ray Tune scheduler applying :class:`MedianStopRule` to every reported result.

    ``metric`` is the per-step objective in each result, ``step_key`` the step
    (1-based epoch) and ``planned_key``, when a result has it, the trial's last step.
    Trials it stopped are listed in :attr:`early_stopped`.
    """

    def __init__(
        self,
        rule: MedianStopRule,
        metric: str,
        step_key: str = "epoch",
        planned_key: str | None = None,
    ) -> None:
        super().__init__()
        self.rule = rule
        """The rule's state."""
        self.objective_key = metric
        """Result key of the objective at this step."""
        self.step_key = step_key
        """Result key of the step number."""
        self.planned_key = planned_key
        """Result key of the trial's last step number (None: unknown)."""
        self.history: dict[str, list[float]] = {}
        """Objective per step of every trial seen."""
        self.early_stopped: set[str] = set()
        """Ids of the trials this scheduler stopped."""

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        """Record the result; STOP the trial when the rule says so."""
        if self.objective_key not in result or self.step_key not in result:
            return TrialScheduler.CONTINUE
        value = float(result[self.objective_key])
        self.history.setdefault(trial.trial_id, []).append(value)
        step = int(result[self.step_key])
        planned = result.get(self.planned_key) if self.planned_key else None
        if planned is not None and step >= int(planned):
            return TrialScheduler.CONTINUE  # its last step: nothing left to save
        if self.rule.should_stop(step, value):
            self.early_stopped.add(trial.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        """A trial ended normally (or was stopped by us): succeeded ones join the median."""
        if trial.trial_id not in self.early_stopped:
            self.rule.complete(trial.trial_id, self.history.get(trial.trial_id, []))

    def debug_string(self) -> str:
        """One line for Ray Tune's status output."""
        return f"Using Katib medianstop: {len(self.early_stopped)} trial(s) stopped."
