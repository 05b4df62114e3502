"""Factory-declared hyperparameters: declaration, checking, Katib specs, CLI and entrypoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.config import load_settings
from cnai.engine.entrypoint import call, encode_params
from cnai.errors import UsageError
from cnai.training.hparams import (
    LOOP_HYPERPARAMETERS,
    declared_hyperparameters,
    hyperparameters,
    parse_assignments,
    types_of,
)
from cnai.training.step import make_config
from cnai.tuning.spec import parse_experiment

HERE = f"{__name__}"


def mlp(
    hidden: int = 32,
    dropout: float = 0.1,
    activation: str = "relu",
    batch_norm: bool = False,
    layers=2,  # type: ignore[no-untyped-def]  # no annotation: not declared
    widths: tuple[int, ...] = (8,),
    input_shape: tuple[int, ...] = (13,),
    num_classes: int = 3,
    *,
    depth: int = 1,
) -> Any:
    """A test factory (never called)."""
    raise AssertionError("not called")


def explicit(**kwargs: Any) -> Any:
    """A factory declaring its hyperparameters through the override attribute."""
    raise AssertionError("not called")


explicit.hyperparameters = {"width": (int, 4), "rate": float}  # type: ignore[attr-defined]


def clashing(lr: float = 0.1) -> Any:
    """A factory whose hyperparameter is the loop's."""
    raise AssertionError("not called")


def step_step_name(seed: int = 1) -> Any:
    """A factory whose hyperparameter is an argument of the train step."""
    raise AssertionError("not called")


def test_signature_declares_scalar_keyword_parameters_with_defaults() -> None:
    assert declared_hyperparameters(f"{HERE}:mlp") == {
        "hidden": (int, 32),
        "dropout": (float, 0.1),
        "activation": (str, "relu"),
        "batch_norm": (bool, False),
        "depth": (int, 1),
    }
    # the reference model's, from its signature
    assert types_of(declared_hyperparameters("steps.models:digits_cnn")) == {
        "channels": int,
        "hidden": int,
        "dropout": float,
    }


def test_override_attribute_and_clashes() -> None:
    assert declared_hyperparameters(explicit) == {"width": (int, 4), "rate": (float, None)}
    with pytest.raises(UsageError, match="hyperparameter 'lr' clashes"):
        hyperparameters(factory=f"{HERE}:clashing")
    with pytest.raises(UsageError, match="hyperparameter 'seed' clashes"):
        hyperparameters(factory=f"{HERE}:step_step_name")
    with pytest.raises(UsageError, match="model factory"):
        hyperparameters(factory="nowhere_at_all:net")


def test_hyperparameters_are_the_loops_plus_the_configured_factorys(tmp_home: Path) -> None:
    settings = load_settings(tmp_home, environ={"CNAI_MODEL_FACTORY": f"{HERE}:mlp"})
    declared = hyperparameters(settings)
    assert set(declared) == set(LOOP_HYPERPARAMETERS) | {
        "hidden",
        "dropout",
        "activation",
        "batch_norm",
        "depth",
    }
    config = make_config({"hidden": "64", "batch_norm": "true", "epochs": 3}, settings)
    assert config.model_params == {"hidden": 64, "batch_norm": True}
    assert config.epochs == 3 and config.model_factory == f"{HERE}:mlp"


def test_assignments_are_typed_by_the_declaration() -> None:
    types = types_of(hyperparameters(factory=f"{HERE}:mlp"))
    parsed = parse_assignments(
        ["hidden=16", "dropout=0.25", "activation=gelu", "batch_norm=false", "lr=1e-3"],
        types,
        "m:mlp",
    )
    assert parsed == {
        "hidden": 16,
        "dropout": 0.25,
        "activation": "gelu",
        "batch_norm": False,
        "lr": 0.001,
    }
    with pytest.raises(UsageError, match=r"--hparam hidden='1.5': not a valid int"):
        parse_assignments(["hidden=1.5"], types, "m:mlp")
    with pytest.raises(UsageError, match=r"not a valid bool"):
        parse_assignments(["batch_norm=yes"], types, "m:mlp")
    with pytest.raises(UsageError) as info:
        parse_assignments(["channels=8"], types, "m:mlp")
    message = str(info.value)
    assert "m:mlp" in message and "'channels'" in message and "hidden" in message
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        parse_assignments(["hidden"], types, "m:mlp")


def _spec(*names: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "custom"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "val_accuracy"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 2,
            "parameters": [
                {"name": n, "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}}
                for n in names
            ],
        },
    }


