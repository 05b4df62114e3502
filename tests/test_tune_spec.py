"""The Katib Experiment subset: validation, search-space mapping, medianstop and export.

No Ray here: these are the rules themselves, checked exactly and fast.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.errors import UsageError
from cnai.training.hparams import hyperparameters, types_of
from cnai.tuning import katib
from cnai.tuning.medianstop import MedianStopRule, MedianStopScheduler
from cnai.tuning.space import grid_points, optuna_space, ray_space
from cnai.tuning.spec import parse_experiment
from cnai.tuning.step import default_experiment, fixed_args, load
from cnai.tuning.trial import metrics_line, parse_hparams
from tests.conftest import run_cli

HYPERPARAMETERS = types_of(hyperparameters(factory="steps.models:digits_cnn"))
"""The reference project's hyperparameters (its Katib spec searches the CNN's ``channels``;
the library's default factory has none)."""


def base_spec(**spec: Any) -> dict[str, Any]:
    """A small valid Experiment; ``spec`` keys replace those of ``spec``."""
    body: dict[str, Any] = {
        "objective": {"type": "maximize", "objectiveMetricName": "val_accuracy"},
        "algorithm": {"algorithmName": "random"},
        "maxTrialCount": 4,
        "parallelTrialCount": 2,
        "parameters": [
            {
                "name": "learning_rate",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.001", "max": "0.1"},
            },
            {
                "name": "batch_size",
                "parameterType": "discrete",
                "feasibleSpace": {"list": ["32", "64"]},
            },
        ],
        "trialTemplate": {
            "trialParameters": [
                {"name": "lr", "reference": "learning_rate"},
                {"name": "batch_size", "reference": "batch_size"},
            ]
        },
    }
    body.update(spec)
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "test-exp"},
        "spec": body,
    }


def parse(data: dict[str, Any]) -> Any:
    return parse_experiment(data, HYPERPARAMETERS, source="exp.yaml")


def with_param(index: int, **space: Any) -> dict[str, Any]:
    data = base_spec()
    data["spec"]["parameters"][index]["feasibleSpace"] = space
    return data


def test_default_spec_is_valid_and_maps_katib_names_to_train_hyperparameters() -> None:
    spec = load()
    assert default_experiment().name == "retrain.yaml"
    assert spec.objective.metric == "val_accuracy" and spec.objective.type == "maximize"
    assert spec.targets["learning_rate"] == "lr"
    assert set(spec.targets.values()) <= set(HYPERPARAMETERS)
    assert spec.max_trial_count <= 8 and spec.early_stopping is not None


