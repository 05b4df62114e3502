"""Memoization and work keys change with the code the image runs (issue 12, item 9).

Argo reuses a memoized step whose key is in the cache ConfigMap and younger than
``maxAge`` (argoproj/argo-workflows v4.1.2 workflow/controller/operator.go, the
memoization lookup; this pipeline's maxAge is 720h), and ``ingest_and_plan`` skips
training when the work key equals the table's recorded one. Data, nightly and manual
runs pass ``git_sha=""``, so keys built from data_version and git_sha alone made a
new image reuse a month-old tune/train result.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines import tasks


def test_code_digest_follows_every_code_file(tmp_path: Path) -> None:
    for package in tasks.CODE_PACKAGES:
        shutil.copytree(
            tasks.CODE_ROOT / package,
            tmp_path / package,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    before = tasks.code_digest(tmp_path)
    assert before == tasks.code_digest(tmp_path)
    step = tmp_path / "steps" / "train.py"
    step.write_text(step.read_text() + "\n# changed\n")
    assert tasks.code_digest(tmp_path) != before


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
