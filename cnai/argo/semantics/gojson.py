"""JSON text as Go's ``encoding/json`` writes it, for the event data Argo Events publishes.

Argo Events' webhook EventSource marshals ``{"header": ..., "body": <raw body>}`` with
``json.Marshal``: the body, a ``json.RawMessage``, is compacted (insignificant
whitespace dropped, key order and escapes kept) with ``<``, ``>``, ``&``, U+2028 and
U+2029 escaped; the header map is written with sorted keys. The GitHub EventSource
first decodes the body into a ``map[string]interface{}`` (numbers become float64) and
marshals it again (sorted keys, Go's float format).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_SHORT["\f"] = "\\f"


def compact(text: str) -> str:
    """Go's ``json.Marshal`` of a ``json.RawMessage`` holding valid JSON ``text``."""
    out: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            out.append(_HTML.get(char, char))
        elif char in " \t\r\n":
            continue
        else:
            in_string = char == '"'
            out.append(char)
    return "".join(out)


def marshal(value: Any) -> str:
    """Go's ``json.Marshal`` of a decoded value (dicts as Go maps: keys sorted)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, (int, float)):
        return format_json_float(float(value))  # OverflowError where Go cannot decode it
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{quote(k)}:{marshal(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(marshal(v) for v in value) + "]"
    raise TypeError(f"cannot marshal {type(value).__name__}")


def quote(text: str) -> str:
    """A Go-encoded JSON string (HTML-escaped).

    Go would have decoded a lone surrogate escape as U+FFFD; it is kept here instead, so
    the gateway refuses such a value rather than passing on a silently altered one.
    """
    out = ['"']
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif char in _HTML:
            out.append(_HTML[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def format_json_float(value: float) -> str:
    """A float64 as ``encoding/json`` writes it (ES6 style: ``1e-7``, ``1e+21``, ``100``)."""
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value {value}")
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = _exponent(value)
        mantissa, exponent = text.split("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
        return f"{mantissa}e{sign}{digits}"
    return _fixed(value)


def format_value(value: float) -> str:
    """A float64 as Go's ``fmt`` prints it with ``%v`` (``strconv`` 'g', shortest)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    exponent = Decimal(repr(value)).adjusted()
    if exponent < -4 or exponent >= 6:
        return _exponent(value)
    return _fixed(value)


def _fixed(value: float) -> str:
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _exponent(value: float) -> str:
    """Shortest digits in Go's %e form: ``d.ddde±XX`` (at least two exponent digits)."""
    sign, digits, exp = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    power = exp + len(text) - 1
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