def _invalid_cases() -> list[tuple[str, dict[str, Any], str]]:
    cases: list[tuple[str, dict[str, Any], str]] = []
    cases.append(
        (
            "min greater than max",
            with_param(0, min="0.5", max="0.1"),
            "spec.parameters[0].feasibleSpace.min",
        )
    )
    cases.append(("empty list", with_param(1, list=[]), "spec.parameters[1].feasibleSpace.list"))
    cases.append(
        (
            "unknown algorithm",
            base_spec(algorithm={"algorithmName": "hyperband"}),
            "spec.algorithm.algorithmName",
        )
    )
    cases.append(
        (
            "parallel above max",
            base_spec(parallelTrialCount=5, maxTrialCount=4),
            "spec.parallelTrialCount",
        )
    )
    data = base_spec()
    data["spec"]["trialTemplate"]["trialParameters"][0]["name"] = "momentum"
    cases.append(("hyperparameter the train step lacks", data, "trialParameters[0].name"))
    data = base_spec()
    del data["spec"]["trialTemplate"]
    cases.append(("unmapped name not a train hyperparameter", data, "spec.parameters[0].name"))
    cases.append(("unsupported spec field", base_spec(nasConfig={}), "spec.nasConfig"))
    cases.append(
        (
            "normal distribution",
            with_param(0, min="0.1", max="1", distribution="normal"),
            "spec.parameters[0].feasibleSpace.distribution",
        )
    )
    cases.append(
        (
            "logUniform from zero",
            with_param(0, min="0", max="1", distribution="logUniform"),
            "spec.parameters[0].feasibleSpace.min",
        )
    )
    cases.append(
        (
            "metric trials do not report",
            base_spec(objective={"type": "maximize", "objectiveMetricName": "f1"}),
            "spec.objective.objectiveMetricName",
        )
    )
    cases.append(
        (
            "objective type",
            base_spec(objective={"type": "biggest", "objectiveMetricName": "val_accuracy"}),
            "spec.objective.type",
        )
    )
    cases.append(
        (
            "grid double without step",
            base_spec(algorithm={"algorithmName": "grid"}),
            "spec.parameters[0].feasibleSpace.step",
        )
    )
    cases.append(
        (
            "setting of another algorithm",
            base_spec(
                algorithm={
                    "algorithmName": "random",
                    "algorithmSettings": [{"name": "n_startup_trials", "value": "3"}],
                }
            ),
            "spec.algorithm.algorithmSettings[0].name",
        )
    )
    cases.append(
        (
            "unknown early stopping",
            base_spec(earlyStopping={"algorithmName": "hyperband"}),
            "spec.earlyStopping.algorithmName",
        )
    )
    cases.append(
        (
            "medianstop start_step 0",
            base_spec(
                earlyStopping={
                    "algorithmName": "medianstop",
                    "algorithmSettings": [{"name": "start_step", "value": "0"}],
                }
            ),
            "spec.earlyStopping.algorithmSettings[0].value",
        )
    )
    data = base_spec()
    data["spec"]["parameters"][1]["feasibleSpace"]["list"] = ["32", "3.5"]
    cases.append(("non-integer for int hyperparameter", data, "feasibleSpace.list[1]"))
    data = base_spec()
    data["spec"]["trialTemplate"]["trialParameters"].pop()
    cases.append(("parameter nobody references", data, "spec.parameters[1].name"))
    data = base_spec()
    data["spec"]["parameters"][1] = {
        "name": "batch_size",
        "parameterType": "double",
        "feasibleSpace": {"min": "16", "max": "64"},
    }
    cases.append(("double for an int hyperparameter", data, "spec.parameters[1].parameterType"))
    cases.append(
        ("wrong apiVersion", {**base_spec(), "apiVersion": "kubeflow.org/v1"}, "apiVersion")
    )
    cases.append(("status block", {**base_spec(), "status": {}}, "status"))
    cases.append(
        (
            "failed budget above max",
            base_spec(maxFailedTrialCount=9),
            "spec.maxFailedTrialCount",
        )
    )
    cases.append(
        (
            "missing maxTrialCount for random",
            {
                **base_spec(),
                "spec": {k: v for k, v in base_spec()["spec"].items() if k != "maxTrialCount"},
            },
            "spec.maxTrialCount",
        )
    )
    return cases


@pytest.mark.parametrize(
    ("data", "path"), [c[1:] for c in _invalid_cases()], ids=[c[0] for c in _invalid_cases()]
)
def test_invalid_spec_names_the_field_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(data)
    message = str(info.value)
    assert message.startswith("exp.yaml: ")
    assert path in message
    assert "\n" not in message


def test_int_and_categorical_values_convert_to_train_types() -> None:
    data = base_spec()
    data["spec"]["parameters"].append(
        {
            "name": "hidden",
            "parameterType": "int",
            "feasibleSpace": {"min": "16", "max": "64", "step": "16"},
        }
    )
    data["spec"]["parameters"].append(
        {"name": "channels", "parameterType": "categorical", "feasibleSpace": {"list": ["8", "16"]}}
    )
    data["spec"]["trialTemplate"]["trialParameters"] += [
        {"name": "hidden", "reference": "hidden"},
        {"name": "channels", "reference": "channels"},
    ]
    spec = parse(data)
    hidden, channels = spec.parameters[2], spec.parameters[3]
    assert hidden.grid() == (16, 32, 48, 64)
    assert channels.values == (8, 16) and all(type(v) is int for v in channels.values)
    assert spec.parameters[1].values == (32, 64)


def test_grid_enumerates_katib_grid_in_order_and_stops_at_max_trial_count() -> None:
    data = base_spec(algorithm={"algorithmName": "grid"}, maxTrialCount=5, parallelTrialCount=1)
    data["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.01", "max": "0.03", "step": "0.01"}
    spec = parse(data)
    points = grid_points(spec)
    assert points == [
        {"lr": 0.01, "batch_size": 32},
        {"lr": 0.01, "batch_size": 64},
        {"lr": 0.02, "batch_size": 32},
        {"lr": 0.02, "batch_size": 64},
        {"lr": 0.03, "batch_size": 32},
    ]
    assert spec.max_trial_count == 5
    # Without maxTrialCount a grid runs every point once.
    del data["spec"]["maxTrialCount"]
    assert parse(data).max_trial_count == 6


