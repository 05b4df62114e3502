"""The cnai-only ``asha`` early-stopping option: spec, scheduler decisions, export.

No Ray cluster here (the scheduler is driven directly with results); the benchmark
``benchmarks/tune_early_stopping.py --scheduler asha`` runs it end to end.
"""

from __future__ import annotations

from typing import Any

import pytest
from ray.tune.schedulers import TrialScheduler

from cnai.errors import UsageError
from cnai.training.hparams import hyperparameters, types_of
from cnai.tuning import katib
from cnai.tuning.asha import AshaScheduler
from cnai.tuning.spec import EarlyStopping, parse_experiment
from tests.test_tune_spec import base_spec

HYPERPARAMETERS = types_of(hyperparameters(factory="steps.models:digits_cnn"))
"""The reference project's hyperparameters (its Katib spec searches the CNN's ``channels``;
the library's default factory has none)."""


def parse(data: dict[str, Any]) -> Any:
    return parse_experiment(data, HYPERPARAMETERS, source="exp.yaml")


def asha_spec(*settings: tuple[str, str]) -> dict[str, Any]:
    return base_spec(
        earlyStopping={
            "algorithmName": "asha",
            "algorithmSettings": [{"name": k, "value": v} for k, v in settings],
        }
    )


def test_asha_spec_parses_with_defaults_and_settings() -> None:
    default = parse(asha_spec()).early_stopping
    assert default == EarlyStopping(algorithm="asha", grace_period=1, reduction_factor=3, max_t=100)
    tuned = parse(asha_spec(("grace_period", "2"), ("reduction_factor", "4"), ("max_t", "16")))
    assert tuned.early_stopping == EarlyStopping(
        algorithm="asha", grace_period=2, reduction_factor=4, max_t=16
    )
    # medianstop is unchanged by the extension
    assert parse(base_spec(earlyStopping={"algorithmName": "medianstop"})).early_stopping == (
        EarlyStopping(3, 4)
    )


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ((("min_trials_required", "3"),), "spec.earlyStopping.algorithmSettings[0].name"),
        ((("reduction_factor", "1"),), "spec.earlyStopping.algorithmSettings[0].value"),
        ((("grace_period", "0"),), "spec.earlyStopping.algorithmSettings[0].value"),
        ((("grace_period", "5"), ("max_t", "5")), "spec.earlyStopping.algorithmSettings"),
    ],
    ids=["medianstop setting", "reduction factor 1", "grace period 0", "max_t not above grace"],
)
def test_asha_bad_settings_name_the_field(settings: tuple[tuple[str, str], ...], path: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(asha_spec(*settings))
    assert f"exp.yaml: {path}: " in str(info.value)


def test_export_refuses_asha_as_a_cnai_extension() -> None:
    with pytest.raises(UsageError, match="cnai extension"):
        katib.export_katib(parse(asha_spec()))


class FakeTrial:
    """Just what the scheduler reads of a Ray Tune trial."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def result(value: float, epoch: int, planned: int) -> dict[str, Any]:
    return {"objective": value, "epoch": epoch, "planned": planned}


def scheduler(mode: str = "max") -> AshaScheduler:
    asha = AshaScheduler(1, 2, 100, "epoch", "planned")
    assert asha.set_search_properties("objective", mode)
    return asha


def test_asha_halves_at_each_rung_and_records_the_stopped_trials() -> None:
    asha = scheduler()
    trials = [FakeTrial(name) for name in ("a", "b", "c")]
    for trial in trials:
        asha.on_trial_add(None, trial)
    a, b, c = trials
    assert asha.on_trial_result(None, a, result(0.9, 1, 8)) == TrialScheduler.CONTINUE
    # below the top half at rung 1 (grace period): stopped after one epoch
    assert asha.on_trial_result(None, b, result(0.2, 1, 8)) == TrialScheduler.STOP
    assert asha.on_trial_result(None, c, result(0.95, 1, 8)) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, c, result(0.96, 2, 8)) == TrialScheduler.CONTINUE
    # rung 2 (grace period * reduction factor): a is now below c's 0.96
    assert asha.on_trial_result(None, a, result(0.3, 2, 8)) == TrialScheduler.STOP
    assert asha.early_stopped == {"a", "b"}
    # minimize: lower is better
    low = scheduler("min")
    for trial in (a, b):
        low.on_trial_add(None, trial)
    assert low.on_trial_result(None, a, result(0.2, 1, 8)) == TrialScheduler.CONTINUE
    assert low.on_trial_result(None, b, result(0.9, 1, 8)) == TrialScheduler.STOP


def test_asha_never_counts_a_trial_stopped_at_its_last_step() -> None:
    asha = scheduler()
    good, short = FakeTrial("good"), FakeTrial("short")
    for trial in (good, short):
        asha.on_trial_add(None, trial)
    asha.on_trial_result(None, good, result(0.9, 1, 4))
    # below the bar, but epoch 1 is its last: it did all its work and ends as succeeded
    assert asha.on_trial_result(None, short, result(0.1, 1, 1)) == TrialScheduler.CONTINUE
    assert asha.early_stopped == set()
