"""Durations as users write them in the config: `30s`, `5m`, `12h`, `1h30m`, `500ms`."""

from __future__ import annotations

import datetime as dt
import math
import re

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PATTERN = _WHOLE.pattern
_EXPECTED = "expected a duration such as 30s, 5m or 12h"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: object) -> dt.timedelta:
    """Parse `5m`-style strings (a bare number is seconds). Raises ValueError naming the input."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{_EXPECTED}, got {type(value).__name__}")
    if isinstance(value, int | float):
        seconds = float(value) if abs(value) < 1e300 else math.copysign(math.inf, value)
    else:
        text = value.strip()
        # fullmatch, not `$`: `$` also matches before a trailing newline.
        if not _WHOLE.fullmatch(text):
            raise ValueError(f"{_EXPECTED}, got {_show(value)}")
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    if math.isnan(seconds):
        raise ValueError(f"{_EXPECTED}, got {_show(value)}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {_show(value)}")
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"the duration {_show(value)} is too long") from None


def format_duration(value: dt.timedelta) -> str:
    """The shortest `1h30m`-style spelling that parses back to `value` (to the millisecond)."""
    millis = round(value.total_seconds() * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if millis >= size:
            parts.append(f"{millis // size}{unit}")
            millis %= size
    return "".join(parts) or "0s"
