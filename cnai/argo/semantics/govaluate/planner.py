"""govaluate's stage planner: precedence levels and the re-ordering of same-precedence chains."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnai.argo.semantics.govaluate.tokens import (
    COMPARATORS,
    PREFIX_SYMBOLS,
    TERNARY,
    GovaluateError,
    Token,
)

_PRECEDENCE = {
    "NOOP": 0,
    "VALUE": 1,
    "LITERAL": 1,
    "FUNCTIONAL": 2,
    "ACCESS": 2,
    "NEGATE": 3,
    "INVERT": 3,
    "BITWISE_NOT": 3,
    "EXPONENT": 4,
    "PLUS": 5,
    "MINUS": 5,
    "BITWISE_AND": 6,
    "BITWISE_OR": 6,
    "BITWISE_XOR": 6,
    "BITWISE_LSHIFT": 7,
    "BITWISE_RSHIFT": 7,
    "MULTIPLY": 8,
    "DIVIDE": 8,
    "MODULUS": 8,
    **dict.fromkeys(COMPARATORS.values(), 9),
    "TERNARY_TRUE": 10,
    "TERNARY_FALSE": 10,
    "COALESCE": 10,
    "AND": 11,
    "OR": 12,
    "SEPARATE": 13,
}


@dataclass
class Stage:
    """One evaluation stage (govaluate's evaluationStage)."""

    symbol: str
    """The operator (``PLUS``, ``AND``...), ``LITERAL``, ``VALUE`` (a parameter) or ``NOOP``."""
    payload: Any = None
    """The literal value, the parameter name, or the accessor's path."""
    left: Stage | None = None
    """The left operand."""
    right: Stage | None = None
    """The right operand (the only one of a prefix or a parenthesized group)."""

    def swap_with(self, other: Stage) -> None:
        """Exchange operators (not operands) with ``other``, as govaluate's swapWith."""
        self.symbol, other.symbol = other.symbol, self.symbol
        self.payload, other.payload = other.payload, self.payload


class TokenStream:
    """govaluate's tokenStream: a token cursor that can rewind."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def has_next(self) -> bool:
        """Whether a token is left."""
        return self.index < len(self.tokens)

    def next(self) -> Token:
        """The next token."""
        token = self.tokens[self.index]
        self.index += 1
        return token

    def rewind(self) -> None:
        """Step back one token."""
        self.index -= 1


@dataclass(frozen=True)
class _Level:
    """One precedence level: its operators, and the levels that parse its operands."""

    symbols: Mapping[str, str]
    kinds: tuple[str, ...]
    next: str | None = None
    next_right: str | None = None


_LEVELS: dict[str, _Level] = {
    "prefix": _Level(PREFIX_SYMBOLS, ("PREFIX",), None, "function"),
    "exponential": _Level({"**": "EXPONENT"}, ("MODIFIER",), "function"),
    "multiplicative": _Level(
        {"*": "MULTIPLY", "/": "DIVIDE", "%": "MODULUS"}, ("MODIFIER",), "exponential"
    ),
    "additive": _Level({"+": "PLUS", "-": "MINUS"}, ("MODIFIER",), "multiplicative"),
    "shift": _Level({">>": "BITWISE_RSHIFT", "<<": "BITWISE_LSHIFT"}, ("MODIFIER",), "additive"),
    "bitwise": _Level(
        {"^": "BITWISE_XOR", "&": "BITWISE_AND", "|": "BITWISE_OR"}, ("MODIFIER",), "shift"
    ),
    "comparator": _Level(COMPARATORS, ("COMPARATOR",), "bitwise"),
    "and": _Level({"&&": "AND"}, ("LOGICALOP",), "comparator"),
    "or": _Level({"||": "OR"}, ("LOGICALOP",), "and"),
    "ternary": _Level(TERNARY, ("TERNARY",), "or"),
    "separator": _Level({",": "SEPARATE"}, ("SEPARATOR",), "ternary"),
}


def _plan(level: str, stream: TokenStream) -> Stage | None:
    if level == "function":
        return _plan_accessor(stream)
    spec = _LEVELS[level]
    left = _plan(spec.next, stream) if spec.next else None
    if stream.has_next():
        token = stream.next()
        if token.kind in spec.kinds and isinstance(token.value, str):
            symbol = spec.symbols.get(token.value)
            if symbol is not None:
                return Stage(symbol, None, left, _plan(spec.next_right or level, stream))
    stream.rewind()  # unconditional, as in govaluate (harmless: the last token is a value)
    return left


def _plan_accessor(stream: TokenStream) -> Stage | None:
    """An accessor (``p.Field``) or a value; govaluate's function level comes first, but
    Argo registers no functions, so the lexer never makes a FUNCTION token."""
    if not stream.has_next():
        return None
    token = stream.next()
    if token.kind != "ACCESSOR":
        stream.rewind()
        return _plan_value(stream)
    right = None
    if stream.has_next():
        following = stream.next()
        stream.rewind()
        if following.kind == "CLAUSE":
            right = plan_tokens(stream)
    return Stage("ACCESS", token.value, None, right)


def _plan_value(stream: TokenStream) -> Stage | None:
    if not stream.has_next():
        return None
    token = stream.next()
    if token.kind == "CLAUSE":
        inner = plan_tokens(stream)
        stream.next()
        return Stage("NOOP", None, None, inner)
    if token.kind == "CLAUSE_CLOSE":
        stream.rewind()
        return None
    if token.kind == "VARIABLE":
        return Stage("VALUE", token.value)
    if token.kind in ("NUMERIC", "STRING", "PATTERN", "BOOLEAN", "TIME"):
        return Stage("LITERAL", token.value)
    if token.kind == "PREFIX":
        stream.rewind()
        return _plan("prefix", stream)
    raise GovaluateError(f"Unable to plan token kind: '{token.kind}', value: '{token.value}'")


def plan_tokens(stream: TokenStream) -> Stage | None:
    """The evaluation tree for the rest of the stream (None when empty)."""
    if not stream.has_next():
        return None
    return _plan("separator", stream)


def reorder(root: Stage) -> None:
    """govaluate's reorderStages: make same-precedence chains evaluate left to right."""
    same: list[Stage] = []
    precedence = _PRECEDENCE[root.symbol]
    stage: Stage | None = root
    while stage is not None:
        current, stage = stage, stage.right
        if current.left is not None:
            reorder(current.left)
        if _PRECEDENCE[current.symbol] == precedence:
            same.append(current)
            continue
        if len(same) > 1:
            _mirror(same)
        same, precedence = [current], _PRECEDENCE[current.symbol]
    if len(same) > 1:
        _mirror(same)


def _mirror(stages: list[Stage]) -> None:
    for stage in stages:
        stage.left, stage.right = stage.right, stage.left
    root, end = stages[0], stages[-1]
    end.left, root.right = root.right, end.left
    count = len(stages)
    for i in range((count - 2) // 2 + 1):
        front, inverse = stages[i + 1], stages[count - i - 1]
        front.right, inverse.right = inverse.right, front.right
    for i in range(count // 2):
        stages[i].swap_with(stages[count - i - 1])
