"""The small languages inside an Argo spec, evaluated the way the Argo controller does.

- ``{{...}}`` references (simple templating; ``{{=expr}}`` expressions are refused);
- ``when`` conditions: govaluate after substitution, where bare words are strings
  (Argo turns govaluate variables into strings so ``foo != bar`` needs no quotes);
- ``depends`` expressions over task results (``a && (b.Failed || c.Skipped)``);
- resource ``successCondition``/``failureCondition`` (label-selector style
  requirements on fields of the resource, e.g. ``status.jobStatus == SUCCEEDED``);
- output ``valueFrom.jsonPath`` on a resource (dotted paths such as ``{.status.jobId}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cnai.argo.semantics.gjson import Kind, PathError, Result, compile_path
from cnai.errors import UsageError

REFERENCE = re.compile(r"\{\{\s*(=?)\s*([^{}]*?)\s*\}\}")


class UnresolvedReferenceError(UsageError):
    """A ``{{...}}`` reference that has no value in its scope."""


def references(text: str) -> list[str]:
    """Every ``{{name}}`` inside ``text`` (expressions keep their leading ``=``)."""
    return [("=" if m.group(1) else "") + m.group(2) for m in REFERENCE.finditer(text)]


def substitute(text: str, scope: Mapping[str, str], where: str) -> str:
    """Replace every ``{{name}}`` in ``text`` with ``scope[name]``.

    Raises UnresolvedReference (naming ``where``) for a name the scope lacks, and
    UsageError for ``{{=...}}`` expression templates, which the engine does not run.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            raise UsageError(
                f"{where}: expression template {match.group(0)!r} is not supported "
                "by the local engine (use simple {{...}} references)"
            )
        name = match.group(2)
        if name not in scope:
            raise UnresolvedReferenceError(f"{where}: cannot resolve {{{{{name}}}}}")
        return scope[name]

    return REFERENCE.sub(replace, text)


