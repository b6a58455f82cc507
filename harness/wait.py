"""The one polling helper of tests, bench, soak and the harness itself."""

from __future__ import annotations

import time
from collections.abc import Callable


class TimedOut(AssertionError):
    """A condition did not hold in time. An AssertionError, so that a test fails (not errors) on it."""


def wait_until(condition: Callable[[], object], timeout: float, what: str, *, interval: float = 0.1) -> float:
    """Poll until `condition()` is true; return the seconds it took, or raise TimedOut naming `what`.

    An OSError from the condition (a connection refused, a server still starting; requests' errors
    are OSErrors) counts as "not yet", and the last one is named if time runs out. Anything else
    it raises ends the wait at once: a broken condition must not pass for a slow one.
    """
    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
            last_error: OSError | None = None
        except OSError as exc:
            last_error = exc
        if time.monotonic() - started >= timeout:
            cause = f" (last error: {last_error})" if last_error else ""
            raise TimedOut(f"timed out after {timeout:g}s waiting for {what}{cause}")
        time.sleep(interval)
