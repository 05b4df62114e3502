"""A Sensor dependency's ``filters``, evaluated with Argo Events' semantics.

Mirrors ``pkg/sensors/dependencies/filter.go`` (Argo Events v1.9):

- ``data``: each filter reads ``path`` (gjson) from the event; ``type: string`` values
  are regular expressions matched UNANCHORED against the value's gjson string (JSON
  text for arrays and objects), comparator ``=`` (default) or ``!=``; ``type: number``
  parses values as floats and compares with ``= != < <= > >=``; ``type: bool`` parses
  values like Go's ``strconv.ParseBool``. Within one filter any value may match; the
  filters combine with ``dataLogicalOperator`` (``and`` by default, or ``or``). A
  missing path fails the filter.
- ``exprs``: each expression is evaluated over its named ``fields``; they combine with
  ``exprLogicalOperator``.
- ``data`` and ``exprs`` combine with the dependency's ``filtersLogicalOperator``.

Every decision comes with a short reason, e.g. ``ref refs/heads/dev``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnai.argo.semantics.gjson import GjsonPath, PathError, compile_path
from cnai.argo.semantics.govaluate import Expression, GovaluateError, compile_expression

NUMBER_COMPARATORS = ("", "=", "!=", "<", "<=", ">", ">=")
STRING_COMPARATORS = ("", "=", "!=")
GO_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "true": True,
    "TRUE": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "false": False,
    "FALSE": False,
    "False": False,
}


class FilterSpecError(ValueError):
    """A filter the gateway cannot evaluate faithfully; refused at start-up."""


@dataclass(frozen=True)
class Decision:
    """The outcome of a filter: passed or not, and why not."""

    passed: bool
    """True when the event passes."""
    reason: str = ""
    """Why it did not pass (empty when it passed)."""


@dataclass(frozen=True)
class DataFilter:
    """One ``data`` filter."""

    path: GjsonPath
    """Where the value is read from."""
    type: str
    """``string``, ``number`` or ``bool``."""
    values: tuple[Any, ...]
    """Compiled regexes, floats or bools, by type."""
    comparator: str
    """The comparator as written ("" means equal)."""

    @property
    def label(self) -> str:
        """The path as shown in reasons: without the ``body.`` prefix of webhook events."""
        return self.path.text.replace("body.", "")

    def evaluate(self, event: Any) -> Decision:
        """Apply this filter to one event's data (its JSON text)."""
        result = self.path.get(event)
        if not result.exists():
            return Decision(False, f"{self.label} missing")
        text = result.string()
        shown = _short(text)
        if self.type == "bool":
            ok = any(v == result.bool() for v in self.values)
        elif self.type == "number":
            ok = any(_compare(result.float(), v, self.comparator) for v in self.values)
        else:
            matches = (pattern.search(text) is not None for pattern in self.values)
            ok = any(not m for m in matches) if self.comparator == "!=" else any(matches)
        return Decision(True) if ok else Decision(False, f"{self.label} {shown}")


@dataclass(frozen=True)
class ExprFilter:
    """One ``exprs`` filter: an expression over named fields."""

    expr: Expression
    """The compiled expression."""
    fields: tuple[tuple[str, GjsonPath], ...]
    """(parameter name, path) pairs."""

    def evaluate(self, event: Any) -> Decision:
        """Apply this filter to one event's data (its JSON text)."""
        parameters: dict[str, Any] = {}
        shown: list[str] = []
        for name, path in self.fields:
            result = path.get(event)
            if not result.exists():
                return Decision(False, f"{path.text.replace('body.', '')} missing")
            parameters[name] = result.value()
            shown.append(f"{name}={_short(result.string(), 40)}")
        try:
            result = self.expr.evaluate(parameters)
        except GovaluateError as exc:
            return Decision(False, f"expr error: {exc}")
        if result is True:
            return Decision(True)
        return Decision(False, f"expr {self.expr.text!r} is false for {', '.join(shown)}")


@dataclass(frozen=True)
class DependencyFilter:
    """All filters of one Sensor dependency."""

    data: tuple[DataFilter, ...] = ()
    """The ``data`` filters."""
    data_or: bool = False
    """``dataLogicalOperator: or``."""
    exprs: tuple[ExprFilter, ...] = ()
    """The ``exprs`` filters."""
    exprs_or: bool = False
    """``exprLogicalOperator: or``."""
    filters_or: bool = False
    """``filtersLogicalOperator: or`` (between data and exprs)."""

    def evaluate(self, event: Any) -> Decision:
        """Whether the event passes, with the first reason it did not."""
        results: list[Decision] = []
        if self.exprs:
            results.append(_combine(self.exprs, self.exprs_or, event))
        if self.data:
            results.append(_combine(self.data, self.data_or, event))
        if not results:
            return Decision(True)
        if self.filters_or:
            if any(r.passed for r in results):
                return Decision(True)
            return Decision(False, "; ".join(r.reason for r in results))
        for result in results:
            if not result.passed:
                return result
        return Decision(True)


