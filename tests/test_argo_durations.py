"""Go duration rules: Go's own ParseDuration table, and Argo's strict vs backoff rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.argo.semantics.durations import (
    go_duration_nanoseconds,
    parse_backoff_duration,
    parse_go_duration,
)
from cnai.errors import UsageError

TABLE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "conformance" / "go_parse_duration.json").read_text(
        encoding="utf-8"
    )
)


@pytest.mark.parametrize("case", TABLE["valid"], ids=lambda case: case["in"])
def test_go_table_valid(case: dict[str, Any]) -> None:
    assert go_duration_nanoseconds(case["in"]) == case["nanoseconds"]
    assert parse_go_duration(case["in"], "memoize.maxAge") == case["nanoseconds"] / 1e9


@pytest.mark.parametrize("text", TABLE["invalid"])
def test_go_table_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        go_duration_nanoseconds(text)
    with pytest.raises(UsageError, match=r"memoize\.maxAge"):
        parse_go_duration(text, "memoize.maxAge")


def test_go_table_names_its_source() -> None:
    assert "src/time/time_test.go" in TABLE["source"] and "commit" in TABLE["source"]


def test_strict_rule_rejects_bare_number() -> None:
    with pytest.raises(UsageError, match=r"memoize\.maxAge: '10' is not a Go duration"):
        parse_go_duration("10", "memoize.maxAge")
    assert parse_go_duration("1h30m", "memoize.maxAge") == 5400.0


def test_backoff_rule_bare_integer_is_seconds() -> None:
    assert parse_backoff_duration("10", "backoff.duration") == 10.0
    assert parse_backoff_duration(3, "backoff.duration") == 3.0
    assert parse_backoff_duration("2m", "backoff.duration") == 120.0
    with pytest.raises(UsageError, match=r"backoff\.duration"):
        parse_backoff_duration("ten", "backoff.duration")


MEMO_WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: memo-age}
spec:
  entrypoint: heavy
  templates:
  - name: heavy
    memoize:
      key: "heavy"
      maxAge: "10"
      cache: {configMap: {name: memo-age}}
    script:
      image: python:3.11
      command: [python]
      source: print(1)
"""


def test_lint_rejects_bare_number_max_age() -> None:
    """Argo parses memoize.maxAge with time.ParseDuration: "10" is an error (was accepted)."""
    from cnai.lint.semantic import semantic_problems

    doc = yaml.safe_load(MEMO_WORKFLOW)
    found = [f"{path}: {message}" for path, message in semantic_problems(doc)]
    assert any("memoize.maxAge" in line and "not a Go duration" in line for line in found)


def test_engine_refuses_bare_number_max_age(tmp_home: Path) -> None:
    """The local engine applies the same strict rule before it starts (and records) a run."""
    from tests.test_engine import run_yaml
    from tests.test_engine_hardening import run_folders

    with pytest.raises(UsageError, match=r"memoize\.maxAge: '10' is not a Go duration"):
        run_yaml(tmp_home, MEMO_WORKFLOW)
    assert run_folders(tmp_home) == []  # nothing recorded
