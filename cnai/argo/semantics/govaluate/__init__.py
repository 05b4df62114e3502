"""govaluate (github.com/Knetic/govaluate v3, the version Argo pins), implemented once.

Argo uses govaluate in two ways, both served by :func:`compile_expression`:

- ``when`` (Argo Workflows ``shouldExecute``, workflow/controller/steps.go at v4.1.2):
  ``{{...}}`` references are substituted as text first; the text is tokenized, every
  variable token becomes a string token (so ``foo != bar`` needs no quotes), the tokens
  are checked and planned again, and the result is evaluated without parameters.
  Use ``variables_as_strings=True`` and evaluate with no parameters.
- Sensor ``exprs`` (Argo Events v1.9 sensors/dependencies/filter.go ``filterExpr``):
  the text is parsed as written and evaluated with typed parameters (the gjson values
  of the filter's fields: numbers, strings, booleans, null, objects, arrays).

The pipeline follows govaluate's: a lexer with its token kinds and its state table
(which also decides whether ``-`` is a prefix or a modifier), the balance and syntax
checks, regex literals compiled up front, the recursive precedence planner with its
re-ordering of same-precedence chains, and the evaluator with govaluate's type checks
and short circuits. Verified against govaluate's own test tables
(tests/data/conformance/govaluate_*.json).

Not supported, refused with :class:`UnsupportedError` (never evaluated differently):
functions (Argo registers none, so a call is govaluate's "Undefined function" error
anyway), ANSIC/UnixDate/RubyDate/Kitchen date literals, and regex syntax that Go's RE2
and Python's ``re`` read differently (look-arounds, back-references, possessive forms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnai.argo.semantics.govaluate.evaluator import evaluate
from cnai.argo.semantics.govaluate.lexer import check_balance, check_syntax, tokenize
from cnai.argo.semantics.govaluate.literals import optimize
from cnai.argo.semantics.govaluate.planner import Stage, TokenStream, plan_tokens, reorder
from cnai.argo.semantics.govaluate.tokens import (
    GoStruct,
    GovaluateError,
    Token,
    UnsupportedError,
    shown,
)

__all__ = [
    "Expression",
    "GoStruct",
    "GovaluateError",
    "Token",
    "UnsupportedError",
    "compile_expression",
    "shown",
    "tokenize",
]


@dataclass(frozen=True)
class Expression:
    """A parsed govaluate expression."""

    text: str
    """The expression as written."""
    tokens: tuple[Token, ...]
    """Its tokens after the regex-literal step (what ``Tokens()`` returns)."""
    stage: Stage | None = field(repr=False, compare=False)
    """The planned evaluation tree."""

    @property
    def variables(self) -> list[str]:
        """Every VARIABLE token's name, in order (govaluate's ``Vars()``)."""
        return [str(t.value) for t in self.tokens if t.kind == "VARIABLE"]

    @property
    def parameters(self) -> frozenset[str]:
        """Every parameter the expression reads, by variable or accessor root."""
        names = set(self.variables)
        names.update(str(t.value[0]) for t in self.tokens if t.kind == "ACCESSOR")
        return frozenset(names)

    def evaluate(self, parameters: Mapping[str, Any] | None = None) -> Any:
        """The value for these parameters (None: none, as Argo's ``when``)."""
        if self.stage is None:
            return None
        return evaluate(self.stage, parameters)


def _from_tokens(text: str, tokens: list[Token]) -> Expression:
    check_balance(tokens)
    check_syntax(tokens)
    tokens = optimize(tokens)
    stream = TokenStream(tokens)
    stage = plan_tokens(stream)
    if stage is not None:
        reorder(stage)
    return Expression(text, tuple(tokens), stage)


def compile_expression(text: str, variables_as_strings: bool = False) -> Expression:
    """Parse ``text`` as govaluate's NewEvaluableExpression does (no functions).

    With ``variables_as_strings`` (Argo's ``when``), every VARIABLE token then becomes
    a STRING token and the tokens are checked and planned again, as ``shouldExecute``
    does. Raises GovaluateError with govaluate's message, or UnsupportedError.
    """
    expression = _from_tokens(text, tokenize(text))
    if not variables_as_strings:
        return expression
    converted = [Token("STRING", t.value) if t.kind == "VARIABLE" else t for t in expression.tokens]
    return _from_tokens(text, converted)
