"""Local memoization cache: Argo's ConfigMap cache, as one JSON file per cache name.

An entry holds what Argo's entry holds (node id, outputs, creation and last-hit
times) and is found by the evaluated ``memoize.key``; entries older than the
template's ``maxAge`` are ignored, as in Argo. Only Succeeded nodes are saved.
"""

from __future__ import annotations

import fcntl
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cnai.engine.store import write_json_atomically
from cnai.errors import UsageError

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
"""Argo v4's memoization key rule (workflow/controller/cache)."""


def check_key(key: str, where: str) -> None:
    """Raise UsageError when ``key`` breaks Argo's cache key rule."""
    if not KEY_PATTERN.match(key):
        raise UsageError(f"{where}: invalid cache key {key!r} (must match {KEY_PATTERN.pattern})")


class MemoCache:
    """Memoization entries under ``root/<cache name>.json`` (safe across processes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
            raise UsageError(f"memoize.cache.configMap.name {name!r}: not a valid ConfigMap name")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self.root / f"{name}.json"

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=1, sort_keys=True)
        write_json_atomically(path, text, "memoization cache")

    def load(self, name: str, key: str, max_age_seconds: float) -> dict[str, Any] | None:
        """The cached outputs for ``key`` when present and younger than ``max_age_seconds``."""
        with self._locked(name) as path:
            data = self._read(path)
            entry = data.get(key)
            try:
                created = float(entry["creationTimestamp"]) if entry else None
                outputs = dict(entry["outputs"]) if entry else None
            except (KeyError, TypeError, ValueError):
                return None  # a malformed entry (hand-edited, truncated) is a miss
            if not entry or created is None or outputs is None:
                return None
            if time.time() - created > max_age_seconds:
                return None
            entry["lastHitTimestamp"] = time.time()
            self._write(path, data)
            return outputs

    def save(self, name: str, key: str, node_id: str, outputs: dict[str, Any]) -> None:
        """Record the outputs of a Succeeded node under ``key``."""
        with self._locked(name) as path:
            data = self._read(path)
            now = time.time()
            data[key] = {
                "nodeID": node_id,
                "outputs": outputs,
                "creationTimestamp": now,
                "lastHitTimestamp": now,
            }
            self._write(path, data)

    def clear(self, name: str | None = None) -> int:
        """Delete one cache (or all); returns how many entries went."""
        removed = 0
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            if name is None or path.stem == name:
                removed += len(self._read(path))
                path.unlink()
        return removed
