"""gjson paths (github.com/tidwall/gjson v1.19.0, the version Argo Events v1.9.11 pins).

Argo Events reads event fields with ``gjson.GetBytes(payload, path)`` and turns the
result into text with ``Result.String()``. This module does the same on the raw JSON
text, scanning it the way gjson does, so results agree byte for byte:

- a string comes out unescaped; an object or array is the raw slice of the document
  (key order, spacing and escapes as written, never re-serialised);
- a number whose text is an optionally negative run of digits comes out as written
  (so big integers keep every digit); any other number is formatted like Go's
  ``strconv.FormatFloat(f, 'f', -1, 64)`` (``1e-07`` gives ``0.0000001``);
- ``true``/``false`` as such, ``null`` as the empty string (but it exists).

Path syntax supported, with gjson's meaning: keys separated by ``.`` (``\\.`` escapes a
dot, ``\\`` any character), the wildcards ``*`` and ``?`` inside a key (first matching
key wins), an array index, ``#`` (array length), ``#.rest`` (``rest`` of every
element, as a JSON array), and a top-level multipath ``[p1,p2]``. Queries
(``#(...)``), modifiers (``@...``), pipes (``|``), literals (``!...``), object
multipaths (``{...}``) and JSON lines (``..``) are refused by :func:`compile_path`
with a message naming the construct, never evaluated differently.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class PathError(ValueError):
    """A path uses gjson syntax this module does not implement."""


class Kind(enum.IntEnum):
    """gjson's ``Type`` (the order is gjson's)."""

    NULL = 0
    FALSE = 1
    NUMBER = 2
    STRING = 3
    TRUE = 4
    JSON = 5


@dataclass(frozen=True)
class Result:
    """gjson's ``Result``: the type, the raw text, and the decoded string or number."""

    kind: Kind = Kind.NULL
    """The JSON type of the value."""
    raw: str = ""
    """The value's text as it appears in the document ("" when nothing was found)."""
    text: str = ""
    """The decoded string, for strings."""
    num: float = 0.0
    """The number, for numbers (``strconv.ParseFloat`` of the raw text)."""

    def exists(self) -> bool:
        """gjson ``Exists()``: the path found a value (``null`` included)."""
        return self.kind != Kind.NULL or self.raw != ""

    def string(self) -> str:
        """gjson ``String()``."""
        if self.kind == Kind.FALSE:
            return "false"
        if self.kind == Kind.TRUE:
            return "true"
        if self.kind == Kind.STRING:
            return self.text
        if self.kind == Kind.JSON:
            return self.raw
        if self.kind == Kind.NUMBER:
            digits = self.raw[1:] if self.raw.startswith("-") else self.raw
            if self.raw and all("0" <= c <= "9" for c in digits):
                return self.raw
            return format_float(self.num)
        return ""

    def float(self) -> float:
        """gjson ``Float()``: numbers, strings Go parses as floats, true as 1; else 0."""
        if self.kind == Kind.TRUE:
            return 1.0
        if self.kind == Kind.NUMBER:
            return self.num
        if self.kind == Kind.STRING:
            return _parse_float(self.text)
        return 0.0

    def bool(self) -> bool:
        """gjson ``Bool()``: true, non-zero numbers, strings ``strconv.ParseBool`` accepts."""
        if self.kind == Kind.TRUE:
            return True
        if self.kind == Kind.NUMBER:
            return self.num != 0
        if self.kind == Kind.STRING:
            return self.text.lower() in ("1", "t", "true")
        return False

    def value(self) -> Any:
        """gjson ``Value()``: float, str, bool, None, or the parsed object/array."""
        if self.kind == Kind.STRING:
            return self.text
        if self.kind == Kind.NUMBER:
            return self.num
        if self.kind in (Kind.TRUE, Kind.FALSE):
            return self.kind == Kind.TRUE
        if self.kind == Kind.JSON:
            try:
                return json.loads(self.raw, parse_int=float)
            except ValueError:
                return None
        return None


def format_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``: shortest digits, no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.I)