def _combine(filters: Sequence[DataFilter | ExprFilter], any_of: bool, event: Any) -> Decision:
    reasons = []
    for item in filters:
        result = item.evaluate(event)
        if result.passed and any_of:
            return result
        if not result.passed:
            if not any_of:
                return result
            reasons.append(result.reason)
    return Decision(True) if not any_of else Decision(False, " and ".join(reasons))


def _compare(event_value: float, filter_value: float, comparator: str) -> bool:
    if comparator in ("", "="):
        return event_value == filter_value
    if comparator == "!=":
        return event_value != filter_value
    if comparator == "<":
        return event_value < filter_value
    if comparator == "<=":
        return event_value <= filter_value
    if comparator == ">":
        return event_value > filter_value
    return event_value >= filter_value


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _logical(raw: Mapping[str, Any], key: str, where: str) -> bool:
    value = str(raw.get(key) or "and")
    if value not in ("and", "or"):
        raise FilterSpecError(f"{where}.{key}: expected 'and' or 'or', got {value!r}")
    return value == "or"


def compile_filters(raw: Mapping[str, Any] | None, operator: Any, where: str) -> DependencyFilter:
    """Compile a dependency's ``filters`` mapping; FilterSpecError for what is not supported."""
    raw = raw or {}
    unsupported = sorted(set(raw) - {"data", "exprs", "dataLogicalOperator", "exprLogicalOperator"})
    if unsupported:
        raise FilterSpecError(
            f"{where}.filters.{unsupported[0]}: not supported by the local gateway "
            "(supported: data, exprs)"
        )
    if operator not in (None, "", "and", "or"):
        raise FilterSpecError(f"{where}.filtersLogicalOperator: expected 'and' or 'or'")
    data = tuple(
        _compile_data(item, f"{where}.filters.data[{i}]")
        for i, item in enumerate(raw.get("data") or [])
    )
    exprs = tuple(
        _compile_expr(item, f"{where}.filters.exprs[{i}]")
        for i, item in enumerate(raw.get("exprs") or [])
    )
    return DependencyFilter(
        data=data,
        data_or=_logical(raw, "dataLogicalOperator", f"{where}.filters"),
        exprs=exprs,
        exprs_or=_logical(raw, "exprLogicalOperator", f"{where}.filters"),
        filters_or=operator == "or",
    )


def _compile_data(raw: Mapping[str, Any], where: str) -> DataFilter:
    extra = sorted(set(raw) - {"path", "type", "value", "comparator"})
    if extra:
        raise FilterSpecError(f"{where}.{extra[0]}: not supported by the local gateway")
    path = _path(raw.get("path"), where)
    kind = raw.get("type")
    values = raw.get("value") or []
    comparator = str(raw.get("comparator") or "")
    if not isinstance(values, list) or not values:
        raise FilterSpecError(f"{where}.value: needs at least one value")
    if kind == "string":
        if comparator not in STRING_COMPARATORS:
            raise FilterSpecError(f"{where}.comparator: string filters take '=' or '!='")
        compiled: tuple[Any, ...] = tuple(_regex(str(v), where) for v in values)
    elif kind == "number":
        if comparator not in NUMBER_COMPARATORS:
            raise FilterSpecError(f"{where}.comparator: {comparator!r} is not a comparator")
        try:
            compiled = tuple(float(v) for v in values)
        except (TypeError, ValueError) as exc:
            raise FilterSpecError(f"{where}.value: not a number: {exc}") from exc
    elif kind == "bool":
        if comparator not in ("", "="):
            raise FilterSpecError(f"{where}.comparator: Argo Events ignores it for bool filters")
        if any(str(v) not in GO_BOOLS for v in values):
            raise FilterSpecError(f"{where}.value: not a Go boolean (true/false/1/0/t/f)")
        compiled = tuple(GO_BOOLS[str(v)] for v in values)
    else:
        raise FilterSpecError(f"{where}.type: expected string, number or bool, got {kind!r}")
    return DataFilter(path, str(kind), compiled, comparator)


def _compile_expr(raw: Mapping[str, Any], where: str) -> ExprFilter:
    try:
        expr = compile_expression(str(raw.get("expr") or ""))
    except GovaluateError as exc:
        raise FilterSpecError(f"{where}.expr: {exc}") from exc
    fields = []
    for i, field in enumerate(raw.get("fields") or []):
        fields.append((str(field.get("name")), _path(field.get("path"), f"{where}.fields[{i}]")))
    unknown = sorted(expr.parameters - {name for name, _ in fields})
    if unknown:
        raise FilterSpecError(f"{where}.expr: parameter {unknown[0]!r} is not among its fields")
    if not fields:
        raise FilterSpecError(f"{where}.fields: Argo Events skips an expr without fields")
    return ExprFilter(expr, tuple(fields))


def _path(text: Any, where: str) -> GjsonPath:
    try:
        return compile_path(str(text or ""))
    except PathError as exc:
        raise FilterSpecError(f"{where}.path: {exc}") from exc


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FilterSpecError(f"{where}.value: bad regex {pattern!r}: {exc}") from exc
