"""JSON from programs and servers that may put a secret where an answer was expected.

The caller raises outside the `except`: a JSONDecodeError (or UnicodeDecodeError) keeps the whole
input (`.doc`, `.object`), and an exception raised while handling it would carry that input along
as `__context__` into logs and tracebacks.
"""

from __future__ import annotations

import json
from typing import Any

INVALID: Any = object()


def loads_or_invalid(data: bytes) -> Any:
    """Parsed JSON, or INVALID."""
    try:
        return json.loads(data)
    except ValueError:
        return INVALID
