"""The project cnai works for: its pipelines and its configuration file.

A *project* is a folder whose ``pyproject.toml`` has a ``[tool.cnai]`` table. It is
``$CNAI_PROJECT`` when set, else the nearest such folder found by walking up from the
current folder (as ruff and pytest find their configuration). ``[tool.cnai]`` keys:

- ``pipelines``: ``{short name = "module:object"}``, each object a
  :class:`cnai.argo.pipeline.Pipeline`;
- ``default-pipeline``: the short name ``--pipeline`` defaults to (optional when the
  project has exactly one pipeline);
- ``config``: the project's configuration file, relative to the project root (same
  schema as ``<home>/config.yaml``; see :mod:`cnai.config` for the layering).

Every value is checked when the table is read: a bad one is a UsageError (exit 2)
naming the file and the key. :func:`activate` puts the project root first on
``sys.path`` so ``pipelines.x``/``steps.x``/``mymodels:f`` import without ``PYTHONPATH``;
:func:`task_env` gives the same to the processes the local engine starts.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnai.errors import UsageError

if TYPE_CHECKING:
    from cnai.argo.pipeline import Pipeline

PROJECT_ENV = "CNAI_PROJECT"
"""Environment variable naming the project folder (skips the walk up)."""
PYPROJECT = "pyproject.toml"
KEYS = ("pipelines", "default-pipeline", "config")
"""Every key ``[tool.cnai]`` may hold."""
NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""A pipeline's short name: a DNS label (it appears in run ids and chart file names)."""


@dataclass(frozen=True)
class Project:
    """A project folder and its checked ``[tool.cnai]`` table."""

    root: Path
    """The folder holding ``pyproject.toml`` (absolute)."""
    pipelines: dict[str, str] = field(default_factory=dict)
    """Short name -> ``module:object`` reference of a Pipeline, in file order."""
    default_pipeline: str | None = None
    """The short name ``--pipeline`` defaults to; None: the only pipeline, if one."""
    config: Path | None = None
    """The project's configuration file (absolute); None when the table names none."""

    @property
    def pyproject(self) -> Path:
        """The ``pyproject.toml`` the table came from."""
        return self.root / PYPROJECT


