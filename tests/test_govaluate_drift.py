"""One govaluate for ``when``, ``depends`` and Sensor ``exprs`` (issue 14 drift).

Before, three hand-written parsers disagreed with govaluate and with each other; each
case below was decided differently by one of them (noted per case).
"""

from __future__ import annotations

import pytest

from cnai.argo.semantics.depends import evaluate_depends
from cnai.argo.semantics.govaluate import GovaluateError, UnsupportedError, compile_expression
from cnai.argo.semantics.when import evaluate_when
from cnai.errors import UsageError


def test_regex_on_a_number_is_refused_in_both_modes() -> None:
    with pytest.raises(UsageError, match="=~ needs strings"):
        evaluate_when("123 =~ '^1'", "spec.when")
    with pytest.raises(GovaluateError, match="=~ needs strings"):
        compile_expression("n =~ '^1'").evaluate({"n": 123})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 1 == 2", True),  # the old when parser had no arithmetic
        ("-1 < 0", True),  # '-' was an invalid token; govaluate reads a prefix
        ("Error in (Failed, Error)", True),  # 'in' was refused
        ("0x10 == 16", True),  # hex literals
        ("true ? yes == yes : false", True),  # ternary
        ("'a' + 1 == 'a1'", True),  # string concatenation
    ],
)
def test_when_accepts_what_argo_accepts(text: str, expected: bool) -> None:
    assert evaluate_when(text, "spec.when") is expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("my.file == my.file", "unexported field"),  # was the string 'my.file'
        ("1.2.3 == 1.2.3", "Unable to parse numeric value"),  # was a string
        ("!done", "Cannot transition token types from PREFIX"),  # Argo's re-check
        ("1abc == 1abc", "Cannot transition token types"),
        ("a = b", "Invalid token"),
    ],
)
def test_when_refuses_what_argo_refuses(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        evaluate_when(text, "spec.when")


@pytest.mark.parametrize(
    ("when", "expr", "parameters"),
    [
        ("abc =~ '^a.c$'", "s =~ '^a.c$'", {"s": "abc"}),
        ("2 > 10", "n > 10", {"n": 2}),
        ("'b' > 'a'", "s > 'a'", {"s": "b"}),
        ("x in (x, y)", "s in ('x', 'y')", {"s": "x"}),
        ("'1' == 1", "s == 1", {"s": "1"}),
    ],
)
def test_when_and_sensor_modes_agree(when: str, expr: str, parameters: dict[str, object]) -> None:
    assert evaluate_when(when, "w") is compile_expression(expr).evaluate(parameters)


def test_regexes_follow_go_re2() -> None:
    # RE2 has no look-arounds or back-references: Go's error, not Python's reading.
    for pattern in ("(?=a)a", "(a)\\\\1"):
        with pytest.raises(GovaluateError, match="Unable to compile regexp pattern"):
            compile_expression(f"s =~ '{pattern}'")
    # '$' ends the text in RE2; Python's '$' also matches before a final newline.
    assert compile_expression("s =~ '^a$'").evaluate({"s": "a\n"}) is False
    # RE2's \d is ASCII only.
    assert compile_expression("s =~ '^\\\\d$'").evaluate({"s": "\u0663"}) is False


def test_constructs_read_differently_by_python_are_refused() -> None:
    with pytest.raises(UnsupportedError, match="POSIX class"):
        compile_expression("s =~ '[[:alpha:]]'")
    with pytest.raises(UsageError, match="not supported by the local engine"):
        evaluate_when("ab =~ '\\\\pL'", "spec.when")
    with pytest.raises(UnsupportedError, match="date/time literal"):
        compile_expression("'Mon Jan  2 15:04:05 2006' == s")


def test_iso_dates_are_times_as_in_govaluate() -> None:
    assert compile_expression("'2014-01-02' < '2014-01-03 10:00'").evaluate() is True
    # A date literal is a number to govaluate, so it never equals a string parameter.
    assert compile_expression("d == '2014-01-02'").evaluate({"d": "2014-01-02"}) is False


def test_depends_refuses_anything_but_task_results() -> None:
    def phases(name: str) -> list[str]:
        return ["Succeeded"]

    assert evaluate_depends("a.Succeeded && !b.Failed", phases, "t") is True
    for text in ("a.Succeeded == true", "a + b", "a.Succeeded ? b : c"):
        with pytest.raises(UsageError, match=r"only task results|cannot parse depends"):
            evaluate_depends(text, phases, "t")


def test_depends_on_an_expanded_task_reads_its_group_phase() -> None:
    """A task group is Succeeded unless a child failed or errored (dag.go); the old
    parser read ``X.Succeeded`` as "any child succeeded"."""
    children = {"a": ["Succeeded", "Failed"], "b": ["Succeeded", "Skipped"]}

    def phases(name: str) -> list[str]:
        return children[name]

    assert evaluate_depends("a.Succeeded", phases, "t") is False
    assert evaluate_depends("a.Failed && a.AnySucceeded && !a.AllFailed", phases, "t") is True
    assert evaluate_depends("b && b.Succeeded", phases, "t") is True


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("'x' + 1000000", "x1e+06"),
        ("'x' + 1234567.5", "x1.2345675e+06"),
        ("'x' + 100000", "x100000"),
        ("'x' + 0.00001", "x1e-05"),
        ("'x' + 2.5", "x2.5"),
    ],
)
def test_string_concatenation_prints_numbers_as_go_percent_v(expression: str, text: str) -> None:
    """govaluate concatenates with ``fmt.Sprintf("%v%v")``; ``%v`` of a float64 is
    ``strconv`` 'g' with the shortest digits, which switches to an exponent from 1e+06
    (ftoa.go: "if precision was the shortest possible, use precision 6"). The
    evaluator used the JSON threshold (1e21) and printed "x1000000"."""
    assert compile_expression(expression).evaluate() == text
