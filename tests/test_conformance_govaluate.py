"""The one govaluate implementation against upstream's own test tables (issue 14).

Data: tests/data/conformance/ (govaluate_evaluation.json, govaluate_parsing.json,
argo_depends_when.json), each naming its source file and commit. A case marked
``excluded`` uses what Argo never hands to govaluate (functions, Go struct or typed
parameters); function calls must still fail the way govaluate without functions does.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from cnai.argo.semantics.depends import depends_tasks, evaluate_depends, expand_depends
from cnai.argo.semantics.govaluate import GovaluateError, compile_expression
from cnai.argo.semantics.govaluate.tokens import GoRegex
from cnai.argo.semantics.when import evaluate_when
from cnai.errors import UsageError

DATA = Path(__file__).parent / "data" / "conformance"
EVALUATION = json.loads((DATA / "govaluate_evaluation.json").read_text())
PARSING = json.loads((DATA / "govaluate_parsing.json").read_text())
ARGO = json.loads((DATA / "argo_depends_when.json").read_text())


def _value(raw: Any) -> Any:
    """A transcribed Go value as govaluate sees it."""
    if isinstance(raw, dict):
        if "float" in raw:
            return float(raw["float"])
        if "int" in raw:
            return float(raw["int"])
        if "unix_utc" in raw:
            return float(raw["unix_utc"])
        if "array" in raw:
            return [_value(v) for v in raw["array"]]
        return {k: _value(v) for k, v in raw.items()}
    return raw


def _same(got: Any, want: Any) -> bool:
    if type(got) is not type(want):
        return False
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    return bool(got == want)


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [f"{c['suite']}:{c['name']}:{c['input']}" for c in cases]


def _excluded(case: dict[str, Any]) -> None:
    """Function cases fail as in Argo (no functions registered)."""
    with pytest.raises(GovaluateError, match="Undefined function"):
        compile_expression(case["input"])


def _runnable(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cases either Argo mode can express (Go-struct/typed-parameter cases are left
    out here; ``test_exclusions_give_a_reason`` checks each names why)."""
    return [c for c in cases if "excluded" not in c or c["excluded"].startswith("uses functions")]


def test_exclusions_give_a_reason() -> None:
    excluded = [
        c
        for c in EVALUATION["cases"] + EVALUATION["failures"]
        if "excluded" in c and not c["excluded"].startswith("uses functions")
    ]
    assert excluded, "the Go-struct cases of evaluation_test.go are listed, not dropped"
    for case in excluded:
        assert len(case["excluded"]) > 20, case


def test_tables_name_their_sources() -> None:
    for table in (EVALUATION, PARSING):
        assert table["repository"] == "github.com/Knetic/govaluate"
        assert re.fullmatch(r"[0-9a-f]{40}", table["commit"])
    assert ARGO["tag"] == "v4.1.2"


@pytest.mark.parametrize(
    "case", _runnable(EVALUATION["cases"]), ids=_ids(_runnable(EVALUATION["cases"]))
)
def test_evaluation(case: dict[str, Any]) -> None:
    if "excluded" in case:
        _excluded(case)
        return
    parameters = {k: _value(v) for k, v in case["parameters"].items()}
    got = compile_expression(case["input"]).evaluate(parameters)
    assert _same(got, _value(case["expected"])), (got, case["expected"])


@pytest.mark.parametrize(
    "case", _runnable(EVALUATION["failures"]), ids=_ids(_runnable(EVALUATION["failures"]))
)
def test_evaluation_failure(case: dict[str, Any]) -> None:
    if "excluded" in case:
        _excluded(case)
        return
    expression = compile_expression(case["input"])  # a parse error would fail the case
    parameters = {k: _value(v) for k, v in case["parameters"].items()}
    with pytest.raises(GovaluateError) as caught:
        expression.evaluate(parameters)
    assert case["error"] in str(caught.value)


def _strip_unquoted_space(text: str) -> str:
    out, quoted = [], False
    for char in text:
        if not quoted and char.isspace():
            continue
        if char == "'":
            quoted = not quoted
        out.append(char)
    return "".join(out)


def _token_matches(token: Any, want: dict[str, Any]) -> bool:
    if token.kind != want["kind"]:
        return False
    if want.get("value") is None:
        return True
    expected = _value(want["value"])
    actual = token.value.pattern if isinstance(token.value, GoRegex) else token.value
    if isinstance(expected, list):
        return bool(actual == expected)
    return _same(actual, expected)


@pytest.mark.parametrize("case", PARSING["cases"], ids=_ids(PARSING["cases"]))
def test_parsing(case: dict[str, Any]) -> None:
    if "excluded" in case:
        _excluded(case)
        return
    inputs = [case["input"]]
    if case.get("also_without_whitespace"):
        inputs.append(_strip_unquoted_space(case["input"]))
    for text in inputs:
        tokens = compile_expression(text).tokens
        assert len(tokens) == len(case["tokens"]), (text, tokens)
        for token, want in zip(tokens, case["tokens"], strict=True):
            assert _token_matches(token, want), (text, token, want)


@pytest.mark.parametrize("case", PARSING["failures"], ids=_ids(PARSING["failures"]))
def test_parsing_failure(case: dict[str, Any]) -> None:
    with pytest.raises(GovaluateError) as caught:
        compile_expression(case["input"])
    assert case["error"] in str(caught.value)


@pytest.mark.parametrize("text", ARGO["when_true"])
def test_argo_when_true(text: str) -> None:
    assert evaluate_when(text, "when") is True


@pytest.mark.parametrize("text", ARGO["when_false"])
def test_argo_when_false(text: str) -> None:
    assert evaluate_when(text, "when") is False


@pytest.mark.parametrize("case", ARGO["rewrites"], ids=[c["logic"] for c in ARGO["rewrites"]])
def test_argo_depends_rewrite(case: dict[str, Any]) -> None:
    text = case.get("depends") or " && ".join(case["dependencies"])
    flags = case.get("continue_on", {})

    def continue_on(name: str) -> tuple[bool, bool]:
        found = flags.get(name, {})
        return bool(found.get("error")), bool(found.get("failed"))

    assert expand_depends(text, continue_on) == case["logic"]
    assert sorted(depends_tasks(text, "t")) == sorted(case["deps"])


@pytest.mark.parametrize("text", ARGO["results_valid"])
def test_argo_task_results_valid(text: str) -> None:
    depends_tasks(text, "t")


@pytest.mark.parametrize("case", ARGO["results_invalid"], ids=lambda c: c["depends"])
def test_argo_task_results_invalid(case: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match=re.escape(case["error"])):
        depends_tasks(case["depends"], "t")


@pytest.mark.parametrize(
    "case", ARGO["evaluations"], ids=[f"{c['test']}:{c['depends']}" for c in ARGO["evaluations"]]
)
def test_argo_depends_evaluation(case: dict[str, Any]) -> None:
    phases = case["phases"]
    assert evaluate_depends(case["depends"], lambda n: phases[n], "t") is case["execute"]