def _parse_float(text: str) -> float:
    """Go's ``strconv.ParseFloat(text, 64)`` for decimal text; 0 where Go fails."""
    if not _GO_FLOAT.fullmatch(text):
        return 0.0
    return float(text)


# ------------------------------------------------------------------ compiling paths


@dataclass(frozen=True)
class GjsonPath:
    """A checked path; :meth:`get` evaluates it on JSON text."""

    text: str
    """The path as written."""
    members: tuple[str, ...]
    """The member paths of a multipath ``[p1,p2]``; empty for a plain path."""

    def get(self, document: str | Any) -> Result:
        """The result on ``document`` (JSON text; other values are JSON-encoded first)."""
        if not isinstance(document, str):
            document = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        if not self.members:
            return get(document, self.text)
        found = [get(document, member) for member in self.members]
        raws = [r.raw or r.string() or "null" for r in found if r.exists()]
        return Result(Kind.JSON, "[" + ",".join(raws) + "]")


def compile_path(text: str) -> GjsonPath:
    """Check ``text``; PathError naming any construct outside the supported subset."""
    if not text:
        raise PathError("empty path")
    if text.startswith("["):
        members = _split_multipath(text)
        for member in members:
            _check(member, text)
        return GjsonPath(text, tuple(members))
    _check(text, text)
    return GjsonPath(text, ())


def _split_multipath(text: str) -> list[str]:
    members, start, i = [], 1, 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char in '[]{}()"':
            if char == "]" and i == len(text) - 1:
                members.append(text[start:i])
                if any(not m for m in members):
                    break
                return members
            raise PathError(f"nested selector {char!r} in multipath {text!r} is not supported")
        if char == ":":
            raise PathError(f"named selector in multipath {text!r} is not supported")
        if char == ",":
            members.append(text[start:i])
            start = i + 1
        i += 1
    raise PathError(f"malformed multipath {text!r} (only [path,path,...] is supported)")


def _check(path: str, whole: str) -> None:
    if path.startswith(".."):
        raise PathError(f"gjson JSON-lines path {whole!r} is not supported")
    if path.startswith("!"):
        raise PathError(f"gjson literal {whole!r} is not supported")
    if path.startswith("{"):
        raise PathError(f"gjson object multipath {whole!r} is not supported")
    for component in _components(path):
        if not component:
            raise PathError(f"empty key in path {whole!r}")
        if "|" in component:
            raise PathError(f"gjson pipe '|' in path {whole!r} is not supported")
        if component.startswith("@"):
            raise PathError(f"gjson modifier {component!r} in path {whole!r} is not supported")
        if component.startswith(("#(", "#[")):
            raise PathError(f"gjson query {component!r} in path {whole!r} is not supported")
        if component.startswith(("[", "{")):
            raise PathError(f"nested multipath in path {whole!r} is not supported")
        if "\\" in component and re.search(r"(?<!\\)(?:\\\\)*[*?]", component):
            raise PathError(f"escapes inside a wildcard key in {whole!r} are not supported")


def _components(path: str) -> list[str]:
    """The path split on unescaped dots (escapes kept)."""
    out, current, i = [], "", 0
    while i < len(path):
        if path[i] == "\\" and i + 1 < len(path):
            current += path[i : i + 2]
            i += 2
            continue
        if path[i] == ".":
            out.append(current)
            current = ""
        else:
            current += path[i]
        i += 1
    out.append(current)
    return out


# ------------------------------------------------------------------ evaluating (gjson's scanner)


def get(document: str, path: str) -> Result:
    """gjson ``Get(document, path)`` for a path :func:`compile_path` accepts."""
    for i, char in enumerate(document):
        if char == "{":
            return _Scan(document).object(i + 1, path)[1]
        if char == "[":
            return _Scan(document).array(i + 1, path)[1]
    return Result()


_SQUASH_TOKEN = re.compile(r'["\[\]{}()]')
_QUOTE = re.compile(r'"')
_NUMBER_END = re.compile(r"[\x00- ,\]}]")
_NOT_LOWER = re.compile(r"[^a-z]")


