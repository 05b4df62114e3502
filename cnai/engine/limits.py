"""The local engine's limits: documented settings with safe defaults.

They live in the ``engine`` section of the config file (``<home>/config.yaml`` or
``$CNAI_CONFIG``)::

    engine:
      max_document_bytes: 4194304   # size of a workflow YAML file
      max_document_nodes: 200000    # YAML nodes once aliases are expanded
      max_document_depth: 100       # nesting of mappings and lists in that YAML
      max_template_depth: 100       # templates calling templates (Argo's own limit)
      max_nodes: 10000              # nodes (task instances) one run may create
      max_workers: 32               # tasks of one DAG or one fan-out started at once

Every value is a positive integer; anything else is refused (exit 2, naming the
field). docs/limits.md says what a user sees when each one is hit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from cnai.errors import UsageError

SECTION = "engine"


@dataclass(frozen=True)
class EngineLimits:
    """Bounds on what one workflow document and one run may use."""

    max_document_bytes: int = 4 * 1024 * 1024
    """Largest workflow YAML (``cnai run --file``, a run's recorded workflow) read, in bytes."""
    max_document_nodes: int = 200_000
    """Most YAML nodes a document may hold once its aliases are expanded (alias bombs)."""
    max_document_depth: int = 100
    """Deepest nesting of mappings/lists in a workflow document."""
    max_template_depth: int = 100
    """Deepest chain of templates calling templates (Argo's controller stops at 100 too)."""
    max_nodes: int = 10_000
    """Most nodes (task instances, fanned-out items, nested DAGs) one run may create."""
    max_workers: int = 32
    """Most tasks of one DAG, or items of one withItems/withParam fan-out, started at once."""


DEFAULT_LIMITS = EngineLimits()
"""The limits when the config file says nothing."""


def parse_limits(raw: Any, source: str = "config") -> EngineLimits:
    """The ``engine`` section of a config file as limits; UsageError naming a bad field."""
    if raw is None:
        return DEFAULT_LIMITS
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: {SECTION} must be a mapping")
    known = {f.name for f in fields(EngineLimits)}
    values: dict[str, int] = {}
    for key, value in raw.items():
        if key not in known:
            raise UsageError(
                f"{source}: unknown field {SECTION}.{key} (known: {', '.join(sorted(known))})"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{source}: {SECTION}.{key} must be a positive integer, got {value!r}")
        values[str(key)] = value
    return EngineLimits(**values)


def limits_for(settings: Any) -> EngineLimits:
    """The limits of a :class:`cnai.config.Settings` (its config file's ``engine`` section)."""
    sections = getattr(settings, "sections", None) or {}
    return parse_limits(sections.get(SECTION), f"{getattr(settings, 'home', '')}/config.yaml")
