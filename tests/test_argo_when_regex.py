"""``when`` regex operators refuse non-string operands, like govaluate (issue 14 drift)."""

from __future__ import annotations

import pytest

from cnai.argo.semantics.when import evaluate_when
from cnai.errors import UsageError


def test_regex_on_a_number_is_refused() -> None:
    with pytest.raises(UsageError, match="needs strings"):
        evaluate_when("123 =~ '^1'", "spec.when")


def test_regex_on_strings_still_matches() -> None:
    assert evaluate_when("'123' =~ '^1'", "spec.when") is True
    assert evaluate_when("abc !~ 'z'", "spec.when") is True


def test_bad_regex_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="bad regex"):
        evaluate_when("'a' =~ '('", "spec.when")
