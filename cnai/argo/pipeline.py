"""What a project hands to cnai for each of its pipelines: a :class:`Pipeline`.

A project names its pipelines as ``module:object`` references (``--pipeline`` on the
command line, or ``[tool.cnai] pipelines`` in its pyproject.toml); each object is a
:class:`Pipeline`. ``cnai compile``, ``run``, ``submit``, ``runs``, the chart sync and
the events gateway only use this interface, so the library never imports a project.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Platform:
    """Where and as whom a pipeline's pods run: one place for the platform's defaults.

    Read from the ``pipeline`` section of the configuration (``image``, ``tag``, ...);
    the authoring kit (:mod:`cnai.argo.kit`) builds every template from it.
    """

    image: str = "ghcr.io/cnai-dev/cnai-pipeline"
    """Pipeline image repository (without tag)."""
    tag: str | None = None
    """Image tag; None: the cnai version."""
    service_account: str = "cnai-pipeline"
    """ServiceAccount every pod of the workflow runs as."""
    config_map: str = "cnai-pipeline-config"
    """ConfigMap injected into every pod with ``envFrom`` (non-secret settings)."""
    secret: str = "cnai-pipeline-secrets"
    """Secret injected into every pod with ``envFrom`` (credentials)."""
    run_as: int = 1000
    """Non-root uid/gid/fsGroup of every pod."""


@dataclass(frozen=True)
class Pipeline:
    """One pipeline of a project: its WorkflowTemplate and what the local engine needs."""

    name: str
    """The WorkflowTemplate's ``metadata.name`` (also the default run-name prefix)."""
    build: Callable[[Platform], Any]
    """Returns the Hera ``WorkflowTemplate`` for a platform."""
    description: str = ""
    """One line shown by ``cnai pipelines`` and the Argo UI."""
    preload: tuple[str, ...] = ()
    """Modules the local engine's zygote imports ahead of the tasks (see
    :mod:`cnai.engine.zygote`); names after ``"--"`` are imported in the background."""
    extra_manifests: Callable[[Platform], dict[str, str]] | None = None
    """Further ``{file name: YAML}`` that ``cnai compile --out`` writes with the template."""
    source_modules: tuple[str, ...] = field(default=())
    """Modules whose source keys the compiled-template cache (besides ``build``'s own)."""
    code_packages: tuple[str, ...] = field(default=())
    """The project's top-level packages whose code decides what a run computes (e.g.
    ``("steps", "pipelines")``): with cnai they make the code version in work and memo
    keys (:func:`cnai.argo.kit.keys.code_version`)."""

    def manifests(self, platform: Platform | None = None) -> dict[str, str]:
        """Every file ``cnai compile --out DIR`` writes: ``{file name: YAML text}``."""
        platform = platform or Platform()
        template = self.build(platform)
        text = yaml.safe_dump(template.to_dict(), sort_keys=False, width=1000)
        files = {f"{self.name}.yaml": text}
        if self.extra_manifests is not None:
            files.update(self.extra_manifests(platform))
        return files

    def source_files(self) -> list[str]:
        """Paths of the source files the compiled YAML depends on (for cache keys).

        Found with the import system's finders, without running the modules: a cache
        hit must not pay for importing Hera and the step modules (about 0.6 s), which
        only compiling needs. A module whose source cannot be found is an error.
        """
        import importlib.util

        paths: list[str] = []
        module = inspect.getmodule(self.build)
        names = ([module.__name__] if module else []) + list(self.source_modules)
        for name in names:
            spec = importlib.util.find_spec(name)
            if spec is None or not spec.has_location or not spec.origin:
                raise ImportError(f"pipeline {self.name}: source module {name!r} not found")
            if spec.origin not in paths:
                paths.append(spec.origin)
        return paths
