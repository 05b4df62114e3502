"""Shared helpers: run a JSON-schema validator and report ``(field path, problem)`` pairs.

- ``null`` values are dropped before validating, as the Kubernetes API server prunes
  ``null`` fields that are not declared nullable; the derived schemas therefore need
  no ``anyOf [X, null]`` wrappers and errors name the real type.
- An ``additionalProperties: false`` failure is reported once per unknown field, at
  that field's own path (``spec.templates[0].retryStategy: unknown field ...``).
"""

from __future__ import annotations

from typing import Any

OUTSIDE_SUBSET = "x-cnai-outside-subset"
"""Annotation: property names that upstream defines but a shipped subset leaves out."""
OUTSIDE_MESSAGE = (
    "defined upstream but outside cnai's shipped subset "
    "(RAYJOB_SPEC_FIELDS etc. in cnai/lint/upstream_diff.py)"
)
"""Problem text for such a field."""
SCHEMA_NAME = "x-cnai-name"
"""Annotation: the definition a schema node came from (named in unknown-field errors)."""


def drop_nulls(value: Any) -> Any:
    """``value`` without mapping entries whose value is ``None`` (recursively)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def field_path(parts: Any, prefix: str = "") -> str:
    """``spec.templates[2].name`` from a jsonschema ``absolute_path``."""
    path = prefix
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def schema_problems(validator: Any, instance: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every ``(path, problem)`` of ``instance`` under ``validator`` (sorted by path)."""
    found: list[tuple[str, str]] = []
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
    )
    for error in errors:
        path = field_path(error.absolute_path, prefix)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set((error.schema.get("properties") or {}).keys())
            outside = set(error.schema.get(OUTSIDE_SUBSET) or ())
            owner = error.schema.get(SCHEMA_NAME)
            for key in sorted(set(error.instance) - known, key=str):
                where = field_path([key], path)
                if key in outside:
                    found.append((where, OUTSIDE_MESSAGE))
                else:
                    found.append((where, f"unknown field{f' (not in {owner})' if owner else ''}"))
            continue
        found.append((path or "(document)", f"schema: {error.message}"))
    return found
