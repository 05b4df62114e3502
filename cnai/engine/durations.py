"""Go-style durations as Argo writes them (``"30s"``, ``"1h30m"``, ``"500ms"``, ``"10"``)."""

from __future__ import annotations

import re

from cnai.errors import UsageError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: str | int | float, where: str) -> float:
    """Seconds in ``value``: a bare number means seconds (Argo's backoff rule).

    Raises UsageError naming ``where`` when the value is not a duration.
    """
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise UsageError(f"{where}: {value!r} is not a duration (e.g. 30s, 5m, 1h30m)")
    return total