def _string_end(js: str, i: int) -> tuple[int, bool, bool]:
    """From just after an opening quote: (index after the closing quote, escaped, ok)."""
    escaped = False
    while True:
        match = _QUOTE.search(js, i)
        if match is None:
            return len(js), escaped, False
        q = match.start()
        backslashes = 0
        j = q - 1
        while j >= i and js[j] == "\\":
            backslashes += 1
            j -= 1
        if "\\" in js[i:q]:
            escaped = True
        if backslashes % 2 == 0:
            return q + 1, escaped, True
        i = q + 1


def _squash(js: str, i: int) -> tuple[int, str]:
    """From an opening bracket at ``i``: (index after the matching close, raw text)."""
    start, depth, i = i, 1, i + 1
    while True:
        match = _SQUASH_TOKEN.search(js, i)
        if match is None:
            return len(js), js[start:]
        i = match.start()
        char = js[i]
        if char == '"':
            i, _, ok = _string_end(js, i + 1)
            if not ok:
                return len(js), js[start:]
            continue
        if char in "[{(":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i + 1, js[start : i + 1]
        i += 1


def _number(js: str, i: int) -> tuple[int, str]:
    match = _NUMBER_END.search(js, i + 1)
    end = len(js) if match is None else match.start()
    return end, js[i:end]


def _literal(js: str, i: int) -> tuple[int, str]:
    match = _NOT_LOWER.search(js, i + 1)
    end = len(js) if match is None else match.start()
    return end, js[i:end]


def _number_result(raw: str) -> Result:
    return Result(Kind.NUMBER, raw, num=_parse_float(raw))


def _literal_result(raw: str) -> Result:
    kind = {"t": Kind.TRUE, "f": Kind.FALSE}.get(raw[:1], Kind.NULL)
    return Result(kind, raw)


def _string_result(raw: str, escaped: bool) -> Result:
    inner = raw[1:-1]
    return Result(Kind.STRING, raw, unescape(inner) if escaped else inner)


def _object_part(path: str) -> tuple[str, str | None, bool]:
    """gjson ``parseObjectPath`` (pipes are refused earlier): (key, rest or None, wild)."""
    part, wild, i = "", False, 0
    while i < len(path):
        char = path[i]
        if char == ".":
            return part, path[i + 1 :], wild
        if char in "*?":
            wild = True
        if char == "\\":
            i += 1
            if i < len(path):
                part += path[i]
            i += 1
            continue
        part += char
        i += 1
    return part, None, wild


def _array_part(path: str) -> tuple[str, str | None, bool]:
    """gjson ``parseArrayPath`` (queries refused earlier): (part, rest or None, '#.' form)."""
    dot = path.find(".")
    if path.startswith("#.") and len(path) > 1:
        return "#", path[2:], True
    if dot < 0:
        return path, None, False
    return path[:dot], path[dot + 1 :], False


def _wildcard(key: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, key, re.DOTALL) is not None


