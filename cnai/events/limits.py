"""The events gateway's limits: every bound it applies, its default and its setting.

Each field is a key of the config file's ``events:`` section (same name). The
defaults are safe for a gateway reachable by anyone on the machine; docs/limits.md
lists what a client sees when each one is hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from cnai.errors import UsageError

RATE_UNITS = {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0}
"""Argo Events' ``rateLimit.unit`` values and their length in seconds."""


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` run starts per ``unit`` on one branch (Argo Events' ``rateLimit``)."""

    requests: int
    """``requestsPerUnit``."""
    unit: str
    """``Second``, ``Minute`` or ``Hour``."""

    @property
    def window(self) -> float:
        """The unit in seconds."""
        return RATE_UNITS[self.unit]


@dataclass(frozen=True)
class GatewayLimits:
    """Bounds on what clients can make the gateway hold, queue or write."""

    max_connections: int = 256
    """Open client connections; one more is answered 503 and closed at once."""
    header_timeout: float = 10.0
    """Seconds a connection may take to send complete request headers (also the idle
    keep-alive limit); then it is closed."""
    body_timeout: float = 30.0
    """Seconds a request may take to send its whole body after its headers; then 408."""
    max_buffered_bytes: int = 64 * 1024 * 1024
    """Request body bytes held at once across all requests, beyond the first 64 KiB of
    each (small deliveries always fit); a body that does not fit gets 503 with
    ``Retry-After``."""
    max_json_depth: int = 64
    """Nesting depth of a delivery's JSON body; deeper is 400."""
    max_argument_bytes: int = 4096
    """Bytes of one workflow argument (``NAME=VALUE``) taken from an event; longer is 400."""
    max_queued_per_branch: int = 20
    """Runs waiting on one branch; one more delivery is answered 429 (nothing recorded)."""
    rate_limit: RateLimit | None = None
    """Run starts per branch; None: the Sensor trigger's ``rateLimit`` (if any)."""
    rate_limit_disabled: bool = False
    """``rate_limit: none`` in the config: no start rate limit at all."""
    log_limit_per_minute: int = 30
    """Error tracebacks and rejected-request lines written per kind per minute; the
    rest are counted and reported in one summary line."""

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> GatewayLimits:
        """Limits from the ``events:`` config section (unknown keys are the caller's job)."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name in ("rate_limit", "rate_limit_disabled") or item.name not in raw:
                continue
            value = raw[item.name]
            where = f"config events.{item.name}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"{where}: expected a number, got {value!r}")
            if item.type == "int" and not isinstance(value, int):
                raise UsageError(f"{where}: expected a whole number, got {value!r}")
            if value <= 0:
                raise UsageError(f"{where}: must be positive, got {value!r}")
            values[item.name] = value
        if "rate_limit" in raw:
            parsed = parse_rate_limit(raw["rate_limit"], "config events.rate_limit")
            values["rate_limit"] = parsed
            values["rate_limit_disabled"] = parsed is None
        return cls(**values)


CONFIG_KEYS = {f.name for f in fields(GatewayLimits)} - {"rate_limit_disabled"}
"""Keys of the ``events:`` config section that set limits."""


def parse_rate_limit(raw: Any, where: str) -> RateLimit | None:
    """``{unit: Minute, requestsPerUnit: 6}`` (or ``requests_per_unit``); ``none``: None."""
    if raw is None or raw == "none":
        return None
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: expected {{unit, requestsPerUnit}} or 'none', got {raw!r}")
    unknown = sorted(set(raw) - {"unit", "requestsPerUnit", "requests_per_unit"})
    if unknown:
        raise UsageError(f"{where}.{unknown[0]}: unknown (known: unit, requestsPerUnit)")
    unit = raw.get("unit", "Second")
    if unit not in RATE_UNITS:
        raise UsageError(f"{where}.unit: expected Second, Minute or Hour, got {unit!r}")
    count = raw.get("requestsPerUnit", raw.get("requests_per_unit"))
    try:
        requests = int(count)
    except (TypeError, ValueError):
        problem = f"expected a whole number, got {count!r}"
        raise UsageError(f"{where}.requestsPerUnit: {problem}") from None
    if requests <= 0 or isinstance(count, bool):
        raise UsageError(f"{where}.requestsPerUnit: must be positive, got {count!r}")
    return RateLimit(requests, str(unit))
