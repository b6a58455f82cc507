"""Pure: when a secret spec's next scheduled sync runs (SPEC §6)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable

from syncd.config import Schedule

MIN_DELAY = dt.timedelta(milliseconds=500)


def backoff(schedule: Schedule, failures: int) -> dt.timedelta:
    """retry.min doubled per consecutive failure, capped at retry.max."""
    exponent = min(max(failures - 1, 0), 30)
    delay: dt.timedelta = schedule.retry.min * (2**exponent)
    return min(delay, schedule.retry.max)


def refresh_at(fetched_at: dt.datetime, expires_at: dt.datetime, fraction_left: float) -> dt.datetime:
    """When `fraction_left` of the credential's lifetime remains (a 12 h token at 0.33: after 8 h)."""
    return expires_at - (expires_at - fetched_at) * fraction_left


def next_run(
    now: dt.datetime,
    schedule: Schedule,
    *,
    failures: int,
    lifetimes: Iterable[tuple[dt.datetime, dt.datetime]] = (),
    rng: random.Random | None = None,
) -> dt.datetime:
    """After a failure: backoff. Otherwise the interval plus jitter, or earlier if a credential
    (fetched_at, expires_at) reaches its refresh point first, whatever the interval."""
    if failures:
        return now + backoff(schedule, failures)
    jitter = schedule.jitter * (rng or random.Random()).random()  # noqa: S311 - spreading load, not security
    regular = now + schedule.interval + jitter
    early = [refresh_at(f, e, schedule.refresh_before_expiry) for f, e in lifetimes]
    return max(min([regular, *early]), now + MIN_DELAY)