class _Scan:
    """One walk over a document, following gjson's ``parseObject``/``parseArray``."""

    def __init__(self, js: str) -> None:
        self.js = js

    def object(self, i: int, path: str) -> tuple[int, Result]:
        js, n = self.js, len(self.js)
        part, rest, wild = _object_part(path)
        while i < n:
            key_ok = False
            key = ""
            while i < n:
                if js[i] == '"':
                    start = i + 1
                    i, escaped, key_ok = _string_end(js, start)
                    key = js[start : i - 1] if key_ok else js[start:]
                    if escaped:
                        key = unescape(key)
                    break
                if js[i] == "}":
                    return i + 1, Result()
                i += 1
            if not key_ok:
                return i, Result()
            matched = _wildcard(key, part) if wild else key == part
            hit = matched and rest is None
            while i < n:
                char = js[i]
                if char == '"':
                    start = i
                    i, escaped, ok = _string_end(js, i + 1)
                    if not ok:
                        return i, Result()
                    if hit:
                        return i, _string_result(js[start:i], escaped)
                elif char in "{[":
                    if matched and not hit:
                        assert rest is not None
                        walk = self.object if char == "{" else self.array
                        i, found = walk(i + 1, rest)
                        if found.exists():
                            return i, found
                    else:
                        i, raw = _squash(js, i)
                        if hit:
                            return i, Result(Kind.JSON, raw)
                elif char in "tf" or (char == "n" and js[i + 1 : i + 2] == "u"):
                    i, raw = _literal(js, i)
                    if hit:
                        return i, _literal_result(raw)
                elif char in "+-0123456789iIN" or char == "n":
                    i, raw = _number(js, i)
                    if hit:
                        return i, _number_result(raw)
                else:
                    i += 1
                    continue
                break
        return i, Result()

    def array(self, i: int, path: str) -> tuple[int, Result]:
        js, n = self.js, len(self.js)
        part, rest, each = _array_part(path)
        count_only = part == "#" and rest is None
        index = int(part) if part.isascii() and part.isdigit() else -1
        if part.startswith("#"):
            index = -1
        h = 0
        elements: list[Result] = []
        while i <= n:
            matched = index == h
            hit = matched and rest is None and not each
            h += 1
            while True:
                char = "]" if i >= n else js[i]
                if i > n:
                    return i, Result()
                if char == '"':
                    start = i
                    i, escaped, ok = _string_end(js, i + 1)
                    if not ok:
                        return i, Result()
                    value = _string_result(js[start:i], escaped)
                elif char in "{[":
                    if matched and rest is not None and not each:
                        walk = self.object if char == "{" else self.array
                        i, found = walk(i + 1, rest)
                        if found.exists():
                            return i, found
                        break
                    i, raw = _squash(js, i)
                    value = Result(Kind.JSON, raw)
                elif char in "tf" or (char == "n" and js[i + 1 : i + 2] == "u"):
                    i, raw = _literal(js, i)
                    value = _literal_result(raw)
                elif char in "+-0123456789iIN" or char == "n":
                    i, raw = _number(js, i)
                    value = _number_result(raw)
                elif char == "]":
                    if each and rest is not None:
                        return i + 1, _collect(elements, rest)
                    if count_only:
                        return i + 1, Result(Kind.NUMBER, str(h - 1), num=float(h - 1))
                    return i + 1, Result()
                else:
                    i += 1
                    continue
                if hit:
                    return i, value
                if each:
                    elements.append(value)
                break
        return i, Result()


def _collect(elements: list[Result], rest: str) -> Result:
    """``#.rest``: ``rest`` of every element that has it, as a JSON array of raw values."""
    raws = []
    for element in elements:
        found = get(element.raw, rest)
        if found.exists():
            raws.append(found.raw or found.string())
    return Result(Kind.JSON, "[" + ",".join(raws) + "]")


def unescape(text: str) -> str:
    """gjson's ``unescape``: JSON escapes decoded; stops at a bad escape or control char."""
    out: list[str] = []
    i, n = 0, len(text)
    simple = {"\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
    simple['"'] = '"'
    while i < n:
        char = text[i]
        if char < " ":
            break
        if char != "\\":
            out.append(char)
            i += 1
            continue
        i += 1
        if i >= n:
            break
        code = text[i]
        if code in simple:
            out.append(simple[code])
            i += 1
            continue
        if code != "u" or i + 5 > n:
            break
        rune = _hex4(text[i + 1 : i + 5])
        i += 5
        if 0xD800 <= rune < 0xE000:
            if text[i : i + 2] == "\\u" and i + 6 <= n:
                low = _hex4(text[i + 2 : i + 6])
                i += 6
                rune = (
                    0x10000 + ((rune - 0xD800) << 10) + (low - 0xDC00)
                    if rune < 0xDC00 and 0xDC00 <= low < 0xE000
                    else 0xFFFD
                )
            else:
                rune = 0xFFFD
        out.append(chr(rune))
    return "".join(out)


def _hex4(text: str) -> int:
    """Go's ``strconv.ParseUint(text, 16, 64)`` as gjson uses it: 0 on bad input."""
    try:
        return int(text, 16) if len(text) == 4 and text.isascii() and text.isalnum() else 0
    except ValueError:
        return 0
