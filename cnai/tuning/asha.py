"""ASHA early stopping (a cnai extension to Katib's ``earlyStopping``), on Ray Tune.

Katib v1beta1 defines only ``medianstop`` as an early-stopping algorithm; cnai also
accepts ``algorithmName: asha`` (asynchronous successive halving, Li et al. 2018) for
local runs. Rungs sit at ``grace_period * reduction_factor**k`` steps (below
``max_t``); a trial reaching a rung goes on only when its objective is in the top
``1/reduction_factor`` of the values recorded at that rung so far. ``cnai tune
--export-katib`` refuses such a spec, since a Katib cluster would reject it.

The halving itself is Ray Tune's :class:`~ray.tune.schedulers.AsyncHyperBandScheduler`
(one bracket); this module only adds what the tune step's trial records need: which
trials were stopped early, never counting a trial stopped at its own last step (it
did all its work, so it ends as succeeded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class AshaScheduler(AsyncHyperBandScheduler):
    """Ray Tune's ASHA with one bracket, recording the trials it stopped early.

    ``step_key`` is the 1-based step in each result (the epoch) and ``planned_key``,
    when a result has it, the trial's last step. The objective and its direction come
    from ``tune.TuneConfig`` (metric and mode), as for any Ray Tune scheduler.
    """

    def __init__(
        self,
        grace_period: int,
        reduction_factor: int,
        max_t: int,
        step_key: str = "epoch",
        planned_key: str | None = None,
    ) -> None:
        super().__init__(
            time_attr=step_key,
            max_t=max_t,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
            brackets=1,
        )
        self.step_key = step_key
        """Result key of the step number."""
        self.planned_key = planned_key
        """Result key of the trial's last step number (None: unknown)."""
        self.early_stopped: set[str] = set()
        """Ids of the trials this scheduler stopped before their last step."""

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        """Let ASHA decide; remember a STOP that cut a trial short."""
        action = str(super().on_trial_result(tune_controller, trial, result))
        if action != TrialScheduler.STOP or self.step_key not in result:
            return action
        planned = result.get(self.planned_key) if self.planned_key else None
        if planned is not None and int(result[self.step_key]) >= int(planned):
            return TrialScheduler.CONTINUE  # its last step: it ends as succeeded
        self.early_stopped.add(trial.trial_id)
        return action

    def debug_string(self) -> str:
        """One line for Ray Tune's status output."""
        return f"Using ASHA (cnai extension): {len(self.early_stopped)} trial(s) stopped."
