"""Memoization and work keys change with the code the image runs (issue 12, item 9).

Argo reuses a memoized step whose key is in the cache ConfigMap and younger than
``maxAge`` (argoproj/argo-workflows v4.1.2 workflow/controller/operator.go, the
memoization lookup; this pipeline's maxAge is 720h), and ``ingest_and_plan`` skips
training when the work key equals the table's recorded one. Data, nightly and manual
runs pass ``git_sha=""``, so keys built from data_version and git_sha alone made a
new image reuse a month-old tune/train result.

The code version (:func:`cnai.argo.kit.keys.code_version`) digests cnai and the
project's own packages, named by the Pipeline's ``code_packages``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from cnai.argo.kit import keys
from pipelines import tasks
from pipelines.retrain import pipeline
from tests.conftest import REPO


def test_code_digest_follows_every_code_file(tmp_path: Path) -> None:
    packages = ("cnai", *pipeline.code_packages)
    for package in packages:
        shutil.copytree(
            REPO / package,
            tmp_path / package,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    before = keys.code_digest(tmp_path, packages)
    assert before == keys.code_digest(tmp_path, packages)
    step = tmp_path / "steps" / "train.py"
    step.write_text(step.read_text() + "\n# changed\n")
    assert keys.code_digest(tmp_path, packages) != before


def test_the_code_version_digests_the_library_and_the_project_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj" / "mysteps"
    project.mkdir(parents=True)
    (project / "__init__.py").write_text("")
    (project / "fit.py").write_text("def fit() -> None: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    keys.code_version.cache_clear()
    library_only = keys.code_version(())
    with_project = keys.code_version(("mysteps",))
    assert with_project != library_only
    (project / "fit.py").write_text("def fit() -> int: return 1\n")
    keys.code_version.cache_clear()
    assert keys.code_version(("mysteps",)) != with_project
    assert keys.code_version(()) == library_only
    keys.code_version.cache_clear()
    sys.modules.pop("mysteps", None)


def test_a_missing_code_package_is_refused() -> None:
    from cnai.errors import UsageError

    with pytest.raises(UsageError, match="no-such-package"):
        keys.code_version(("no-such-package",))


def test_keys_change_with_the_code_version_even_without_a_git_sha(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ("dv1", "", "default", "2", "", "digits-classifier", "cnai.digits")
    monkeypatch.setattr(tasks, "code_version", lambda: "0.1.0+aaaa")
    old_work, old_tune = tasks.plan_keys(*args)
    old_train = tasks.train_key("dv1", "", {"lr": 0.1}, "2", "cnai.digits")
    monkeypatch.setattr(tasks, "code_version", lambda: "0.1.0+bbbb")
    new_work, new_tune = tasks.plan_keys(*args)
    assert new_work != old_work and new_tune != old_tune
    assert tasks.train_key("dv1", "", {"lr": 0.1}, "2", "cnai.digits") != old_train
    # Same code, same inputs: the same keys (reruns stay memoized).
    assert tasks.plan_keys(*args) == (new_work, new_tune)


def test_the_code_version_names_the_release_and_a_digest() -> None:
    from cnai import __version__

    version = tasks.code_version()
    release, digest = version.split("+")
    assert release == __version__ and len(digest) == 16
    assert version == keys.code_version(pipeline.code_packages)
