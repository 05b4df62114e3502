"""gjson's own test table (tests/data/conformance/gjson_basic.json) against our gjson."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cnai.argo.semantics.gjson import Kind, PathError, compile_path, get

TABLE = json.loads(
    (Path(__file__).parent / "data" / "conformance" / "gjson_basic.json").read_text()
)


def _id(case: dict[str, Any]) -> str:
    return f"{case['test']}:{case['path']}"


@pytest.mark.parametrize("case", TABLE["cases"], ids=_id)
def test_supported_case_agrees(case: dict[str, Any]) -> None:
    document = TABLE["documents"][case["doc"]]
    result = compile_path(case["path"]).get(document)
    if "string" in case:
        assert result.string() == case["string"]
    if "num" in case:
        assert result.num == case["num"]
    if "exists" in case:
        assert result.exists() is case["exists"]
    if "type" in case:
        assert result.kind == Kind[case["type"]]
    if "array_strings" in case:
        assert result.kind == Kind.JSON
        count = int(get(result.raw, "#").num)
        assert [get(result.raw, str(i)).string() for i in range(count)] == case["array_strings"]


@pytest.mark.parametrize("case", TABLE["refused"], ids=_id)
def test_unsupported_case_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(PathError):
        compile_path(case["path"])


def test_table_names_its_source() -> None:
    assert "gjson_test.go" in TABLE["source"] and "v1.19.0" in TABLE["source"]
