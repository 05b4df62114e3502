"""The :class:`~cnai.argo.pipeline.Platform` a configuration describes.

The ``pipeline`` section of the configuration (project ``cnai.yaml``, home
``config.yaml``) may set any field of Platform: ``image``, ``tag``,
``service_account``, ``config_map``, ``secret``, ``run_as``; an absent field keeps
Platform's default. A wrong type or an unknown key is a UsageError naming
``pipeline.<key>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cnai.argo.pipeline import Platform
from cnai.errors import UsageError

if TYPE_CHECKING:
    from cnai.config import Settings

FIELDS = tuple(f.name for f in dataclasses.fields(Platform))
"""Keys the ``pipeline`` section may hold."""


def platform_from_section(section: Mapping[str, Any] | None, where: str = "config") -> Platform:
    """The Platform of a ``pipeline`` section (None or empty: the defaults)."""
    if not section:
        return Platform()
    if not isinstance(section, Mapping):
        raise UsageError(f"{where}: pipeline must be a mapping, got {type(section).__name__}")
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key not in FIELDS:
            raise UsageError(f"{where}: unknown field pipeline.{key} (known: {', '.join(FIELDS)})")
        if value is None:
            continue
        if key == "run_as":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{where}: pipeline.run_as must be a uid >= 1, got {value!r}")
        elif isinstance(value, (dict, list, bool)) or value == "":
            raise UsageError(f"{where}: pipeline.{key} must be a non-empty string, got {value!r}")
        else:
            value = str(value)
        values[key] = value
    return Platform(**values)


def platform_for(settings: Settings) -> Platform:
    """The Platform of ``settings`` (its ``pipeline`` section)."""
    return platform_from_section(settings.sections.get("pipeline"), "pipeline section")


def with_image(platform: Platform, image: str | None, tag: str | None) -> Platform:
    """``platform`` with the image and tag a command line gave (None: kept)."""
    if image:
        platform = dataclasses.replace(platform, image=image)
    if tag:
        platform = dataclasses.replace(platform, tag=tag)
    return platform
