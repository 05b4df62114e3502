"""The subset of govaluate (https://github.com/Knetic/govaluate) that ``exprs`` filters use.

Argo Events evaluates an ``exprs`` filter with govaluate against named fields taken
from the event. This is a small, safe evaluator (no ``eval``) for:

- literals: ``"str"`` / ``'str'``, numbers, ``true``, ``false``; parameters by name or ``[name]``
- ``==  !=  <  <=  >  >=``, regex match ``=~`` / ``!~`` (unanchored, like Go's
  ``regexp.MatchString``), ``&&  ||  !``, ``+`` (numbers or strings), parentheses.

Anything else (ternaries, ``IN``, functions, bit operators...) is refused by
:func:`compile_expr`. As in govaluate, a type mismatch at evaluation is an error,
which makes the filter fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<escaped>\[[^\]]+\])
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op>==|!=|=~|!~|<=|>=|&&|\|\||[<>!+()])
    )""",
    re.VERBOSE,
)
_COMPARATORS = ("==", "!=", "=~", "!~", "<", "<=", ">", ">=")


class ExprError(ValueError):
    """An expression this evaluator refuses, or one that fails on an event."""


@dataclass(frozen=True)
class Node:
    """One node of the parsed expression tree."""

    kind: str
    """``literal``, ``param``, ``unary`` or ``binary``."""
    value: Any = None
    """The literal value, parameter name or operator."""
    children: tuple[Node, ...] = ()
    """Operands of an operator."""


@dataclass(frozen=True)
class Expr:
    """A compiled expression."""

    text: str
    """The expression as written."""
    root: Node
    """The parsed tree."""
    parameters: frozenset[str]
    """Every parameter name the expression reads."""

    def evaluate(self, parameters: Mapping[str, Any]) -> Any:
        """The expression's value for these parameters; ExprError on a type mismatch."""
        return _evaluate(self.root, parameters)


def compile_expr(text: str) -> Expr:
    """Parse ``text``; raise ExprError naming the first construct not supported."""
    tokens = _tokenize(text)
    parser = _Parser(text, tokens)
    root = parser.parse_or()
    if parser.position != len(tokens):
        raise ExprError(f"unexpected {tokens[parser.position][1]!r} in expr {text!r}")
    _check_regex_literals(root, text)
    return Expr(text, root, frozenset(_params(root)))


def _check_regex_literals(node: Node, text: str) -> None:
    """Compile literal patterns of ``=~`` / ``!~`` now, so a bad one fails at start-up."""
    if node.kind == "binary" and node.value in ("=~", "!~"):
        pattern = node.children[1]
        if pattern.kind == "literal" and isinstance(pattern.value, str):
            try:
                re.compile(pattern.value)
            except re.error as exc:
                raise ExprError(f"bad regex {pattern.value!r} in expr {text!r}: {exc}") from exc
    for child in node.children:
        _check_regex_literals(child, text)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            snippet = text[position:].strip()[:10]
            raise ExprError(f"unsupported construct {snippet!r} in expr {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent with govaluate's precedence: || < && < comparison < + < !."""

    def __init__(self, text: str, tokens: list[tuple[str, str]]) -> None:
        self.text = text
        self.tokens = tokens
        self.position = 0

    def _peek(self) -> str | None:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "op":
            return self.tokens[self.position][1]
        return None

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self._peek() == "||":
            self.position += 1
            node = Node("binary", "||", (node, self.parse_and()))
        return node

    def parse_and(self) -> Node:
        node = self.parse_comparison()
        while self._peek() == "&&":
            self.position += 1
            node = Node("binary", "&&", (node, self.parse_comparison()))
        return node

    def parse_comparison(self) -> Node:
        node = self.parse_sum()
        op = self._peek()
        if op in _COMPARATORS:
            self.position += 1
            node = Node("binary", op, (node, self.parse_sum()))
            if self._peek() in _COMPARATORS:
                raise ExprError(f"chained comparison in expr {self.text!r}: add parentheses")
        return node

    def parse_sum(self) -> Node:
        node = self.parse_unary()
        while self._peek() == "+":
            self.position += 1
            node = Node("binary", "+", (node, self.parse_unary()))
        return node

    def parse_unary(self) -> Node:
        if self._peek() == "!":
            self.position += 1
            return Node("unary", "!", (self.parse_unary(),))
        return self.parse_primary()

    def parse_primary(self) -> Node:
        if self.position >= len(self.tokens):
            raise ExprError(f"expr {self.text!r} ends too early")
        kind, text = self.tokens[self.position]
        self.position += 1
        if kind == "op" and text == "(":
            node = self.parse_or()
            if self._peek() != ")":
                raise ExprError(f"missing ')' in expr {self.text!r}")
            self.position += 1
            return node
        if kind == "string":
            return Node("literal", _unquote(text))
        if kind == "number":
            return Node("literal", float(text))
        if kind == "escaped":
            return Node("param", text[1:-1])
        if kind == "name":
            if text in ("true", "false"):
                return Node("literal", text == "true")
            if text.upper() == "IN" or "." in text:
                raise ExprError(f"unsupported construct {text!r} in expr {self.text!r}")
            return Node("param", text)
        raise ExprError(f"unexpected {text!r} in expr {self.text!r}")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _params(node: Node) -> list[str]:
    if node.kind == "param":
        return [str(node.value)]
    return [name for child in node.children for name in _params(child)]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _evaluate(node: Node, parameters: Mapping[str, Any]) -> Any:
    if node.kind == "literal":
        return node.value
    if node.kind == "param":
        if node.value not in parameters:
            raise ExprError(f"no parameter {node.value!r} found")
        value = parameters[node.value]
        return float(value) if _number(value) else value
    if node.kind == "unary":
        operand = _evaluate(node.children[0], parameters)
        if not isinstance(operand, bool):
            raise ExprError(f"'!' needs a boolean, got {operand!r}")
        return not operand
    op = node.value
    left = _evaluate(node.children[0], parameters)
    if op in ("&&", "||"):
        if not isinstance(left, bool):
            raise ExprError(f"{op!r} needs booleans, got {left!r}")
        if (op == "&&" and not left) or (op == "||" and left):
            return left
        right = _evaluate(node.children[1], parameters)
        if not isinstance(right, bool):
            raise ExprError(f"{op!r} needs booleans, got {right!r}")
        return right
    right = _evaluate(node.children[1], parameters)
    return _binary(op, left, right)


def _binary(op: str, left: Any, right: Any) -> Any:
    if op in ("==", "!="):
        same = type(left) is type(right) and left == right
        return same if op == "==" else not same
    if op in ("=~", "!~"):
        if not isinstance(left, str) or not isinstance(right, str):
            raise ExprError(f"{op!r} needs strings, got {left!r} and {right!r}")
        try:
            matched = re.search(right, left) is not None
        except re.error as exc:
            raise ExprError(f"bad regex {right!r}: {exc}") from exc
        return matched if op == "=~" else not matched
    if op == "+":
        if _number(left) and _number(right):
            return left + right
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        raise ExprError(f"'+' needs two numbers or two strings, got {left!r} and {right!r}")
    comparable = (_number(left) and _number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        raise ExprError(f"{op!r} needs two numbers or two strings, got {left!r} and {right!r}")
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right