def test_a_spec_may_tune_any_declared_name_and_is_refused_an_undeclared_one() -> None:
    types = types_of(hyperparameters(factory=f"{HERE}:mlp"))
    spec = parse_experiment(_spec("hidden", "depth", "epochs"), types)
    assert {p.target: p.target_type for p in spec.parameters} == {
        "hidden": int,
        "depth": int,
        "epochs": int,
    }
    with pytest.raises(UsageError) as info:
        parse_experiment(_spec("channels"), types, owner="the training loop or model factory m:f")
    assert "'channels' is not a hyperparameter of the training loop or model factory m:f" in str(
        info.value
    )


def test_default_spec_against_a_model_without_dropout_fails_at_validation(
    tmp_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Friction 7: the default experiment searches dropout; steps.models:linear has none.

    The tune step refuses the spec before touching the table (exit 2, one line naming
    the parameter and the factory), never in a trial."""
    from cnai.cli.main import main

    monkeypatch.setenv("CNAI_MODEL_FACTORY", "steps.models:linear")
    code = main(["--home", str(tmp_home), "tune", "--json"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "'dropout' is not a hyperparameter" in lines[0]
    assert "steps.models:linear" in lines[0]


def test_cli_train_refuses_an_undeclared_hparam_naming_the_declared_ones(
    tmp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnai.cli.main import main

    code = main(["--home", str(tmp_home), "train", "--hparam", "momentum=0.9"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "'momentum'" in err and "steps.models:digits_cnn" in err
    assert "channels, dropout, epochs, hidden" in err
    code = main(["--home", str(tmp_home), "train", "--hparam", "hidden=wide"])
    assert code == 2
    assert "--hparam hidden='wide': not a valid int" in capsys.readouterr().err


def test_tune_experiment_key_is_relative_to_its_config_file(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    config = project / "cnai.yaml"
    config.write_text(yaml.safe_dump({"tune": {"experiment": "exp/search.yaml"}}))
    settings = load_settings(tmp_path / "home", environ={"CNAI_CONFIG": str(config)})
    assert settings.tune_experiment == str(project / "exp" / "search.yaml")
    assert settings.env()["CNAI_TUNE_EXPERIMENT"] == settings.tune_experiment
    from cnai.tuning.step import default_experiment

    assert default_experiment(settings) == project / "exp" / "search.yaml"
    config.write_text(yaml.safe_dump({"tune": {"experiment": 3}}))
    with pytest.raises(UsageError, match=r"tune\.experiment must be a non-empty string"):
        load_settings(tmp_path / "home", environ={"CNAI_CONFIG": str(config)})


def record(**kwargs: Any) -> dict[str, Any]:
    """An open-ended step (what the train step's ``**hparams`` is)."""
    return {"got": kwargs}


def closed(epochs: int = 1) -> dict[str, Any]:
    """A step without ``**kwargs``."""
    return {"epochs": epochs}


def test_entrypoint_passes_b64_hyperparameters_to_an_open_ended_step() -> None:
    encoded = encode_params({"hidden": 48, "dropout": 0.2})
    assert call(f"{HERE}:record", [], encoded) == {"got": {"hidden": 48, "dropout": 0.2}}
    with pytest.raises(UsageError, match="has no parameter 'dropout'"):
        call(f"{HERE}:closed", [], encoded)


def test_tune_experiment_in_the_project_config_text_is_relative_to_the_project(
    tmp_path: Path,
) -> None:
    """In a pod the project's cnai.yaml arrives as $CNAI_PROJECT_CONFIG (no file)."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.cnai]\n")
    env = {
        "CNAI_PROJECT": str(project),
        "CNAI_PROJECT_CONFIG": yaml.safe_dump({"tune": {"experiment": "exp/search.yaml"}}),
    }
    settings = load_settings(tmp_path / "home", environ=env)
    assert settings.tune_experiment == str(project.resolve() / "exp" / "search.yaml")
    absolute = str(tmp_path / "elsewhere.yaml")
    env["CNAI_TUNE_EXPERIMENT"] = absolute
    assert load_settings(tmp_path / "home", environ=env).tune_experiment == absolute


def test_without_a_configured_experiment_tune_asks_for_one(tmp_path: Path) -> None:
    from dataclasses import replace

    from cnai.tuning.step import default_experiment

    settings = replace(load_settings(tmp_path / "home", environ={}), tune_experiment=None)
    with pytest.raises(UsageError, match=r"give --experiment FILE or set tune\.experiment"):
        default_experiment(settings)
