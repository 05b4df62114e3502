"""govaluate's evaluation: type checks, operators and short circuits over a planned tree."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from cnai.argo.semantics.govaluate.literals import compile_regex
from cnai.argo.semantics.govaluate.planner import Stage
from cnai.argo.semantics.govaluate.tokens import (
    COMPARATORS,
    LOGICAL,
    MODIFIERS,
    PREFIX_SYMBOLS,
    TERNARY,
    GoRegex,
    GoStruct,
    GovaluateError,
    UnsupportedError,
    shown,
)

_FORMATS = {
    "logical": "Value '{}' cannot be used with the logical operator '{}', it is not a bool",
    "modifier": "Value '{}' cannot be used with the modifier '{}', it is not a number",
    "comparator": "Value '{}' cannot be used with the comparator '{}', it is not a number",
    "ternary": "Value '{}' cannot be used with the ternary operator '{}', it is not a bool",
    "prefix": "Value '{}' cannot be used with the prefix '{}'",
}
_SYMBOL_TEXT = {
    **{v: k for k, v in MODIFIERS.items()},
    **{v: k for k, v in COMPARATORS.items()},
    **{v: k for k, v in LOGICAL.items()},
    **{v: k for k, v in TERNARY.items()},
    **{v: k for k, v in PREFIX_SYMBOLS.items()},
    "EQ": "=",
}


def _format_for(symbol: str) -> str:
    if symbol in ("AND", "OR"):
        return "logical"
    if symbol in COMPARATORS.values():
        return "comparator"
    if symbol in TERNARY.values():
        return "ternary"
    if symbol in PREFIX_SYMBOLS.values():
        return "prefix"
    return "modifier"


def _is_float(value: Any) -> bool:
    return isinstance(value, float)


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _type_error(value: Any, symbol: str) -> GovaluateError:
    text = _FORMATS[_format_for(symbol)].format(shown(value), _SYMBOL_TEXT.get(symbol, ""))
    return GovaluateError(text)


def _check_types(symbol: str, left: Any, right: Any) -> None:
    if symbol in ("GT", "LT", "GTE", "LTE"):
        if not ((_is_float(left) and _is_float(right)) or (_is_string(left) and _is_string(right))):
            raise _type_error(left, symbol)
    elif symbol == "PLUS":
        if not (_is_float(left) and _is_float(right)) and not (
            _is_string(left) or _is_string(right)
        ):
            raise _type_error(left, symbol)
    elif symbol in ("REQ", "NREQ"):
        for value in (left, right):
            if not (_is_string(value) or (value is right and isinstance(value, GoRegex))):
                error = _type_error(value, symbol)
                raise GovaluateError(f"{error} ({_SYMBOL_TEXT[symbol]} needs strings)")
    elif symbol in ("AND", "OR"):
        for value in (left, right):
            if not _is_bool(value):
                raise _type_error(value, symbol)
    elif symbol == "IN":
        if not isinstance(right, list):
            raise _type_error(right, symbol)
    elif symbol in (
        "MINUS",
        "MULTIPLY",
        "DIVIDE",
        "MODULUS",
        "EXPONENT",
        "BITWISE_AND",
        "BITWISE_OR",
        "BITWISE_XOR",
        "BITWISE_LSHIFT",
        "BITWISE_RSHIFT",
    ):
        for value in (left, right):
            if not _is_float(value):
                raise _type_error(value, symbol)
    elif symbol in ("NEGATE", "BITWISE_NOT"):
        if not _is_float(right):
            raise _type_error(right, symbol)
    elif symbol == "INVERT":
        if not _is_bool(right):
            raise _type_error(right, symbol)
    elif symbol == "TERNARY_TRUE" and not _is_bool(left):
        raise _type_error(left, symbol)


def _deep_equal(left: Any, right: Any) -> bool:
    """``reflect.DeepEqual`` over the values govaluate sees."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_deep_equal, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_deep_equal(left[k], right[k]) for k in left)
    if isinstance(left, GoRegex):
        return left is right
    return bool(left == right)


def _int64(value: float) -> int:
    if math.isnan(value) or math.isinf(value):
        raise UnsupportedError(f"a bitwise operation on {shown(value)}")
    return int(value)


def _uint64(value: float) -> int:
    return _int64(value) & 0xFFFFFFFFFFFFFFFF


def _signed(value: int) -> float:
    value &= 0xFFFFFFFFFFFFFFFF
    return float(value - (1 << 64) if value >= 1 << 63 else value)