def substitute_all(value: Any, scope: Mapping[str, str], where: str) -> Any:
    """:func:`substitute` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, list):
        return [substitute_all(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute_all(v, scope, f"{where}.{k}") for k, v in value.items()}
    return value


# ---------------------------------------------------------------- when (govaluate subset)

_WHEN_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'[^']*'|"[^"]*")
      | (?P<num>\d+(?:\.\d+)?(?![A-Za-z_]))
      | (?P<op>==|!=|>=|<=|=~|!~|&&|\|\||[<>!()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    value: Any


def _when_tokens(text: str, where: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _WHEN_TOKEN.match(text, pos)
        if match is None:  # pragma: no cover - the pattern matches any non-space
            break
        pos = match.end()
        if match.group("str") is not None:
            tokens.append(_Token("value", match.group("str")[1:-1]))
        elif match.group("num") is not None:
            tokens.append(_Token("value", float(match.group("num"))))
        elif match.group("op") is not None:
            tokens.append(_Token("op", match.group("op")))
        elif match.group("word") is not None:
            word = match.group("word")
            # govaluate's boolean literals; every other bare word becomes a string.
            literal: Any = {"true": True, "false": False}.get(word, word)
            tokens.append(_Token("value", literal))
        else:
            raise UsageError(
                f"{where}: invalid token {match.group('bad')!r} in when expression {text!r} "
                '(hint: wrap the value in quotes (")'
            )
    return tokens


class _WhenParser:
    """Recursive descent: or -> and -> comparison -> unary -> primary."""

    def __init__(self, tokens: list[_Token], text: str, where: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.text = text
        self.where = where

    def error(self, problem: str) -> UsageError:
        return UsageError(f"{self.where}: when expression {self.text!r}: {problem}")

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take_op(self, *ops: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "op" and token.value in ops:
            self.pos += 1
            return str(token.value)
        return None

    def parse(self) -> Any:
        value = self.parse_or()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek().value!r}")  # type: ignore[union-attr]
        return value

    def parse_or(self) -> Any:
        value = self.parse_and()
        while self.take_op("||"):
            right = self.parse_and()
            value = self.as_bool(value) or self.as_bool(right)
        return value

    def parse_and(self) -> Any:
        value = self.parse_cmp()
        while self.take_op("&&"):
            right = self.parse_cmp()
            value = self.as_bool(value) and self.as_bool(right)
        return value

    def parse_cmp(self) -> Any:
        left = self.parse_unary()
        op = self.take_op("==", "!=", ">=", "<=", ">", "<", "=~", "!~")
        if op is None:
            return left
        right = self.parse_unary()
        if op == "==":
            return type(left) is type(right) and left == right
        if op == "!=":
            return not (type(left) is type(right) and left == right)
        if op in ("=~", "!~"):
            if not isinstance(left, str) or not isinstance(right, str):
                raise self.error(f"{op} needs strings (as govaluate), got {left!r} and {right!r}")
            try:
                matched = re.search(right, left) is not None
            except re.error as exc:
                raise self.error(f"bad regex {right!r}: {exc}") from None
            return matched if op == "=~" else not matched
        if type(left) is not type(right) or isinstance(left, bool):
            raise self.error(f"cannot compare {left!r} {op} {right!r}")
        return {
            ">": left > right,
            "<": left < right,
            ">=": left >= right,
            "<=": left <= right,
        }[op]

    def parse_unary(self) -> Any:
        if self.take_op("!"):
            return not self.as_bool(self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> Any:
        if self.take_op("("):
            value = self.parse_or()
            if not self.take_op(")"):
                raise self.error("missing ')'")
            return value
        token = self.peek()
        if token is None or token.kind != "value":
            raise self.error("expected a value")
        self.pos += 1
        return token.value

    def as_bool(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"{value!r} is not a boolean")
        return value


def evaluate_when(text: str, where: str) -> bool:
    """Evaluate an already-substituted ``when`` expression as Argo does."""
    if not text.strip():
        return True
    parser = _WhenParser(_when_tokens(text, where), text, where)
    result = parser.parse()
    if not isinstance(result, bool):
        raise UsageError(f"{where}: expected boolean evaluation for {text!r}, got {result!r}")
    return result


# ---------------------------------------------------------------- depends

DEPENDS_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned")
_GROUP_RESULTS = ("AnySucceeded", "AllFailed")
_DEPENDS_TOKEN = re.compile(r"\s*(&&|\|\||!|\(|\)|[A-Za-z0-9][-A-Za-z0-9_]*(?:\.[A-Za-z]+)?)")


def _depends_tokens(text: str, where: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _DEPENDS_TOKEN.match(text, pos)
        if match is None:
            raise UsageError(f"{where}: cannot parse depends {text!r} at {text[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _split_operand(token: str, where: str) -> tuple[str, str | None]:
    name, _, result = token.partition(".")
    if result and result not in DEPENDS_RESULTS + _GROUP_RESULTS:
        raise UsageError(f"{where}: unknown task result .{result} in depends")
    return name, result or None


def depends_tasks(text: str, where: str) -> list[str]:
    """Task names a ``depends`` expression refers to, in order of appearance."""
    names: list[str] = []
    for token in _depends_tokens(text, where):
        if token in ("&&", "||", "!", "(", ")"):
            continue
        name, _ = _split_operand(token, where)
        if name not in names:
            names.append(name)
    return names


def evaluate_depends(text: str, phases: Callable[[str], list[str]], where: str) -> bool:
    """Evaluate a ``depends`` expression once every task it names has completed.

    ``phases(name)`` gives the phase of the task, or of each of its expanded
    children (withItems/withParam). A bare name means
    ``name.Succeeded || name.Skipped || name.Daemoned``, as in Argo.
    """
    tokens = _depends_tokens(text, where)
    pos = 0

    def operand(token: str) -> bool:
        name, result = _split_operand(token, where)
        have = phases(name)
        if result is None:
            return all(p in ("Succeeded", "Skipped", "Daemoned") for p in have)
        if result == "AnySucceeded":
            return any(p == "Succeeded" for p in have)
        if result == "AllFailed":
            return bool(have) and all(p == "Failed" for p in have)
        if result == "Errored":
            return any(p == "Error" for p in have)
        return any(p == result for p in have)

    def parse_or() -> bool:
        nonlocal pos
        value = parse_and()
        while pos < len(tokens) and tokens[pos] == "||":
            pos += 1
            right = parse_and()
            value = value or right
        return value

    def parse_and() -> bool:
        nonlocal pos
        value = parse_not()
        while pos < len(tokens) and tokens[pos] == "&&":
            pos += 1
            right = parse_not()
            value = value and right
        return value

    def parse_not() -> bool:
        nonlocal pos
        if pos < len(tokens) and tokens[pos] == "!":
            pos += 1
            return not parse_not()
        if pos < len(tokens) and tokens[pos] == "(":
            pos += 1
            value = parse_or()
            if pos >= len(tokens) or tokens[pos] != ")":
                raise UsageError(f"{where}: missing ')' in depends {text!r}")
            pos += 1
            return value
        if pos >= len(tokens):
            raise UsageError(f"{where}: depends {text!r} ends early")
        token = tokens[pos]
        pos += 1
        return operand(token)

    value = parse_or()
    if pos != len(tokens):
        raise UsageError(f"{where}: unexpected {tokens[pos]!r} in depends {text!r}")
    return value


# ---------------------------------------------------------------- resource conditions

_REQUIREMENT = re.compile(
    r"^\s*(?P<key>!?[A-Za-z0-9_.\-\[\]]+)\s*"
    r"(?:(?P<op>==|!=|=|>|<|\s+in\s+|\s+notin\s+)\s*(?P<value>.*?))?\s*$"
)


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _field(obj: Any, path: str, where: str) -> Result:
    """The gjson result at ``path`` in ``obj`` (Argo reads resource fields with gjson)."""
    try:
        return compile_path(path).get(obj)
    except PathError as exc:
        raise UsageError(f"{where}: {exc}") from exc


def condition_matches(
    text: str, obj: Mapping[str, Any], where: str, any_requirement: bool = False
) -> bool:
    """True when every requirement of a success/failure condition holds for ``obj``.

    With ``any_requirement`` (how Argo evaluates a ``failureCondition``: each
    requirement on its own, workflow/executor/resource.go lines 282-289 at v4.1.2),
    True when at least one holds.
    """
    requirements = _split_requirements(text)
    if any_requirement:
        return any(condition_matches(r, obj, where) for r in requirements)
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise UsageError(f"{where}: cannot parse condition requirement {requirement!r}")
        key, op, raw = match.group("key"), match.group("op"), match.group("value")
        if op is None:
            present = _field(obj, key.lstrip("!"), where).exists()
            if present == key.startswith("!"):
                return False
            continue
        op = op.strip()
        have = _field(obj, key, where).string()
        if op in ("in", "notin"):
            options = [o.strip() for o in raw.strip().strip("()").split(",")]
            ok = (have in options) if op == "in" else (have not in options)
        elif op in ("==", "="):
            ok = have == raw
        elif op == "!=":
            ok = have != raw
        else:
            try:
                ok = float(have) > float(raw) if op == ">" else float(have) < float(raw)
            except ValueError:
                ok = False
        if not ok:
            return False
    return True


def json_path(obj: Any, expression: str, where: str) -> str:
    """A ``{.a.b}`` JSONPath (dotted fields only) evaluated against ``obj`` as text."""
    match = re.fullmatch(r"\{\s*\.([A-Za-z0-9_.\-]+)\s*\}", expression.strip())
    if match is None:
        raise UsageError(
            f"{where}: jsonPath {expression!r} is not supported locally (only {{.dotted.fields}})"
        )
    found = _field(obj, match.group(1).strip("."), where)
    if not found.exists() or found.kind == Kind.NULL:
        raise UsageError(f"{where}: jsonPath {expression!r} found nothing")
    return found.raw if found.kind == Kind.JSON else found.string()


def names_in(texts: Iterable[str]) -> set[str]:
    """Every reference name found in ``texts``."""
    found: set[str] = set()
    for text in texts:
        found.update(references(text))
    return found
