"""Durations as users write them in the config: `30s`, `5m`, `12h`, `1h30m`, `500ms`."""

from __future__ import annotations

import datetime as dt
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PATTERN = _WHOLE.pattern


def parse_duration(value: object) -> dt.timedelta:
    """Parse `5m`-style strings (a bare number is seconds). Raises ValueError naming the input."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration such as 30s, 5m or 12h, got {type(value).__name__}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        if not _WHOLE.match(text):
            raise ValueError(f"expected a duration such as 30s, 5m or 12h, got {value!r}")
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return dt.timedelta(seconds=seconds)


def format_duration(value: dt.timedelta) -> str:
    """The shortest `1h30m`-style spelling, for schema defaults and messages."""
    total = value.total_seconds()
    if total and total < 1:
        return f"{round(total * 1000)}ms"
    parts, rest = [], int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"
