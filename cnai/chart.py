"""Keep the pipeline Helm chart's copies of the pipeline manifests in sync.

The chart under ``infra/opentofu/charts/cnai-pipeline`` carries verbatim copies
of the project's sources so that ``helm`` (and OpenTofu's ``helm_release``) can
install them without running Python:

- ``files/workflows/``: every file ``cnai compile --pipeline NAME --out DIR`` writes,
  for every pipeline of the project (``[tool.cnai] pipelines``, see :mod:`cnai.project`);
- ``files/events/``: every ``events/*.yaml`` spec;
- ``files/project/config.yaml``: the project's configuration file (``[tool.cnai]
  config``), which the chart's ConfigMap hands every pod as ``CNAI_PROJECT_CONFIG``.

:func:`sync_chart` rewrites the copies; :func:`chart_drift` lists every
difference (a test fails on any). From a shell::

    python -m cnai.chart sync     # rewrite the copies
    python -m cnai.chart check    # exit 1 and list differences when stale
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cnai.argo.pipeline import Platform
from cnai.errors import UsageError
from cnai.project import Project, find_project, project_pipelines

CHART_DIR = Path("infra") / "opentofu" / "charts" / "cnai-pipeline"
"""The pipeline chart, relative to the repository root."""
WORKFLOWS_DIR = "files/workflows"
"""Chart folder holding the ``cnai compile`` output."""
EVENTS_DIR = "files/events"
"""Chart folder holding the copies of ``events/*.yaml``."""
PROJECT_DIR = "files/project"
"""Chart folder holding the copy of the project's configuration file."""
PROJECT_CONFIG = "config.yaml"
"""Name of that copy (whatever the project calls its file)."""
EVENT_SUFFIXES = (".yaml", ".yml")
"""Which files of ``events/`` are specs."""

ManifestSource = Callable[[], dict[str, str]]


class ChartSourceMissingError(LookupError):
    """A source the chart copies from does not exist (yet)."""


def _project(repo_root: Path | None) -> Project:
    # The repository's own project, whatever $CNAI_PROJECT says.
    found = find_project(cwd=Path(repo_root) if repo_root is not None else None, environ={})
    if found is None:
        raise ChartSourceMissingError(
            f"{repo_root or Path.cwd()}: no pyproject.toml with [tool.cnai] here or above"
        )
    return found


def compiled_manifests(repo_root: Path | None = None) -> dict[str, str]:
    """``{file name: YAML}`` of every pipeline of the project at ``repo_root``, exactly as
    ``cnai compile --pipeline NAME --out DIR`` writes each (default Platform: the chart
    pins the image itself). Two pipelines writing the same file name is an error."""
    project = _project(repo_root)
    if not project.pipelines:
        raise ChartSourceMissingError(f"{project.pyproject}: [tool.cnai] pipelines is empty")
    files: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name, pipeline in project_pipelines(project).items():
        for file, text in pipeline.manifests(Platform()).items():
            if file in files:
                raise UsageError(
                    f"{project.pyproject}: pipelines {owner[file]!r} and {name!r} both write {file}"
                )
            files[file], owner[file] = text, name
    return files


def project_config(repo_root: Path) -> dict[str, str]:
    """``{PROJECT_CONFIG: text}`` of the project's configuration file; empty without one."""
    try:
        project = _project(repo_root)
    except ChartSourceMissingError:
        return {}
    return {PROJECT_CONFIG: project.config.read_text()} if project.config else {}


def event_specs(repo_root: Path) -> dict[str, str]:
    """``{file name: YAML}`` of every spec in ``events/``."""
    folder = Path(repo_root) / "events"
    specs = {
        path.name: path.read_text()
        for path in sorted(folder.glob("*"))
        if path.is_file() and path.suffix in EVENT_SUFFIXES
    }
    if not specs:
        raise ChartSourceMissingError(f"{folder}: no *.yaml event specs found")
    return specs


def expected_copies(
    repo_root: Path, compile_source: ManifestSource | None = None
) -> dict[str, str]:
    """``{chart-relative path: text}`` the chart must carry.

    ``compile_source`` (tests): the manifests instead of the project's pipelines'.
    """
    events = event_specs(repo_root)  # cheap, so a missing source fails fast
    source = compile_source or (lambda: compiled_manifests(repo_root))
    expected: dict[str, str] = {}
    for name, text in source().items():
        expected[_copy_path(WORKFLOWS_DIR, name)] = text
    for name, text in events.items():
        expected[_copy_path(EVENTS_DIR, name)] = text
    for name, text in project_config(repo_root).items():
        expected[_copy_path(PROJECT_DIR, name)] = text
    return expected


def sync_chart(repo_root: Path, compile_source: ManifestSource | None = None) -> list[str]:
    """Rewrite the chart's copies from their sources; returns the paths changed or removed."""
    chart = Path(repo_root) / CHART_DIR
    expected = expected_copies(repo_root, compile_source)
    changed: list[str] = []
    for rel in _present_copies(chart):
        if rel not in expected:
            (chart / rel).unlink()
            changed.append(rel)
    for rel, text in sorted(expected.items()):
        target = chart / rel
        if not target.is_file() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(rel)
    return changed


def chart_drift(repo_root: Path, compile_source: ManifestSource | None = None) -> list[str]:
    """One line per difference between the chart's copies and their sources; empty when in sync."""
    chart = Path(repo_root) / CHART_DIR
    expected = expected_copies(repo_root, compile_source)
    present = _present_copies(chart)
    drift: list[str] = []
    for rel, text in sorted(expected.items()):
        if rel not in present:
            drift.append(f"{CHART_DIR / rel}: missing")
        elif (chart / rel).read_text() != text:
            drift.append(f"{CHART_DIR / rel}: differs from its source")
    for rel in sorted(set(present) - set(expected)):
        drift.append(f"{CHART_DIR / rel}: stale (its source no longer exists)")
    return drift


def _copy_path(folder: str, name: str) -> str:
    if Path(name).name != name or not name.endswith(EVENT_SUFFIXES):
        raise ValueError(f"manifest name {name!r}: expected a bare *.yaml file name")
    return f"{folder}/{name}"


def _present_copies(chart: Path) -> list[str]:
    found: list[str] = []
    for folder in (WORKFLOWS_DIR, EVENTS_DIR, PROJECT_DIR):
        for path in sorted((chart / folder).glob("*")):
            if path.is_file() and path.suffix in EVENT_SUFFIXES:
                found.append(f"{folder}/{path.name}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cnai.chart sync|check``: rewrite or verify the chart's copies."""
    parser = argparse.ArgumentParser(prog="python -m cnai.chart", description=__doc__)
    parser.add_argument("action", choices=("sync", "check"))
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root")
    args = parser.parse_args(argv)
    try:
        if args.action == "sync":
            for rel in sync_chart(args.repo):
                print(f"updated {CHART_DIR / rel}")
            return 0
        drift = chart_drift(args.repo)
    except (ChartSourceMissingError, UsageError) as exc:
        print(f"cnai.chart: {exc}", file=sys.stderr)
        return 1
    for line in drift:
        print(line, file=sys.stderr)
    if drift:
        print("cnai.chart: run `python -m cnai.chart sync` to update the chart", file=sys.stderr)
    return 1 if drift else 0


if __name__ == "__main__":
    raise SystemExit(main())
