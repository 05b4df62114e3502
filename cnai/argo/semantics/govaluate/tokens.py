"""govaluate's token kinds, operator symbols, errors and Go value formatting."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnai.argo.semantics.gojson import format_value


class GovaluateError(ValueError):
    """An expression govaluate rejects (parse) or fails on (evaluation)."""


class UnsupportedError(GovaluateError):
    """A construct this implementation refuses rather than evaluate differently from Go."""


@dataclass(frozen=True)
class GoStruct:
    """A Go struct parameter (exported fields by name), reachable with an accessor ``p.Field``."""

    fields: Mapping[str, Any]
    """Field name -> value."""


@dataclass(frozen=True)
class GoRegex:
    """A compiled ``=~``/``!~`` pattern: its Go (RE2) source and the equivalent Python regex."""

    pattern: str
    """The pattern as written, in Go syntax."""
    compiled: re.Pattern[str] = field(compare=False)
    """The Python regex that matches the same strings."""

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (Go's ``MatchString``)."""
        return self.compiled.search(text) is not None


@dataclass(frozen=True)
class Token:
    """One lexer token: its govaluate kind (``NUMERIC``, ``VARIABLE``...) and value."""

    kind: str
    """The TokenKind name, as govaluate spells it."""
    value: Any
    """float for NUMERIC/TIME, str, bool, a compiled pattern, or a list of names (ACCESSOR)."""


PREFIX_SYMBOLS = {"-": "NEGATE", "!": "INVERT", "~": "BITWISE_NOT"}
MODIFIERS = {
    "+": "PLUS",
    "-": "MINUS",
    "*": "MULTIPLY",
    "/": "DIVIDE",
    "%": "MODULUS",
    "**": "EXPONENT",
    "&": "BITWISE_AND",
    "|": "BITWISE_OR",
    "^": "BITWISE_XOR",
    ">>": "BITWISE_RSHIFT",
    "<<": "BITWISE_LSHIFT",
}
LOGICAL = {"&&": "AND", "||": "OR"}
COMPARATORS = {
    "==": "EQ",
    "!=": "NEQ",
    ">": "GT",
    ">=": "GTE",
    "<": "LT",
    "<=": "LTE",
    "=~": "REQ",
    "!~": "NREQ",
    "in": "IN",
}
TERNARY = {"?": "TERNARY_TRUE", ":": "TERNARY_FALSE", "??": "COALESCE"}


def shown(value: Any) -> str:
    """A value as Go's ``%v`` prints it (string concatenation with ``+``, and messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_value(value)
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[" + " ".join(shown(v) for v in value) + "]"
    if isinstance(value, Mapping) and not isinstance(value, GoStruct):
        return "map[" + " ".join(f"{k}:{shown(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, GoRegex):
        return value.pattern
    return str(value)
