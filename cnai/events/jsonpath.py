"""The subset of gjson path syntax (https://github.com/tidwall/gjson) the Sensor uses.

Argo Events reads event fields with gjson. Supported here, with gjson's meaning:

- ``a.b.c``: object keys; ``\\.`` escapes a dot inside a key
- ``items.0``: an array index
- ``items.#``: the array's length; ``items.#.key``: ``key`` of every element
- ``[p1,p2]``: a multipath, the JSON array of each path's value (missing ones left out)

Wildcards, queries (``#(...)``), modifiers (``@...``) and pipes are refused by
:func:`compile_path`, so a spec using them fails at start-up, never silently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()
"""Returned by :meth:`JsonPath.get` when the path does not exist in the document."""

_UNSUPPORTED = {"*": "wildcard", "?": "wildcard", "@": "modifier", "|": "pipe", "!": "literal"}


class PathError(ValueError):
    """A path uses gjson syntax this module does not implement."""


@dataclass(frozen=True)
class JsonPath:
    """A compiled path: one key sequence, or several for a multipath."""

    text: str
    """The path as written in the YAML."""
    parts: tuple[tuple[str, ...], ...]
    """One tuple of keys per path; more than one for a multipath."""
    multi: bool
    """True for ``[p1,p2,...]``."""

    def get(self, document: Any) -> Any:
        """The value at this path, or :data:`MISSING`."""
        if not self.multi:
            return _walk(document, self.parts[0])
        values = [_walk(document, keys) for keys in self.parts]
        return [v for v in values if v is not MISSING]


def compile_path(text: str) -> JsonPath:
    """Parse ``text``; raise PathError naming the unsupported construct."""
    if not text:
        raise PathError("empty path")
    if text.startswith("[") and text.endswith("]"):
        members = _split(text[1:-1], ",")
        if not members or any(not m for m in members):
            raise PathError(f"malformed multipath {text!r}")
        return JsonPath(text, tuple(_keys(m) for m in members), True)
    if text.startswith(("[", "{")):
        raise PathError(f"malformed multipath {text!r}")
    return JsonPath(text, (_keys(text),), False)


def _keys(text: str) -> tuple[str, ...]:
    keys = _split(text, ".")
    for key in keys:
        if not key:
            raise PathError(f"empty key in path {text!r}")
        for char, what in _UNSUPPORTED.items():
            if char in key.replace("\\" + char, ""):
                raise PathError(f"gjson {what} {char!r} in path {text!r} is not supported")
        if key.startswith("#") and key != "#":
            raise PathError(f"gjson query {key!r} in path {text!r} is not supported")
        if key.startswith(("[", "{")):
            raise PathError(f"nested multipath in {text!r} is not supported")
    return tuple(k.replace("\\", "") for k in keys)


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not escaped with a backslash."""
    out, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


def _walk(value: Any, keys: tuple[str, ...]) -> Any:
    for index, key in enumerate(keys):
        if isinstance(value, dict):
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, list):
            if key == "#":
                rest = keys[index + 1 :]
                if not rest:
                    return len(value)
                mapped = (_walk(item, rest) for item in value)
                return [v for v in mapped if v is not MISSING]
            if not key.isdigit() or int(key) >= len(value):
                return MISSING
            value = value[int(key)]
        else:
            return MISSING
    return value


def as_string(value: Any) -> str:
    """gjson ``Result.String()``: strings as-is, JSON text for arrays and objects."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def as_float(value: Any) -> float:
    """gjson ``Result.Float()``: numbers, numeric strings, true as 1; anything else 0."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


def as_bool(value: Any) -> bool:
    """gjson ``Result.Bool()``: true, non-zero numbers, and strings Go parses as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.lower() in {"1", "t", "true"}
    return False
