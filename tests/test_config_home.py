"""Where a step keeps its state when nothing says so, and where Ray Tune keeps its own.

Issue 12 item 1: the image's working directory (/app) is read-only to the uid the
pods run as, so the default home ``./.cnai`` must not be used there; and a pod-local
Ray Tune storage path cannot be shared between the Ray pods of the tune RayJob
(Ray 2.60 ray/air/config.py, RunConfig.storage_path: "For multi-node
training/tuning runs, this must be set to a shared storage location (e.g., S3,
NFS)"; storage_filesystem: "storage_path should be a path with its prefix stripped").
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from cnai.config import default_home, load_settings, resolve_home
from cnai.tuning.runner import tune_storage


def test_default_home_is_dot_cnai_in_a_writable_cwd(tmp_path: Path) -> None:
    assert default_home(tmp_path) == tmp_path.resolve() / ".cnai"


def test_default_home_keeps_an_existing_dot_cnai_even_when_cwd_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".cnai").mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert default_home(tmp_path) == tmp_path.resolve() / ".cnai"


def test_default_home_leaves_a_read_only_cwd_for_the_users_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, user = tmp_path / "app", tmp_path / "home"
    cwd.mkdir()
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != cwd.resolve() and real_access(path, mode)
    )
    assert default_home(cwd) == user.resolve() / ".cnai"
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert default_home(cwd).name == f"cnai-{os.getuid()}"


def test_resolve_home_prefers_the_argument_then_cnai_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNAI_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_home() == tmp_path / "env"


def test_tune_storage_defaults_to_the_home_locally(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.tune_storage_path == str(tmp_path / "tune")
    path, fs = tune_storage(settings.tune_storage_path, settings)
    assert (path, fs) == (str(tmp_path / "tune"), None)
    assert (tmp_path / "tune").is_dir()


def test_tune_storage_follows_an_object_store_checkpoint_root(tmp_path: Path) -> None:
    """The chart's settings (OpenTofu modules/pipeline) set CNAI_CHECKPOINT_ROOT to
    s3://<checkpoint bucket>/: Tune's state goes next to it, shared by every pod."""
    env = {
        "CNAI_CHECKPOINT_ROOT": "s3://cnai-checkpoints/",
        "CNAI_CATALOG__S3__ENDPOINT": "http://127.0.0.1:1",
        "CNAI_CATALOG__S3__ACCESS_KEY_ID": "k",
        "CNAI_CATALOG__S3__SECRET_ACCESS_KEY": "s",
    }
    settings = load_settings(tmp_path, environ=env)
    assert settings.tune_storage_path == "s3://cnai-checkpoints/tune"
    path, fs = tune_storage(settings.tune_storage_path, settings)
    assert path == "cnai-checkpoints/tune"
    assert isinstance(fs, pafs.S3FileSystem)
    assert fs.__reduce__()[1][0]["endpoint_override"] == "http://127.0.0.1:1"
    assert not (tmp_path / "tune").exists()


def test_tune_storage_path_setting_wins(tmp_path: Path) -> None:
    env = {"CNAI_CHECKPOINT_ROOT": "s3://a/", "CNAI_TUNE_STORAGE_PATH": "s3://b/ray"}
    assert load_settings(tmp_path, environ=env).tune_storage_path == "s3://b/ray"
    (tmp_path / "config.yaml").write_text("tune:\n  storage_path: /shared/tune\n")
    assert load_settings(tmp_path, environ={}).tune_storage_path == "/shared/tune"
    (tmp_path / "config.yaml").write_text("tune:\n  storage: /shared/tune\n")
    with pytest.raises(Exception, match=r"unknown field tune\.storage"):
        load_settings(tmp_path, environ={})
