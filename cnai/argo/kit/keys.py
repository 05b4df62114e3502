"""Work keys, memoization keys and the code version.

A *work key* hashes everything that decides what a step computes; memoized steps use
it as their Argo ``memoize.key`` and a pipeline compares it with the key recorded on
the table (:mod:`cnai.argo.kit.record`) to skip work already done. Keys include the
*code version* (:func:`code_version`), a digest of the code the image runs — cnai
itself and the project's own packages — so a changed image never reuses a result,
also for runs without a git sha (data, nightly and manual runs). Keys match Argo's
memoization key format (``^[a-zA-Z0-9][-a-zA-Z0-9]*$``, see :mod:`cnai.engine.memo`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cnai.errors import UsageError

LIBRARY_PACKAGE = "cnai"
"""Always part of the code version."""
CODE_SUFFIXES = (".py", ".yaml")
"""Which files of a package count as code."""


def work_key(prefix: str, *parts: Any) -> str:
    """``prefix-<24 hex>``: a stable hash of ``parts`` in Argo's cache key format."""
    text = json.dumps([str(p) if not isinstance(p, dict) else p for p in parts], sort_keys=True)
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def code_digest(root: Path, packages: Iterable[str]) -> str:
    """sha256 over the relative path and bytes of every .py/.yaml file of ``root/package``."""
    digest = hashlib.sha256()
    for package in packages:
        files = sorted(
            f
            for f in (root / package).rglob("*")
            if f.suffix in CODE_SUFFIXES and f.is_file() and "__pycache__" not in f.parts
        )
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def package_dir(package: str) -> Path:
    """The folder of an importable package (UsageError when it is not one)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise UsageError(f"code package {package!r}: not an importable package folder")
    return Path(locations[0]).resolve()


@functools.cache
def code_version(packages: tuple[str, ...] = ()) -> str:
    """``<cnai version>+<16 hex>``: digest of cnai and the project's ``packages`` (cached).

    ``packages`` are the project's top-level packages (a Pipeline's
    ``code_packages``); each is digested under its own name, wherever it is installed.
    """
    from cnai import __version__

    digest = hashlib.sha256()
    for package in (LIBRARY_PACKAGE, *sorted(set(packages) - {LIBRARY_PACKAGE})):
        folder = package_dir(package)
        digest.update(code_digest(folder.parent, [folder.name]).encode())
    return f"{__version__}+{digest.hexdigest()[:16]}"
