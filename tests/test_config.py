"""Settings resolution: defaults, config file, environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnai.config import load_settings
from cnai.errors import UsageError


def test_embedded_defaults_live_under_the_home(tmp_home: Path) -> None:
    settings = load_settings(tmp_home, environ={})
    assert settings.catalog_properties["uri"] == f"sqlite:///{tmp_home}/iceberg/catalog.db"
    assert settings.catalog_properties["warehouse"] == (tmp_home / "iceberg/warehouse").as_uri()
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_home}/mlflow/mlflow.db"
    assert settings.dataset.table == "cnai.digits" and settings.dataset.label == "label"
    assert len(settings.dataset.features) == 64


def test_home_from_environment(tmp_home: Path) -> None:
    assert load_settings(environ={"CNAI_HOME": str(tmp_home)}).home == tmp_home


def test_environment_overrides_file(tmp_home: Path) -> None:
    (tmp_home / "config.yaml").write_text(
        "catalog:\n  name: lake\n  properties:\n    type: rest\n    uri: http://catalog:8181\n"
        "mlflow:\n  tracking_uri: http://mlflow:5000\n"
    )
    env = {
        "CNAI_CATALOG__S3__SECRET_ACCESS_KEY": "s3cr3t",
        "CNAI_CATALOG__URI": "http://other:8181",
        "CNAI_MLFLOW_TRACKING_URI": "http://tracking:5000",
    }
    settings = load_settings(tmp_home, environ=env)
    assert settings.catalog_name == "lake"
    assert settings.catalog_properties == {
        "type": "rest",
        "uri": "http://other:8181",
        "s3.secret-access-key": "s3cr3t",
    }
    assert settings.mlflow_tracking_uri == "http://tracking:5000"
    # env() reproduces the same settings in a child process
    again = load_settings(environ=settings.env())
    assert again.catalog_properties == settings.catalog_properties
    assert again.mlflow_tracking_uri == settings.mlflow_tracking_uri


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mlflow:\n  trackin_uri: x\n", "unknown field mlflow.trackin_uri"),
        ("dataset:\n  feature_type: text\n", "dataset.feature_type must be one of"),
        (
            "dataset:\n  features: {prefix: p, count: 64}\n  feature_shape: [2, 2]\n",
            "holds 4 values but 64 features",
        ),
        ("dataset:\n  features: []\n", "dataset.features must name at least one column"),
        ("dataset:\n  table: nodot\n", "NAMESPACE.NAME"),
        ("- a\n- b\n", "config must be a mapping"),
    ],
)
def test_invalid_config_names_the_field(tmp_home: Path, text: str, message: str) -> None:
    (tmp_home / "config.yaml").write_text(text)
    with pytest.raises(UsageError, match=message):
        load_settings(tmp_home, environ={})


def test_dataset_prefix_shorthand(tmp_home: Path) -> None:
    (tmp_home / "config.yaml").write_text(
        "dataset:\n  table: shop.churn\n  features: {prefix: f_, count: 3}\n"
        "  label: churned\n  classes: [0, 1]\n"
    )
    spec = load_settings(tmp_home, environ={}).dataset
    assert spec.features == ("f_0", "f_1", "f_2")
    assert spec.feature_shape == (1, 3)
    assert spec.classes == (0, 1)
