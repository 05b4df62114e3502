"""Literals govaluate reads specially: date/time strings, and regex patterns (Go RE2)."""

from __future__ import annotations

import calendar
import re

from cnai.argo.semantics.govaluate.tokens import GoRegex, GovaluateError, Token, UnsupportedError

_DATE = r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
_CLOCK = r"(?P<h>\d{2}):(?P<mi>\d{2})"
_SECONDS = r":(?P<s>\d{2})(?P<frac>[.,]\d+)?"
_TIME_LAYOUTS = [
    re.compile(p)
    for p in (
        # RFC3339 / RFC3339Nano
        _DATE + "T" + _CLOCK + _SECONDS + r"(?P<z>Z|[+-]\d{2}:\d{2})",
        _DATE,
        _DATE + " " + _CLOCK,
        _DATE + " " + _CLOCK + _SECONDS,
        _DATE + " " + _CLOCK + _SECONDS + r"(?P<z>[+-]\d{2}:\d{2})",
        _DATE + r"T(?P<h>\d{2})(?P<z>Z|[+-]\d{4})",
        _DATE + "T" + _CLOCK + r"(?P<z>Z|[+-]\d{4})",
        _DATE + "T" + _CLOCK + _SECONDS + r"(?P<z>Z|[+-]\d{4})",
    )
]
_OTHER_TIME = re.compile(
    r"^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"|\d{1,2}:\d{2}[AP]M$)"
)


def parse_time(text: str) -> float | None:
    """Unix seconds for a string govaluate reads as a date/time, else None.

    The ISO/RFC 3339 layouts of govaluate's list are parsed (in UTC, the zone of the
    Argo controller and sensor images); the ANSIC/UnixDate/RubyDate/Kitchen layouts
    are refused.
    """
    for layout in _TIME_LAYOUTS:
        match = layout.fullmatch(text)
        if match is None:
            continue
        parts = match.groupdict()
        year, month, day = int(parts["y"]), int(parts["mo"]), int(parts["d"])
        hour, minute = int(parts.get("h") or 0), int(parts.get("mi") or 0)
        second = int(parts.get("s") or 0)
        if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
            return None
        if hour > 23 or minute > 59 or second > 59:
            return None
        offset = 0
        zone = parts.get("z") or "Z"
        if zone != "Z":
            digits = zone[1:].replace(":", "")
            offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
            offset = -offset if zone[0] == "-" else offset
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        return float(seconds - offset)
    if _OTHER_TIME.match(text):
        raise UnsupportedError(f"the date/time literal '{text}' (only ISO 8601 / RFC 3339 forms)")
    return None


_GO_FLAGS = re.compile(r"\(\?([A-Za-z-]*)[:)]")


def _go_error(pattern: str, problem: str) -> GovaluateError:
    return GovaluateError(f"Unable to compile regexp pattern '{pattern}': {problem}")


def _refused(pattern: str, construct: str) -> UnsupportedError:
    return UnsupportedError(
        f"regex '{pattern}': {construct} reads differently in Go's RE2 and Python's re"
    )


def _escape(pattern: str, index: int, in_class: bool) -> str:
    """The Python form of the escape at ``pattern[index]`` (a backslash)."""
    if index + 1 >= len(pattern):
        raise _go_error(pattern, "trailing backslash at end of expression")
    char = pattern[index + 1]
    if char == "z" and not in_class:
        return r"\Z"
    if char == "Z" or ("1" <= char <= "9"):
        raise _go_error(pattern, f"invalid escape sequence: `\\{char}`")
    if char in "pPQEC":
        raise _refused(pattern, f"\\{char}")
    return "\\" + char


def _group_start(pattern: str, index: int) -> None:
    """Refuse the ``(?...`` forms RE2 rejects, and those only Python reads."""
    rest = pattern[index:]
    for form in ("(?=", "(?!", "(?<=", "(?<!", "(?P=", "(?#"):
        if rest.startswith(form):
            raise _go_error(pattern, f"invalid or unsupported Perl syntax: `{form}`")
    if rest.startswith("(?<"):
        raise _refused(pattern, "a (?<name>...) group")
    flags = _GO_FLAGS.match(rest)
    if flags is not None and not rest.startswith("(?P<"):
        if any(f not in "imsU-" for f in flags.group(1)):
            raise _go_error(pattern, f"invalid or unsupported Perl syntax: `{flags.group(0)}`")
        if "U" in flags.group(1):
            raise _refused(pattern, "the U (ungreedy) flag")


def _to_python(pattern: str) -> str:
    """An RE2 pattern rewritten for Python's ``re`` (``$`` and ``\\z`` end the text only)."""
    multiline = re.search(r"\(\?[a-zA-Z]*m", pattern) is not None
    out: list[str] = []
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            out.append(_escape(pattern, index, in_class))
            index += 2
            continue
        if in_class:
            if pattern.startswith("[:", index):
                raise _refused(pattern, "a POSIX class [:name:]")
            in_class = char != "]"
            out.append(char)
            index += 1
            continue
        if char == "[":
            in_class = True
            head = (
                "[^]"
                if pattern.startswith("[^]", index)
                else "[]"
                if pattern.startswith("[]", index)
                else "[^"
                if pattern.startswith("[^", index)
                else "["
            )
            out.append(head)
            index += len(head)
            continue
        if char == "(":
            _group_start(pattern, index)
        if char in "*+?}" and pattern[index + 1 : index + 2] == "+":
            raise _go_error(pattern, f"invalid nested repetition operator: `{char}+`")
        out.append("\\Z" if char == "$" and not multiline else char)
        index += 1
    return "".join(out)


def compile_regex(pattern: str) -> GoRegex:
    """Compile a Go (RE2) pattern as Go would; refuse forms Python would read differently.

    RE2's ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII, and ``$`` ends the text
    (Python's also matches before a final newline), so both are carried over.
    """
    try:
        return GoRegex(pattern, re.compile(_to_python(pattern), re.ASCII))
    except re.error as exc:
        raise _go_error(pattern, f"bad regex: {exc}") from None


def optimize(tokens: list[Token]) -> list[Token]:
    """Compile the literal right operand of ``=~``/``!~`` into a PATTERN token."""
    out = list(tokens)
    for index, token in enumerate(out):
        if token.kind != "COMPARATOR" or token.value not in ("=~", "!~"):
            continue
        following = out[index + 1]
        if following.kind == "STRING":
            out[index + 1] = Token("PATTERN", compile_regex(following.value))
    return out
