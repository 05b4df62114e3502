"""The compiled WorkflowTemplate of a pipeline, cached per home.

Compiling imports Hera and the pipeline's modules (~2 s); ``cnai run`` reuses the
YAML from ``<home>/runs/.compiled/`` while its key matches: the bytes of every
source file of the pipeline (:meth:`Pipeline.source_files`), the Hera and cnai
versions and the :class:`Platform` it is compiled for.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from cnai import __version__
from cnai.argo.pipeline import Pipeline, Platform


def cache_key(pipeline: Pipeline, platform: Platform) -> str:
    """The cache key of ``pipeline`` compiled for ``platform``."""
    digest = hashlib.sha256()
    for path in pipeline.source_files():
        digest.update(path.encode() + b"\0")
        digest.update(Path(path).read_bytes())
    digest.update(f"{pipeline.name}|{metadata.version('hera')}|{__version__}|".encode())
    digest.update(repr(platform).encode())
    return digest.hexdigest()[:24]


def compiled_template(pipeline: Pipeline, platform: Platform, runs_dir: Path) -> str:
    """The YAML of ``pipeline``'s WorkflowTemplate, from the cache when its key matches."""
    cache = runs_dir / ".compiled" / f"{cache_key(pipeline, platform)}.yaml"
    if cache.exists():
        return cache.read_text()
    text = pipeline.manifests(platform)[f"{pipeline.name}.yaml"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(cache)
    return text
