"""The one wall clock: timezone-aware UTC, injectable where a test needs to move time."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