def find_project(
    cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Project | None:
    """The project of ``$CNAI_PROJECT`` or the nearest one above ``cwd``; None when none.

    ``$CNAI_PROJECT`` must name a folder whose pyproject.toml has ``[tool.cnai]``
    (UsageError otherwise); a pyproject.toml without the table is passed over on the
    walk up, as one that is not cnai's.
    """
    env = os.environ if environ is None else environ
    given = env.get(PROJECT_ENV)
    if given:
        root = Path(given).expanduser().resolve()
        table = _cnai_table(root / PYPROJECT)
        if table is None:
            raise UsageError(
                f"{PROJECT_ENV} {given}: no {PYPROJECT} with a [tool.cnai] table there"
            )
        return _project(root, table)
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PYPROJECT
        if candidate.is_file():
            table = _cnai_table(candidate)
            if table is not None:
                return _project(folder, table)
    return None


def activate(project: Project | None) -> None:
    """Put the project root first on ``sys.path`` (once); nothing without a project."""
    if project is None:
        return
    root = str(project.root)
    if root not in sys.path:
        sys.path.insert(0, root)


def task_env(project: Project | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables every process the local engine starts gets besides its own.

    ``CNAI_PROJECT`` and ``PYTHONPATH`` (the project root first) so a task imports the
    project's modules and finds its configuration from any working folder;
    ``CNAI_CONFIG`` (absolute) and ``CNAI_PROJECT_CONFIG`` when the caller set them,
    so tasks read the same configuration file as the command that started them.
    """
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    if env.get("CNAI_CONFIG"):
        out["CNAI_CONFIG"] = str(Path(env["CNAI_CONFIG"]).expanduser().resolve())
    if env.get("CNAI_PROJECT_CONFIG"):
        out["CNAI_PROJECT_CONFIG"] = env["CNAI_PROJECT_CONFIG"]
    if project is not None:
        out[PROJECT_ENV] = str(project.root)
        rest = [p for p in (env.get("PYTHONPATH") or "").split(os.pathsep) if p]
        out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(project.root), *rest]))
    return out


def resolve_pipeline(ref: str | None, project: Project | None) -> Pipeline:
    """The Pipeline ``ref`` names: a short name of the project, or ``module:object``.

    ``ref`` None: the project's ``default-pipeline`` (or its only pipeline).
    UsageError (exit 2) naming ``--pipeline`` and the rule otherwise.
    """
    if ref is None:
        ref = default_pipeline(project)
    activate(project)
    if ":" in ref:
        return _checked(ref, ref)
    if project is None:
        raise UsageError(
            f"--pipeline {ref!r}: no project found (no {PYPROJECT} with [tool.cnai] here or "
            "above, and CNAI_PROJECT unset); give module:object"
        )
    if ref not in project.pipelines:
        known = ", ".join(project.pipelines) or "none"
        raise UsageError(
            f"--pipeline {ref!r}: not a pipeline of {project.pyproject} (known: {known}) "
            "nor a module:object reference"
        )
    return _checked(project.pipelines[ref], ref)


def default_pipeline(project: Project | None) -> str:
    """The short name used when ``--pipeline`` is not given; UsageError when none."""
    if project is None:
        raise UsageError(
            f"--pipeline: not given and no project found (no {PYPROJECT} with [tool.cnai] "
            "here or above, and CNAI_PROJECT unset); give --pipeline module:object"
        )
    if project.default_pipeline:
        return project.default_pipeline
    if len(project.pipelines) == 1:
        return next(iter(project.pipelines))
    raise UsageError(
        f"{project.pyproject}: [tool.cnai] default-pipeline is not set and the project has "
        f"{len(project.pipelines)} pipelines; set it or give --pipeline"
    )


def project_pipelines(project: Project | None) -> dict[str, Pipeline]:
    """Every pipeline of the project, by short name (resolved and checked)."""
    if project is None:
        return {}
    activate(project)
    return {name: _checked(ref, name) for name, ref in project.pipelines.items()}


def pipeline_for_template(template: str, project: Project | None) -> str | None:
    """The short name of the project's pipeline whose WorkflowTemplate is ``template``."""
    for name, pipeline in project_pipelines(project).items():
        if pipeline.name == template:
            return name
    return None


def _checked(ref: str, shown: str) -> Pipeline:
    from cnai.argo.pipeline import Pipeline
    from cnai.resolve import resolve_object

    found = resolve_object(ref, what="--pipeline" if shown == ref else f"--pipeline {shown!r} ->")
    if not isinstance(found, Pipeline):
        raise UsageError(
            f"--pipeline {shown!r}: {ref} is a {type(found).__name__}, "
            "not a cnai.argo.pipeline.Pipeline"
        )
    return found


def _cnai_table(path: Path) -> dict[str, Any] | None:
    """``[tool.cnai]`` of ``path`` (None when the file or the table is absent)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    tool = data.get("tool")
    table = tool.get("cnai") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.cnai] must be a table")
    return table


def _project(root: Path, table: dict[str, Any]) -> Project:
    """Check every key of ``table`` (from ``root``'s pyproject.toml)."""
    path = root / PYPROJECT
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise UsageError(
            f"{path}: [tool.cnai] unknown key {unknown[0]!r} (known: {', '.join(KEYS)})"
        )
    raw = table.get("pipelines", {})
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: [tool.cnai] pipelines must be a table of name = 'module:object'")
    pipelines: dict[str, str] = {}
    for name, ref in raw.items():
        if not NAME.fullmatch(name):
            raise UsageError(
                f"{path}: [tool.cnai] pipelines.{name}: the name must be lowercase letters, "
                "digits and '-' (a DNS label)"
            )
        module, sep, attr = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not (sep and module and attr):
            raise UsageError(
                f"{path}: [tool.cnai] pipelines.{name} must be a 'module:object' string, "
                f"got {ref!r}"
            )
        pipelines[name] = ref
    default = table.get("default-pipeline")
    if default is not None and (not isinstance(default, str) or default not in pipelines):
        raise UsageError(
            f"{path}: [tool.cnai] default-pipeline {default!r} must name one of pipelines "
            f"({', '.join(pipelines) or 'none'})"
        )
    config = table.get("config")
    config_path: Path | None = None
    if config is not None:
        if not isinstance(config, str) or not config:
            raise UsageError(f"{path}: [tool.cnai] config must be a file name, got {config!r}")
        config_path = (root / config).resolve()
        if not config_path.is_file():
            raise UsageError(f"{path}: [tool.cnai] config {config!r}: file not found")
    return Project(root=root, pipelines=pipelines, default_pipeline=default, config=config_path)
