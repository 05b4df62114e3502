"""The small languages inside an Argo spec, evaluated the way the Argo controller does.

``when`` and ``depends`` (govaluate) live in :mod:`cnai.argo.semantics`; this module keeps:

- ``{{...}}`` references (simple templating; ``{{=expr}}`` expressions are refused);
- resource ``successCondition``/``failureCondition`` (label-selector style
  requirements on fields of the resource, e.g. ``status.jobStatus == SUCCEEDED``);
- output ``valueFrom.jsonPath`` on a resource (dotted paths such as ``{.status.jobId}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from cnai.argo.semantics.gjson import Kind, PathError, Result, compile_path
from cnai.errors import UsageError

REFERENCE = re.compile(r"\{\{\s*(=?)\s*([^{}]*?)\s*\}\}")


class UnresolvedReferenceError(UsageError):
    """A ``{{...}}`` reference that has no value in its scope."""


def references(text: str) -> list[str]:
    """Every ``{{name}}`` inside ``text`` (expressions keep their leading ``=``)."""
    return [("=" if m.group(1) else "") + m.group(2) for m in REFERENCE.finditer(text)]


def substitute(text: str, scope: Mapping[str, str], where: str) -> str:
    """Replace every ``{{name}}`` in ``text`` with ``scope[name]``.

    Raises UnresolvedReference (naming ``where``) for a name the scope lacks, and
    UsageError for ``{{=...}}`` expression templates, which the engine does not run.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            raise UsageError(
                f"{where}: expression template {match.group(0)!r} is not supported "
                "by the local engine (use simple {{...}} references)"
            )
        name = match.group(2)
        if name not in scope:
            raise UnresolvedReferenceError(f"{where}: cannot resolve {{{{{name}}}}}")
        return scope[name]

    return REFERENCE.sub(replace, text)


def substitute_all(value: Any, scope: Mapping[str, str], where: str) -> Any:
    """:func:`substitute` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, list):
        return [substitute_all(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute_all(v, scope, f"{where}.{k}") for k, v in value.items()}
    return value


# ---------------------------------------------------------------- resource conditions

_REQUIREMENT = re.compile(
    r"^\s*(?P<key>!?[A-Za-z0-9_.\-\[\]]+)\s*"
    r"(?:(?P<op>==|!=|=|>|<|\s+in\s+|\s+notin\s+)\s*(?P<value>.*?))?\s*$"
)


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _field(obj: Any, path: str, where: str) -> Result:
    """The gjson result at ``path`` in ``obj`` (Argo reads resource fields with gjson)."""
    try:
        return compile_path(path).get(obj)
    except PathError as exc:
        raise UsageError(f"{where}: {exc}") from exc


def condition_matches(
    text: str, obj: Mapping[str, Any], where: str, any_requirement: bool = False
) -> bool:
    """True when every requirement of a success/failure condition holds for ``obj``.

    With ``any_requirement`` (how Argo evaluates a ``failureCondition``: each
    requirement on its own, workflow/executor/resource.go lines 282-289 at v4.1.2),
    True when at least one holds.
    """
    requirements = _split_requirements(text)
    if any_requirement:
        return any(condition_matches(r, obj, where) for r in requirements)
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise UsageError(f"{where}: cannot parse condition requirement {requirement!r}")
        key, op, raw = match.group("key"), match.group("op"), match.group("value")
        if op is None:
            present = _field(obj, key.lstrip("!"), where).exists()
            if present == key.startswith("!"):
                return False
            continue
        op = op.strip()
        have = _field(obj, key, where).string()
        if op in ("in", "notin"):
            options = [o.strip() for o in raw.strip().strip("()").split(",")]
            ok = (have in options) if op == "in" else (have not in options)
        elif op in ("==", "="):
            ok = have == raw
        elif op == "!=":
            ok = have != raw
        else:
            try:
                ok = float(have) > float(raw) if op == ">" else float(have) < float(raw)
            except ValueError:
                ok = False
        if not ok:
            return False
    return True


def json_path(obj: Any, expression: str, where: str) -> str:
    """A ``{.a.b}`` JSONPath (dotted fields only) evaluated against ``obj`` as text."""
    match = re.fullmatch(r"\{\s*\.([A-Za-z0-9_.\-]+)\s*\}", expression.strip())
    if match is None:
        raise UsageError(
            f"{where}: jsonPath {expression!r} is not supported locally (only {{.dotted.fields}})"
        )
    found = _field(obj, match.group(1).strip("."), where)
    if not found.exists() or found.kind == Kind.NULL:
        raise UsageError(f"{where}: jsonPath {expression!r} found nothing")
    return found.raw if found.kind == Kind.JSON else found.string()


def names_in(texts: Iterable[str]) -> set[str]:
    """Every reference name found in ``texts``."""
    found: set[str] = set()
    for text in texts:
        found.update(references(text))
    return found
