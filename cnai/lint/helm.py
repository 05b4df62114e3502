"""Render a Helm chart with the real ``helm template`` and split it into objects.

``helm`` is looked up next to the running Python first (``make`` installs Helm 4.1.4
there with scripts/install_k8s_tools.py), then on ``PATH``. Rendering is Helm's own,
so what is linted is exactly what ``helm install`` (and OpenTofu's ``helm_release``)
would send.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cnai.errors import CnaiError, UsageError

RENDER_TIMEOUT_S = 120
"""How long ``helm template`` may take before it counts as a failure."""
_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Rendered:
    """One object ``helm template`` rendered."""

    template: str
    """The chart template it came from (``cnai-pipeline/templates/events.yaml``)."""
    doc: Any
    """The parsed object."""


def find_helm() -> Path:
    """The ``helm`` binary: next to ``sys.executable``, else on PATH (CnaiError if neither)."""
    beside = Path(sys.executable).parent / "helm"
    if beside.is_file():
        return beside
    found = shutil.which("helm")
    if found:
        return Path(found)
    raise CnaiError(
        "helm: not found next to the Python running cnai nor on PATH; install it with "
        "`python scripts/install_k8s_tools.py` (part of `make .venv/.installed`)"
    )


def render(
    chart: Path,
    sets: list[str],
    values: list[Path],
    namespace: str | None = None,
    release: str = "cnai-pipeline",
) -> list[Rendered]:
    """Every object ``helm template`` renders from ``chart`` with these values."""
    if not (chart / "Chart.yaml").is_file():
        raise UsageError(f"--chart {chart}: no Chart.yaml there (not a Helm chart folder)")
    for item in sets:
        if "=" not in item:
            raise UsageError(f"--set {item}: expected KEY=VALUE")
    for path in values:
        if not path.is_file():
            raise UsageError(f"--values {path}: no such file")
    command = [str(find_helm()), "template", release, str(chart)]
    if namespace:
        command += ["--namespace", namespace]
    for path in values:
        command += ["--values", str(path)]
    for item in sets:
        command += ["--set", item]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CnaiError(f"helm template {chart}: no answer in {RENDER_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise UsageError(f"--chart {chart}: helm template failed: {message}")
    return split(proc.stdout)


def split(text: str) -> list[Rendered]:
    """The objects of a ``helm template`` output, each with its template's name."""
    found = []
    for chunk in _SEPARATOR.split(text):
        source = _SOURCE.search(chunk)
        try:
            doc = yaml.safe_load(chunk)
        except yaml.YAMLError as exc:
            doc = exc
        if doc is None:
            continue
        found.append(Rendered(source.group(1) if source else "(no # Source)", doc))
    return found
