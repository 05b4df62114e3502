"""Go durations, with Argo's two rules kept apart.

- :func:`parse_go_duration` is Go's ``time.ParseDuration`` (strict): a unit is required
  except for ``"0"``, so ``"10"`` is an error. Argo uses it for ``memoize.maxAge``.
- :func:`parse_backoff_duration` is Argo's retry backoff rule: a bare integer means seconds
  (``strconv.Atoi`` first), anything else goes through ``time.ParseDuration``.

Hand-written because no Python library parses Go durations with Go's exact rules (sign,
fractions, ``µs``/``μs``, int64 nanosecond overflow); the algorithm follows the published
behaviour and is checked against Go's own test table
(tests/data/conformance/go_parse_duration.json).
"""

from __future__ import annotations

import re

from cnai.errors import UsageError

_LIMIT = 1 << 63
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5
    "μs": 1_000,  # U+03BC
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_INTEGER = re.compile(r"[+-]?\d+")


def _digits(text: str) -> int:
    """How many leading ASCII digits ``text`` has."""
    count = 0
    while count < len(text) and "0" <= text[count] <= "9":
        count += 1
    return count


def go_duration_nanoseconds(text: str) -> int:
    """Nanoseconds in ``text`` by Go's ``time.ParseDuration`` rules; ValueError when invalid."""
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {text!r}")
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise ValueError(f"time: invalid duration {text!r}")
        n = _digits(rest)
        whole = 0
        for char in rest[:n]:
            if whole > _LIMIT // 10:
                raise ValueError(f"time: invalid duration {text!r} (overflow)")
            whole = whole * 10 + int(char)
            if whole > _LIMIT:
                raise ValueError(f"time: invalid duration {text!r} (overflow)")
        has_whole, rest = n > 0, rest[n:]
        fraction, scale, has_fraction = 0, 1.0, False
        if rest[:1] == ".":
            rest = rest[1:]
            n = _digits(rest)
            overflow = False
            for char in rest[:n]:
                if overflow:
                    continue
                if fraction > (_LIMIT - 1) // 10:
                    overflow = True
                    continue
                bigger = fraction * 10 + int(char)
                if bigger > _LIMIT:
                    overflow = True
                    continue
                fraction, scale = bigger, scale * 10
            has_fraction, rest = n > 0, rest[n:]
        if not has_whole and not has_fraction:
            raise ValueError(f"time: invalid duration {text!r}")
        end = 0
        while end < len(rest) and not (rest[end] == "." or "0" <= rest[end] <= "9"):
            end += 1
        if end == 0:
            raise ValueError(f"time: missing unit in duration {text!r}")
        unit_name, rest = rest[:end], rest[end:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {unit_name!r} in duration {text!r}")
        if whole > _LIMIT // unit:
            raise ValueError(f"time: invalid duration {text!r} (overflow)")
        whole *= unit
        if fraction > 0:
            whole += int(float(fraction) * (float(unit) / scale))
            if whole > _LIMIT:
                raise ValueError(f"time: invalid duration {text!r} (overflow)")
        total += whole
        if total > _LIMIT:
            raise ValueError(f"time: invalid duration {text!r} (overflow)")
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise ValueError(f"time: invalid duration {text!r} (overflow)")
    return total


def parse_go_duration(value: str, where: str) -> float:
    """Seconds in ``value`` by Go's strict ``time.ParseDuration`` (``"10"`` is an error).

    Raises UsageError naming ``where`` and the rule when the value is not a Go duration.
    """
    try:
        return go_duration_nanoseconds(str(value)) / 1e9
    except ValueError as exc:
        raise UsageError(
            f"{where}: {value!r} is not a Go duration (time.ParseDuration needs a unit, "
            f"e.g. 30s, 5m, 1h30m): {exc}"
        ) from None


def parse_backoff_duration(value: str | int, where: str) -> float:
    """Seconds in a retry backoff value: a bare integer is seconds, else a Go duration.

    Raises UsageError naming ``where`` when the value is neither.
    """
    text = str(value).strip() if isinstance(value, int) else str(value)
    if _INTEGER.fullmatch(text):
        return float(int(text))
    try:
        return go_duration_nanoseconds(text) / 1e9
    except ValueError as exc:
        raise UsageError(
            f"{where}: {value!r} is neither a whole number of seconds nor a Go duration "
            f"(e.g. 10, 30s, 5m): {exc}"
        ) from None
