"""Trigger ``parameters``: from the events that fired into the Workflow's arguments.

Mirrors ``ApplyParams`` / ``ResolveParamValue`` of Argo Events' triggers:

- a source whose dependency fired yields its ``dataTemplate`` result, else the value
  at ``dataKey`` (gjson; JSON text for arrays and objects), else its default ``value``;
- a source whose dependency did not fire yields its default ``value`` (or nothing);
- the value is written at ``dest`` (dotted path, numeric list indices) with
  ``operation`` overwrite (default), ``append`` or ``prepend`` (the current value read
  with gjson, as Argo Events does).

``dataKey`` is read with :mod:`cnai.argo.semantics.gjson` from the event's JSON text:
objects, arrays and ``null`` as their raw text, anything else as gjson's ``String()``.

``dataTemplate`` is a Go template over gjson's ``Value()`` of the event (numbers are
float64 and print as Go's ``%v`` does); the subset supported is constant text and
``{{ .Input.a.b }}`` optionally piped into ``trimPrefix "x"`` / ``trimSuffix "x"``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnai.argo.semantics.gjson import GjsonPath, Kind, PathError, compile_path
from cnai.argo.semantics.gojson import format_value

_DEST = re.compile(r"[^.\\*?#@|!\[\]{}():,\"]+(?:\.[^.\\*?#@|!\[\]{}():,\"]+)*")
"""What ``dest`` may be: keys with no gjson/sjson syntax in them, and list indices."""

_TEMPLATE = re.compile(
    r"^\{\{-?\s*\.Input((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*"
    r"(?:\|\s*(trimPrefix|trimSuffix)\s+\"((?:[^\"\\]|\\.)*)\"\s*)?-?\}\}$"
)


class ParamSpecError(ValueError):
    """A trigger parameter the gateway cannot resolve faithfully; refused at start-up."""


@dataclass(frozen=True)
class DataTemplate:
    """A compiled ``dataTemplate``."""

    text: str
    """The template as written."""
    keys: tuple[str, ...] | None
    """Keys under ``.Input``; None for constant text."""
    function: str | None = None
    """``trimPrefix`` / ``trimSuffix`` or None."""
    argument: str = ""
    """The function's string argument."""

    def render(self, data: Any) -> str | None:
        """The text rendered on the event ``data`` (JSON text), or None where Go would
        fail or print ``<no value>``."""
        if self.keys is None:
            return self.text or None
        text = data if isinstance(data, str) else json.dumps(data)
        try:
            value: Any = json.loads(text, parse_int=float)
        except ValueError:
            return None
        for key in self.keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        if self.function is not None:
            if not isinstance(value, str):
                return None
            if self.function == "trimPrefix" and value.startswith(self.argument):
                value = value[len(self.argument) :]
            elif self.function == "trimSuffix" and self.argument and value.endswith(self.argument):
                value = value[: -len(self.argument)]
        return _go_text(value) or None


@dataclass(frozen=True)
class TriggerParameter:
    """One compiled trigger parameter."""

    dependency: str
    """The dependency whose event feeds it."""
    dest: tuple[str, ...]
    """Where the value goes in the resource."""
    data_key: GjsonPath | None
    """``src.dataKey``."""
    template: DataTemplate | None
    """``src.dataTemplate``."""
    default: str | None
    """``src.value``."""
    operation: str
    """``overwrite``, ``append`` or ``prepend``."""

    def resolve(self, events: Mapping[str, Any]) -> str | None:
        """This parameter's value given the fired events (name -> event data)."""
        if self.dependency not in events:
            return self.default
        data = events[self.dependency]
        if self.template is not None:
            rendered = self.template.render(data)
            if rendered is not None:
                return rendered
        if self.data_key is not None:
            result = self.data_key.get(data)
            if result.exists():
                return result.raw if result.kind in (Kind.JSON, Kind.NULL) else result.string()
        return self.default


