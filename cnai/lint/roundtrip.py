"""Strict round-trip of a document through Hera's Argo models.

The document is validated into ``hera.workflows.models`` and dumped back; every
field path present in the input but absent (or different) in the dump is
reported. Pydantic drops unknown fields silently, so a misspelled field shows up
here even though the JSON schema (no ``additionalProperties: false``) accepts it.
"""

from __future__ import annotations

from typing import Any


def _model(kind: str) -> Any:
    from hera.workflows import models as m

    return {
        "Workflow": m.Workflow,
        "WorkflowTemplate": m.WorkflowTemplate,
        "ClusterWorkflowTemplate": m.ClusterWorkflowTemplate,
        "CronWorkflow": m.CronWorkflow,
    }[kind]


def _same_scalar(a: Any, b: Any) -> bool:
    # IntOrString and quantity fields come back as int or str: compare their text.
    return a == b or str(a) == str(b)


def _diff(original: Any, dumped: Any, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(original, dict):
        if not isinstance(dumped, dict):
            out.append((path, "does not survive the round-trip (wrong type)"))
            return
        for key, value in original.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in dumped:
                if value is None:
                    continue
                out.append((child, "unknown field (dropped by the Argo model: a typo?)"))
                continue
            _diff(value, dumped[key], child, out)
    elif isinstance(original, list):
        if not isinstance(dumped, list) or len(dumped) != len(original):
            out.append((path, "does not survive the round-trip (list changed)"))
            return
        for index, (a, b) in enumerate(zip(original, dumped, strict=True)):
            _diff(a, b, f"{path}[{index}]", out)
    elif not _same_scalar(original, dumped):
        out.append((path, f"value {original!r} comes back as {dumped!r}"))


def roundtrip_problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, problem) for every field that does not survive the Hera model round-trip."""
    from pydantic import ValidationError

    try:
        model = _model(str(doc.get("kind"))).model_validate(doc)
    except ValidationError as exc:
        return [
            (".".join(str(p) for p in error["loc"]), str(error["msg"])) for error in exc.errors()
        ]
    dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    found: list[tuple[str, str]] = []
    _diff(doc, dumped, "", found)
    return found
