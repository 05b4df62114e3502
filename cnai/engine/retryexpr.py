"""``retryStrategy.expression``: when Argo retries a failed attempt, evaluated locally.

Argo evaluates the expression with expr-lang (github.com/expr-lang/expr) after the
retry policy and the limit allow another attempt; when it is false the node
keeps the failed attempt's phase and is not retried (workflow/controller/operator.go
``processNodeRetries`` in Argo Workflows v4.1.2). Its variables are strings:
``retries``, ``lastRetry.exitCode`` (``"-1"`` when unknown), ``lastRetry.status``,
``lastRetry.duration`` (seconds) and ``lastRetry.message``; ``asInt``/``asFloat``
convert them. With an expression and no ``retryPolicy`` the policy is ``Always``.

No Python library implements expr-lang, so this module parses the subset a retry
condition needs with a Lark grammar and evaluates it with expr's strict typing
(``"2" == 2`` is false, comparing a string with a number is an error):
``|| && !`` (also ``or and not``), ``== != < <= > >=``, ``in [...]``,
``matches 'regex'``, parentheses, string/number/boolean literals, and the
functions ``asInt``, ``asFloat``, ``int``, ``float``, ``string``. Anything else
is refused when the spec is checked, before a run starts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError

from cnai.errors import UsageError

VARIABLES = (
    "retries",
    "lastRetry.exitCode",
    "lastRetry.status",
    "lastRetry.duration",
    "lastRetry.message",
)
"""The names Argo puts in scope of a retry expression."""

_GRAMMAR = r"""
?start: or_
?or_: and_ (OR and_)*
?and_: not_ (AND not_)*
?not_: NOT not_ -> neg
     | comparison
?comparison: atom (COMP atom)?
           | atom IN list_ -> member
           | atom MATCHES atom -> matches
?atom: STRING -> string
     | NUMBER -> number
     | TRUE -> true
     | FALSE -> false
     | NAME "(" [or_ ("," or_)*] ")" -> call
     | NAME ("." NAME)* -> var
     | "(" or_ ")"
     | list_
list_: "[" [or_ ("," or_)*] "]"
OR: "||" | /or\b/
AND: "&&" | /and\b/
NOT: /!(?!=)/ | /not\b/
IN: /in\b/
MATCHES: /matches\b/
TRUE.2: /true\b/
FALSE.2: /false\b/
COMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/
NUMBER: /-?\d+(\.\d+)?/
NAME: /(?!(or|and|not|in|matches|true|false)\b)[A-Za-z_][A-Za-z0-9_]*/
%ignore /\s+/
"""

_FUNCTIONS = ("asInt", "asFloat", "int", "float", "string")


@functools.cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr")


def parse(text: str, where: str) -> Tree[Token]:
    """The syntax tree of ``text``; UsageError naming ``where`` for anything outside the subset."""
    try:
        tree = _parser().parse(text)
    except LarkError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{where}: {text!r} is not a retry expression the local engine evaluates ({first})"
        ) from None
    node: Tree[Token] | Token = tree
    for node in tree.iter_subtrees() if isinstance(tree, Tree) else []:
        if node.data == "var":
            name = ".".join(str(t) for t in node.children)
            if name not in VARIABLES:
                raise UsageError(
                    f"{where}: {name!r} is not a retry variable (known: {', '.join(VARIABLES)})"
                )
        if node.data == "call" and str(node.children[0]) not in _FUNCTIONS:
            raise UsageError(
                f"{where}: function {str(node.children[0])!r} is not supported locally "
                f"(known: {', '.join(_FUNCTIONS)})"
            )
    return tree


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


class _Evaluator:
    def __init__(self, scope: Mapping[str, str], where: str) -> None:
        self.scope = scope
        self.where = where

    def fail(self, message: str) -> UsageError:
        return UsageError(f"{self.where}: {message}")

    def boolean(self, node: Any) -> bool:
        value = self.eval(node)
        if not isinstance(value, bool):
            raise self.fail(f"expected a boolean, got {value!r}")
        return value

    def eval(self, node: Any) -> Any:
        if isinstance(node, Token):
            raise self.fail(f"unexpected {node!r}")
        kind, kids = node.data, node.children
        if kind == "or_":
            return any(self.boolean(k) for k in kids if not isinstance(k, Token))
        if kind == "and_":
            return all(self.boolean(k) for k in kids if not isinstance(k, Token))
        if kind == "neg":
            return not self.boolean(kids[1])
        if kind == "string":
            return _unquote(str(kids[0]))
        if kind == "number":
            text = str(kids[0])
            return float(text) if "." in text else int(text)
        if kind in ("true", "false"):
            return kind == "true"
        if kind == "var":
            return self.scope[".".join(str(t) for t in kids)]
        if kind == "list_":
            return [self.eval(k) for k in kids if k is not None]
        if kind == "call":
            return self.call(str(kids[0]), [self.eval(k) for k in kids[1:] if k is not None])
        if kind == "member":
            return self.eval(kids[0]) in self.eval(kids[2])
        if kind == "matches":
            value, pattern = self.eval(kids[0]), self.eval(kids[2])
            if not isinstance(value, str) or not isinstance(pattern, str):
                raise self.fail("matches needs strings on both sides")
            return re.search(pattern, value) is not None
        if kind == "comparison":
            return self.compare(self.eval(kids[0]), str(kids[1]), self.eval(kids[2]))
        raise self.fail(f"unsupported expression {kind}")

    def call(self, name: str, args: list[Any]) -> Any:
        if len(args) != 1:
            raise self.fail(f"{name}() takes one argument")
        value = args[0]
        try:
            if name in ("asInt", "int"):
                return int(float(value)) if isinstance(value, str) else int(value)
            if name in ("asFloat", "float"):
                return float(value)
        except (TypeError, ValueError):
            raise self.fail(f"{name}({value!r}): not a number") from None
        return value if isinstance(value, str) else str(value)

    def compare(self, left: Any, op: str, right: Any) -> bool:
        numbers = (int, float)
        both_numbers = (
            isinstance(left, numbers)
            and isinstance(right, numbers)
            and not isinstance(left, bool)
            and not isinstance(right, bool)
        )
        if op == "==":
            return bool(left == right) if both_numbers or type(left) is type(right) else False
        if op == "!=":
            return bool(left != right) if both_numbers or type(left) is type(right) else True
        if not both_numbers and not (isinstance(left, str) and isinstance(right, str)):
            raise self.fail(f"cannot compare {left!r} {op} {right!r}")
        return bool(
            {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        )


def should_retry(text: str, scope: Mapping[str, str], where: str) -> bool:
    """Evaluate retry expression ``text`` with the retry variables in ``scope``."""
    tree = parse(text, where)
    return _Evaluator(scope, where).boolean(tree)


def retry_scope(
    attempt_index: int, exit_code: int | None, phase: str, seconds: float, message: str
) -> dict[str, str]:
    """The variables Argo gives a retry expression about the attempt that just ended."""
    return {
        "retries": str(attempt_index),
        "lastRetry.exitCode": "-1" if exit_code is None else str(exit_code),
        "lastRetry.status": phase,
        "lastRetry.duration": f"{seconds:g}",
        "lastRetry.message": message,
    }