def compile_parameter(raw: Mapping[str, Any], where: str) -> TriggerParameter:
    """Compile one ``parameters`` entry; ParamSpecError for what is not supported."""
    src = raw.get("src") or {}
    unknown = sorted(set(src) - {"dependencyName", "dataKey", "dataTemplate", "value"})
    if unknown:
        raise ParamSpecError(f"{where}.src.{unknown[0]}: not supported by the local gateway")
    operation = str(raw.get("operation") or "overwrite")
    if operation not in ("overwrite", "append", "prepend"):
        raise ParamSpecError(f"{where}.operation: {operation!r} is not an operation")
    dest = str(raw.get("dest") or "")
    if not _DEST.fullmatch(dest):
        raise ParamSpecError(
            f"{where}.dest: a dotted path of plain keys and list indices is required"
        )
    try:
        data_key = compile_path(str(src["dataKey"])) if src.get("dataKey") else None
    except PathError as exc:
        raise ParamSpecError(f"{where}.src.dataKey: {exc}") from exc
    template = _compile_template(src.get("dataTemplate"), where)
    default = src.get("value")
    if data_key is None and template is None and default is None:
        # Argo would inject the whole event here; nothing in a Workflow argument wants that.
        raise ParamSpecError(f"{where}.src: needs dataKey, dataTemplate or value")
    return TriggerParameter(
        dependency=str(src.get("dependencyName") or ""),
        dest=tuple(dest.split(".")),
        data_key=data_key,
        template=template,
        default=None if default is None else str(default),
        operation=operation,
    )


def _compile_template(text: Any, where: str) -> DataTemplate | None:
    if text is None or text == "":
        return None
    text = str(text)
    if "{{" not in text and "}}" not in text:
        return DataTemplate(text, None)
    match = _TEMPLATE.match(text.strip())
    if not match:
        raise ParamSpecError(
            f"{where}.src.dataTemplate: only constant text or "
            '{{ .Input.path [| trimPrefix "x" | trimSuffix "x"] }} is supported'
        )
    keys = tuple(match.group(1).lstrip(".").split("."))
    argument = re.sub(r"\\(.)", r"\1", match.group(3) or "")
    return DataTemplate(text, keys, match.group(2), argument)


def apply_parameters(
    resource: Mapping[str, Any],
    parameters: list[TriggerParameter],
    events: Mapping[str, Any],
) -> dict[str, Any]:
    """A copy of ``resource`` with every parameter applied in order."""
    result: dict[str, Any] = copy.deepcopy(dict(resource))
    for parameter in parameters:
        value = parameter.resolve(events)
        if value is None:
            continue
        if parameter.operation != "overwrite":
            current = compile_path(".".join(parameter.dest)).get(result)
            if current.exists():
                text = current.string()
                value = text + value if parameter.operation == "append" else value + text
        _set(result, parameter.dest, value)
    return result


def _go_text(value: Any) -> str | None:
    """``value`` (from gjson's ``Value()``) as a Go template prints it; None for maps/lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_value(value)
    if isinstance(value, str):
        return value
    return None


def _set(document: Any, keys: tuple[str, ...], value: str) -> None:
    for index, key in enumerate(keys):
        last = index == len(keys) - 1
        if isinstance(document, list):
            if not key.isdigit():
                raise ParamSpecError(f"dest {'.'.join(keys)}: {key!r} indexes a list")
            position = int(key)
            while len(document) <= position:
                document.append({})
            if last:
                document[position] = value
            else:
                document = document[position]
        else:
            if last:
                document[key] = value
            else:
                document = document.setdefault(key, {})


def workflow_arguments(resource: Mapping[str, Any]) -> dict[str, str]:
    """``spec.arguments.parameters`` of a Workflow as name -> value."""
    spec = resource.get("spec")
    arguments = spec.get("arguments") if isinstance(spec, dict) else None
    parameters = arguments.get("parameters") if isinstance(arguments, dict) else None
    if not isinstance(parameters, list):
        return {}
    return {
        str(p["name"]): _argument_text(p.get("value", ""))
        for p in parameters
        if isinstance(p, dict) and "name" in p
    }


def _argument_text(value: Any) -> str:
    """A parameter value written in the trigger's YAML, as the Workflow would hold it."""
    if isinstance(value, str):
        return value
    return compile_path("v").get({"v": value}).string()