def test_search_space_mapping_keeps_log_scale_and_steps() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from ray.tune.search.sample import Categorical, Float

    data = with_param(0, min="0.001", max="0.1", distribution="logUniform")
    spec = parse(data)
    space = ray_space(spec)
    assert isinstance(space["lr"], Float) and "LogUniform" in type(space["lr"].sampler).__name__
    assert isinstance(space["batch_size"], Categorical)
    optuna = optuna_space(spec)
    assert optuna["lr"] == FloatDistribution(0.001, 0.1, log=True)
    assert optuna["batch_size"] == CategoricalDistribution([32, 64])
    stepped = parse(with_param(0, min="0.1", max="0.35", step="0.1"))
    assert stepped.parameters[0].grid() == (0.1, 0.2, 0.3)
    assert optuna_space(stepped)["lr"] == FloatDistribution(0.1, 0.3, step=0.1)


# --- medianstop: the rule exactly as Katib documents it ---------------------------------


def test_medianstop_waits_for_min_trials_and_start_step() -> None:
    rule = MedianStopRule(min_trials_required=2, start_step=2, mode="max")
    rule.complete("a", [0.5, 0.7, 0.9])
    assert not rule.should_stop(2, 0.0)  # only one completed trial
    rule.complete("b", [0.3, 0.5, 0.6])
    assert not rule.should_stop(1, 0.0)  # before start_step
    # Running averages at step 2: a=(0.5+0.7)/2=0.6, b=(0.3+0.5)/2=0.4 -> median 0.5.
    assert rule.median_at(2) == pytest.approx(0.5)
    assert rule.should_stop(2, 0.49)
    assert not rule.should_stop(2, 0.5)  # equal is not worse
    # Step 3: a=0.7, b=(0.3+0.5+0.6)/3 -> median of the two averages.
    assert rule.median_at(3) == pytest.approx((0.7 + 1.4 / 3) / 2)


def test_medianstop_uses_median_not_mean_and_value_not_best() -> None:
    rule = MedianStopRule(min_trials_required=3, start_step=1, mode="max")
    for name, values in {"a": [0.1], "b": [0.8], "c": [0.9]}.items():
        rule.complete(name, values)
    assert rule.median_at(1) == pytest.approx(0.8)  # the mean would be 0.6
    assert rule.should_stop(1, 0.7)


def test_medianstop_minimize_and_short_completed_trials() -> None:
    rule = MedianStopRule(min_trials_required=1, start_step=1, mode="min")
    rule.complete("a", [1.0, 0.5])
    assert rule.median_at(5) == pytest.approx(0.75)  # all its steps when shorter than s
    assert rule.should_stop(5, 0.8) and not rule.should_stop(5, 0.7)


