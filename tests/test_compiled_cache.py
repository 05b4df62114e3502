"""The compiled-template cache key: found from the sources without running them.

``cnai run`` reads a pipeline's compiled YAML from the cache when the key matches; the
key digests the source files of the pipeline's module and its ``source_modules``. A
cache hit must not import them (for the reference pipeline, Hera and the task modules:
about 0.6 s of a no-change rerun), and a changed source must change the key.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnai.argo.pipeline import Pipeline, Platform
from cnai.engine.compiled import cache_key
from tests.conftest import REPO


def _package(root: Path) -> None:
    (root / "acme_flow").mkdir(parents=True)
    (root / "acme_flow/__init__.py").write_text("")
    (root / "acme_flow/build.py").write_text("def build(platform):\n    return None\n")
    (root / "acme_flow/parts.py").write_text("raise RuntimeError('parts must not be run')\n")


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    _package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.partition(".")[0] == "acme_flow"]:
        del sys.modules[name]


def test_the_key_follows_the_sources_without_running_them(acme: Path) -> None:
    import acme_flow.build

    pipeline = Pipeline("acme", acme_flow.build.build, source_modules=("acme_flow.parts",))
    first = cache_key(pipeline, Platform())
    assert "acme_flow.parts" not in sys.modules  # found, never run (it raises when run)
    assert cache_key(pipeline, Platform()) == first
    (acme / "acme_flow/parts.py").write_text("raise RuntimeError('changed')\n")
    assert cache_key(pipeline, Platform()) != first
    assert cache_key(pipeline, Platform(tag="other")) != cache_key(pipeline, Platform())


def test_a_missing_source_module_is_named(acme: Path) -> None:
    import acme_flow.build

    pipeline = Pipeline("acme", acme_flow.build.build, source_modules=("acme_flow.gone",))
    with pytest.raises(ImportError, match=r"acme_flow\.gone"):
        cache_key(pipeline, Platform())


def test_the_reference_pipeline_key_imports_neither_hera_nor_its_tasks() -> None:
    code = (
        "import sys\n"
        "from pipelines.retrain import pipeline\n"
        "from cnai.argo.pipeline import Platform\n"
        "from cnai.engine.compiled import cache_key\n"
        "cache_key(pipeline, Platform())\n"
        "print(sorted(m for m in ('hera.workflows', 'pipelines.tasks') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