def _operate(symbol: str, left: Any, right: Any) -> Any:
    if symbol == "PLUS":
        if _is_string(left) or _is_string(right):
            return shown(left) + shown(right)  # fmt.Sprintf("%v%v")
        return left + right
    if symbol == "MINUS":
        return left - right
    if symbol == "MULTIPLY":
        return left * right
    if symbol == "DIVIDE":
        if right == 0:
            return (
                math.nan
                if left == 0 or math.isnan(left)
                else math.copysign(math.inf, left) * (math.copysign(1, right))
            )
        return left / right
    if symbol == "MODULUS":
        try:
            return math.fmod(left, right)
        except ValueError:
            return math.nan
    if symbol == "EXPONENT":
        try:
            return math.pow(left, right)
        except OverflowError:
            odd = right.is_integer() and right % 2 == 1
            return math.copysign(math.inf, left if odd else 1.0)
        except ValueError:
            return math.nan
    if symbol in ("GT", "LT", "GTE", "LTE"):
        return {
            "GT": left > right,
            "LT": left < right,
            "GTE": left >= right,
            "LTE": left <= right,
        }[symbol]
    if symbol == "EQ":
        return _deep_equal(left, right)
    if symbol == "NEQ":
        return not _deep_equal(left, right)
    if symbol in ("REQ", "NREQ"):
        pattern = right if isinstance(right, GoRegex) else compile_regex(right)
        found = pattern.search(left)
        return found if symbol == "REQ" else not found
    if symbol == "IN":
        return any(_interface_equal(left, item) for item in right)
    if symbol == "AND":
        return left and right
    if symbol == "OR":
        return left or right
    if symbol == "BITWISE_AND":
        return _signed(_int64(left) & _int64(right))
    if symbol == "BITWISE_OR":
        return _signed(_int64(left) | _int64(right))
    if symbol == "BITWISE_XOR":
        return _signed(_int64(left) ^ _int64(right))
    if symbol == "BITWISE_LSHIFT":
        shift = _uint64(right)
        return float((_uint64(left) << shift) & 0xFFFFFFFFFFFFFFFF) if shift < 64 else 0.0
    if symbol == "BITWISE_RSHIFT":
        shift = _uint64(right)
        return float(_uint64(left) >> shift) if shift < 64 else 0.0
    if symbol == "NEGATE":
        return -right
    if symbol == "INVERT":
        return not right
    if symbol == "BITWISE_NOT":
        return _signed(~_int64(right))
    if symbol == "TERNARY_TRUE":
        return right if left else None
    if symbol in ("TERNARY_FALSE", "COALESCE"):
        return left if left is not None else right
    if symbol == "SEPARATE":
        return [*left, right] if isinstance(left, list) else [left, right]
    if symbol == "NOOP":
        return right
    raise UnsupportedError(f"operator {symbol}")  # pragma: no cover - every symbol is handled


def _interface_equal(left: Any, right: Any) -> bool:
    """Go's ``==`` on two interface values (``in``): dynamic types and values equal."""
    if isinstance(left, (list, dict)) or isinstance(right, (list, dict)):
        if type(left) is type(right):
            raise UnsupportedError("'in' comparing arrays or objects (Go panics)")
        return False
    return type(left) is type(right) and left == right


_HOLD = object()


def _sanitize(value: Any) -> Any:
    """govaluate's castToFloat64 of a parameter; JSON values made Go-shaped (gjson gives
    float64 for every number, ``[]interface{}`` for arrays, maps for objects)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    if isinstance(value, Mapping) and not isinstance(value, GoStruct):
        return {str(k): _sanitize(v) for k, v in value.items()}
    return value


def _lookup(parameters: Mapping[str, Any] | None, name: str) -> Any:
    if parameters is None or name not in parameters:
        raise GovaluateError(f"No parameter '{name}' found.")
    return _sanitize(parameters[name])


def _access(path: list[str], parameters: Mapping[str, Any] | None, call: bool) -> Any:
    """govaluate's accessor stage: ``p.Field...`` on a struct parameter."""
    value = _lookup(parameters, path[0])
    for previous, name in itertools.pairwise(path):
        if not isinstance(value, GoStruct):
            raise GovaluateError(f"Unable to access '{name}', '{previous}' is not a struct")
        if call:
            raise UnsupportedError(f"the method call '{'.'.join(path)}(...)'")
        if name not in value.fields:
            raise GovaluateError(f"No method or field '{name}' present on parameter '{previous}'")
        value = value.fields[name]
    return _sanitize(value)


def evaluate(stage: Stage, parameters: Mapping[str, Any] | None) -> Any:
    """The value of a planned stage (govaluate's evaluateStage, types checked)."""
    symbol = stage.symbol
    if symbol == "LITERAL":
        return stage.payload
    if symbol == "VALUE":
        return _lookup(parameters, stage.payload)
    left: Any = None
    right: Any = None
    if stage.left is not None:
        left = evaluate(stage.left, parameters)
    if symbol == "AND" and left is False:
        return False
    if symbol == "OR" and left is True:
        return True
    if symbol == "COALESCE" and left is not None:
        return left
    if (symbol == "TERNARY_TRUE" and left is False) or (
        symbol == "TERNARY_FALSE" and left is not None
    ):
        right = _HOLD
    if right is not _HOLD and stage.right is not None:
        right = evaluate(stage.right, parameters)
    if symbol == "ACCESS":
        return _access(stage.payload, parameters, call=stage.right is not None)
    _check_types(symbol, left, right)
    return _operate(symbol, left, right)
