"""govaluate's lexer: tokens, the lexer state table, the balance and syntax checks."""

from __future__ import annotations

from typing import Any

from cnai.argo.semantics.govaluate.literals import parse_time
from cnai.argo.semantics.govaluate.tokens import (
    COMPARATORS,
    LOGICAL,
    MODIFIERS,
    PREFIX_SYMBOLS,
    TERNARY,
    GovaluateError,
    Token,
    UnsupportedError,
    shown,
)

_VALUES = ("NUMERIC", "BOOLEAN", "VARIABLE", "STRING")
# kind -> (may end the expression, may follow it)
STATES: dict[str, tuple[bool, frozenset[str]]] = {
    "UNKNOWN": (
        False,
        frozenset({"PREFIX", *_VALUES, "PATTERN", "FUNCTION", "ACCESSOR", "TIME", "CLAUSE"}),
    ),
    "CLAUSE": (
        False,
        frozenset(
            {"PREFIX", *_VALUES, "PATTERN", "FUNCTION", "ACCESSOR", "TIME", "CLAUSE"}
            | {"CLAUSE_CLOSE"}
        ),
    ),
    "CLAUSE_CLOSE": (
        True,
        frozenset(
            {"COMPARATOR", "MODIFIER", *_VALUES, "PATTERN", "TIME", "CLAUSE", "CLAUSE_CLOSE"}
            | {"LOGICALOP", "TERNARY", "SEPARATOR"}
        ),
    ),
    "NUMERIC": (
        True,
        frozenset({"MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "TERNARY", "SEPARATOR"}),
    ),
    "BOOLEAN": (
        True,
        frozenset({"MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "TERNARY", "SEPARATOR"}),
    ),
    "STRING": (
        True,
        frozenset({"MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "TERNARY", "SEPARATOR"}),
    ),
    "TIME": (
        True,
        frozenset({"MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "SEPARATOR"}),
    ),
    "PATTERN": (
        True,
        frozenset({"MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "SEPARATOR"}),
    ),
    "VARIABLE": (
        True,
        frozenset({"MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "TERNARY", "SEPARATOR"}),
    ),
    "MODIFIER": (
        False,
        frozenset(
            {"PREFIX", "NUMERIC", "VARIABLE", "FUNCTION", "ACCESSOR", "STRING", "BOOLEAN"}
            | {"CLAUSE", "CLAUSE_CLOSE"}
        ),
    ),
    "COMPARATOR": (
        False,
        frozenset(
            {"PREFIX", *_VALUES, "FUNCTION", "ACCESSOR", "TIME", "CLAUSE", "CLAUSE_CLOSE"}
            | {"PATTERN"}
        ),
    ),
    "LOGICALOP": (
        False,
        frozenset({"PREFIX", *_VALUES, "FUNCTION", "ACCESSOR", "TIME", "CLAUSE", "CLAUSE_CLOSE"}),
    ),
    "PREFIX": (
        False,
        frozenset(
            {"NUMERIC", "BOOLEAN", "VARIABLE", "FUNCTION", "ACCESSOR", "CLAUSE", "CLAUSE_CLOSE"}
        ),
    ),
    "TERNARY": (
        False,
        frozenset({"PREFIX", *_VALUES, "TIME", "FUNCTION", "ACCESSOR", "CLAUSE", "SEPARATOR"}),
    ),
    "FUNCTION": (False, frozenset({"CLAUSE"})),
    "ACCESSOR": (
        True,
        frozenset(
            {"CLAUSE", "MODIFIER", "COMPARATOR", "LOGICALOP", "CLAUSE_CLOSE", "TERNARY"}
            | {"SEPARATOR"}
        ),
    ),
    "SEPARATOR": (
        False,
        frozenset({"PREFIX", *_VALUES, "TIME", "FUNCTION", "ACCESSOR", "CLAUSE"}),
    ),
}


class _Chars:
    """govaluate's lexerStream: a rune cursor that can rewind."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def can_read(self) -> bool:
        """Whether a character is left."""
        return self.pos < len(self.text)

    def read(self) -> str:
        """The next character; a trailing backslash escape (a Go panic) is refused."""
        if self.pos >= len(self.text):
            raise UnsupportedError("an expression ending in a backslash escape")
        char = self.text[self.pos]
        self.pos += 1
        return char

    def rewind(self, amount: int) -> None:
        """Move back ``amount`` characters (forward when negative)."""
        self.pos -= amount


def _read_until_false(
    chars: _Chars, include_space: bool, break_space: bool, escaping: bool, condition: Any
) -> tuple[str, bool]:
    """Read while ``condition`` holds; True when a terminator (not the end) stopped it."""
    buffer: list[str] = []
    while chars.can_read():
        char = chars.read()
        if escaping and char == "\\":
            buffer.append(chars.read())
            continue
        if char.isspace():
            if break_space and buffer:
                return "".join(buffer), True
            if not include_space:
                continue
        if condition(char):
            buffer.append(char)
        else:
            chars.rewind(1)
            return "".join(buffer), True
    return "".join(buffer), False


def _read_token_until_false(chars: _Chars, condition: Any) -> str:
    chars.rewind(1)
    return _read_until_false(chars, False, True, True, condition)[0]


def _is_numeric(char: str) -> bool:
    return char.isdecimal() or char == "."


def _is_hex(char: str) -> bool:
    return char.isdecimal() or char.lower() in "abcdef"


def _is_variable_name(char: str) -> bool:
    return char.isalpha() or char.isdecimal() or char in "_."


def _is_not_quote(char: str) -> bool:
    return char not in "'\""


def _is_not_alphanumeric(char: str) -> bool:
    return not (char.isdecimal() or char.isalpha() or char in "()[]'\"")


def _go_float(text: str) -> float:
    if not text.isascii() or text.count(".") > 1 or text == ".":
        raise GovaluateError(f"Unable to parse numeric value '{text}' to float64")
    return float(text)


def _read_token(chars: _Chars, state: str) -> Token | None:
    """The next token, or None at the end; a port of govaluate's readToken."""
    while chars.can_read():
        char = chars.read()
        if char.isspace():
            continue
        if _is_numeric(char):
            if chars.can_read() and char == "0":
                char = chars.read()
                if chars.can_read() and char == "x":
                    digits = _read_until_false(chars, False, True, True, _is_hex)[0]
                    try:
                        return Token("NUMERIC", float(int(digits, 16)))
                    except ValueError:
                        raise GovaluateError(
                            f"Unable to parse hex value '{digits}' to uint64"
                        ) from None
                chars.rewind(1)
            return Token("NUMERIC", _go_float(_read_token_until_false(chars, _is_numeric)))
        if char == ",":
            return Token("SEPARATOR", ",")
        if char == "[":
            name, completed = _read_until_false(chars, True, False, True, lambda c: c != "]")
            if not completed:
                raise GovaluateError("Unclosed parameter bracket")
            chars.rewind(-1)
            return Token("VARIABLE", name)
        if char.isalpha():
            word = _read_token_until_false(chars, _is_variable_name)
            token = Token("VARIABLE", word)
            if word in ("true", "false"):
                token = Token("BOOLEAN", word == "true")
            if word in ("in", "IN"):
                token = Token("COMPARATOR", "in")
            if "." in word:
                if word.endswith("."):
                    raise GovaluateError(f"Hanging accessor on token '{word}'")
                parts = word.split(".")
                for part in parts[1:]:
                    if part and part[0].upper() != part[0]:
                        raise GovaluateError(
                            f"Unable to access unexported field '{part}' in token '{word}'"
                        )
                token = Token("ACCESSOR", parts)
            return token
        if not _is_not_quote(char):
            text, completed = _read_until_false(chars, True, False, True, _is_not_quote)
            if not completed:
                raise GovaluateError("Unclosed string literal")
            chars.rewind(-1)
            moment = parse_time(text)
            if moment is not None:
                return Token("TIME", moment)
            return Token("STRING", text)
        if char == "(":
            return Token("CLAUSE", "(")
        if char == ")":
            return Token("CLAUSE_CLOSE", ")")
        symbol = _read_token_until_false(chars, _is_not_alphanumeric)
        if "PREFIX" in STATES[state][1] and symbol in PREFIX_SYMBOLS:
            return Token("PREFIX", symbol)
        for kind, table in (
            ("MODIFIER", MODIFIERS),
            ("LOGICALOP", LOGICAL),
            ("COMPARATOR", COMPARATORS),
            ("TERNARY", TERNARY),
        ):
            if symbol in table:
                return Token(kind, symbol)
        raise GovaluateError(f"Invalid token: '{symbol}'")
    return None


def tokenize(text: str) -> list[Token]:
    """govaluate's tokens for ``text`` (no functions registered, as in Argo)."""
    chars, tokens, state = _Chars(text), [], "UNKNOWN"
    while chars.can_read():
        token = _read_token(chars, state)
        if token is None:
            break
        state = token.kind
        tokens.append(token)
    check_balance(tokens)
    return tokens


def check_balance(tokens: list[Token]) -> None:
    """Refuse unbalanced parentheses."""
    depth = sum(1 if t.kind == "CLAUSE" else -1 if t.kind == "CLAUSE_CLOSE" else 0 for t in tokens)
    if depth != 0:
        raise GovaluateError("Unbalanced parenthesis")


def check_syntax(tokens: list[Token]) -> None:
    """Refuse a token that may not follow the previous one, or a dangling end."""
    state, last = "UNKNOWN", Token("UNKNOWN", None)
    for token in tokens:
        if token.kind not in STATES[state][1]:
            if last.kind == "VARIABLE" and token.kind == "CLAUSE":
                raise GovaluateError(f"Undefined function {last.value}")
            raise GovaluateError(
                f"Cannot transition token types from {state} [{shown(last.value)}] "
                f"to {token.kind} [{shown(token.value)}]"
            )
        state, last = token.kind, token
    if not STATES[state][0]:
        raise GovaluateError("Unexpected end of expression")