class FakeTrial:
    """What the scheduler reads of a Ray Tune trial: its id."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def test_medianstop_scheduler_excludes_the_trials_it_stopped() -> None:
    from ray.tune.schedulers import TrialScheduler

    scheduler = MedianStopScheduler(MedianStopRule(1, 1, "max"), "val_accuracy")
    good, bad = FakeTrial("good"), FakeTrial("bad")
    for epoch, value in enumerate([0.6, 0.8], start=1):
        decision = scheduler.on_trial_result(None, good, {"val_accuracy": value, "epoch": epoch})
        assert decision == TrialScheduler.CONTINUE
    scheduler.on_trial_complete(None, good, {})
    assert scheduler.on_trial_result(None, bad, {"val_accuracy": 0.5, "epoch": 1}) == "STOP"
    scheduler.on_trial_complete(None, bad, {})
    assert scheduler.early_stopped == {"bad"}
    assert list(scheduler.rule.completed) == ["good"]


def test_medianstop_never_stops_a_trial_at_its_last_step() -> None:
    from ray.tune.schedulers import TrialScheduler

    scheduler = MedianStopScheduler(MedianStopRule(1, 1, "max"), "val_accuracy", "epoch", "planned")
    good, late, early = FakeTrial("good"), FakeTrial("late"), FakeTrial("early")
    for epoch, value in enumerate([0.8, 0.9], start=1):
        scheduler.on_trial_result(None, good, {"val_accuracy": value, "epoch": epoch, "planned": 2})
    scheduler.on_trial_complete(None, good, {})
    # Below the bar at step 2, but step 2 is its last: it ran all its epochs, so it
    # completes as succeeded and joins the median instead of being labelled stopped.
    result = {"val_accuracy": 0.8, "epoch": 1, "planned": 2}
    assert scheduler.on_trial_result(None, late, result) == TrialScheduler.CONTINUE
    result = {"val_accuracy": 0.5, "epoch": 2, "planned": 2}
    assert scheduler.on_trial_result(None, late, result) == TrialScheduler.CONTINUE
    scheduler.on_trial_complete(None, late, {})
    # The same value one step before a longer trial's end is stopped.
    result = {"val_accuracy": 0.5, "epoch": 2, "planned": 3}
    assert scheduler.on_trial_result(None, early, result) == TrialScheduler.STOP
    assert scheduler.early_stopped == {"early"}
    assert set(scheduler.rule.completed) == {"good", "late"}


# --- Katib export -------------------------------------------------------------------------


def test_export_describes_the_same_search_and_parses_back(tmp_path: Path) -> None:
    spec = load()
    resource = katib.export_katib(spec, image="ghcr.io/cnai-dev/cnai-pipeline:v1", snapshot_id=7)
    text = katib.dump(resource)
    again = parse_experiment(yaml.safe_load(text), HYPERPARAMETERS, source="exported.yaml")
    assert again.parameters == spec.parameters
    assert again.objective == spec.objective
    assert again.algorithm == spec.algorithm
    assert again.early_stopping == spec.early_stopping
    assert (again.max_trial_count, again.parallel_trial_count) == (
        spec.max_trial_count,
        spec.parallel_trial_count,
    )
    assert again.trial_args.snapshot_id == 7
    assert again.trial_args.image == "ghcr.io/cnai-dev/cnai-pipeline:v1"
    # The pinned snapshot is used locally; a different one on the command line is refused.
    assert fixed_args(again, None, None) == (None, 7)
    with pytest.raises(UsageError, match="--snapshot-id 8"):
        fixed_args(again, None, 8)

    template = resource["spec"]["trialTemplate"]
    job_text = json.dumps(template["trialSpec"])
    for item in template["trialParameters"]:  # every placeholder is substituted by Katib
        assert f"${{trialParameters.{item['name']}}}" in job_text
    pod = template["trialSpec"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["name"] == template["primaryContainerName"]
    assert container["command"] == ["python", "-m", "cnai.tuning.trial"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert resource["spec"]["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"


def test_export_tampered_trial_template_is_rejected() -> None:
    resource = katib.export_katib(load())
    tampered = copy.deepcopy(resource)
    container = tampered["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    container["command"] = ["python", "train_something_else.py"]
    with pytest.raises(UsageError, match=r"containers\[training-container\]\.command"):
        parse(tampered)
    tampered = copy.deepcopy(resource)
    tampered["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"}}
    with pytest.raises(UsageError, match=r"spec\.metricsCollectorSpec"):
        parse(tampered)


def test_exported_pod_matches_kubernetes_schemas() -> None:
    """The trial pod validates against Kubernetes 1.35's strict schema (kubernetes-validate);
    a misspelled field fails there with its path."""
    from cnai.lint.core import definition_problems

    template = katib.export_katib(load())["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    assert definition_problems(template, "io.k8s.api.core.v1.PodTemplateSpec") == []
    tampered = copy.deepcopy(template)
    tampered["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    assert [p for p, _ in definition_problems(tampered, "io.k8s.api.core.v1.PodTemplateSpec")] == [
        "spec.containers[0].securityContext.runAsNonRot"
    ]


def test_trial_output_is_what_katibs_stdout_collector_parses() -> None:
    line = metrics_line(3, {"val_accuracy": 0.958333, "val_loss": 0.1234, "train_loss": 1e-06})
    stamp, rest = line.split(" ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    found = {m[0]: float(m[1]) for m in re.findall(katib.METRICS_FORMAT, rest)}
    assert found["val_accuracy"] == pytest.approx(0.958333)
    assert found["train_loss"] == pytest.approx(1e-06)  # plain decimals, no exponent
    assert found["epoch"] == 3
    assert parse_hparams(["lr=0.01", "batch_size=64"], HYPERPARAMETERS) == {
        "lr": 0.01,
        "batch_size": 64,
    }
    with pytest.raises(UsageError, match="--hparam"):
        parse_hparams(["momentum=0.9"], HYPERPARAMETERS)


@pytest.mark.slow
def test_cli_rejects_invalid_spec_and_exports(tmp_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_param(0, min="0.5", max="0.1")))
    result = run_cli(["tune", "--experiment", str(bad), "--json"], tmp_home)
    assert result.returncode == 2
    assert "spec.parameters[0].feasibleSpace.min" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    out = tmp_path / "katib" / "experiment.yaml"
    result = run_cli(["tune", "--export-katib", str(out), "--image", "img:1", "--json"], tmp_home)
    assert result.returncode == 0, result.stderr
    assert result.json()["exported"] == str(out)
    exported = yaml.safe_load(out.read_text())
    assert exported["kind"] == "Experiment"
    pod = exported["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "img:1"
