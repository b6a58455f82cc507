"""When a secret spec's next scheduled sync runs (SPEC §6): the interval with jitter, earlier
for a credential's expiry refresh, backoff after failures. Pure but for `Cadence`, which
remembers each spec's consecutive failures."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable

from syncd.config import Schedule, SecretSpec

MIN_DELAY = dt.timedelta(milliseconds=500)
Lifetime = tuple[dt.datetime, dt.datetime]  # a cached credential's (fetched_at, expires_at)


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
    lifetimes: Iterable[Lifetime] = (),
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


class Cadence:
    """The scheduling policy of `syncd run`: when each spec runs next, given how its run went.

    `lifetimes` reports the cached credentials' lifetimes (the fetcher's). `pending`, for a run
    a reload asked for, is the run that was due before it: a reload must not postpone a spec's
    regular refresh, or a config edited more often than the interval would stop refreshes.
    """

    def __init__(self, lifetimes: Callable[[Iterable[str]], list[Lifetime]], rng: random.Random | None = None) -> None:
        self.lifetimes = lifetimes
        self.rng = rng
        self._failures: dict[str, int] = {}

    def next_run(
        self,
        spec: SecretSpec,
        schedule: Schedule,
        *,
        failed: bool,
        now: dt.datetime,
        pending: dt.datetime | None = None,
    ) -> dt.datetime:
        failures = self._failures[spec.name] = self._failures.get(spec.name, 0) + 1 if failed else 0
        lifetimes = self.lifetimes(spec.credentials)
        at = next_run(now, schedule, failures=failures, lifetimes=lifetimes, rng=self.rng)
        if pending is None or failures:
            return at
        return max(min(at, pending), now + MIN_DELAY)

    def forget(self, names: Iterable[str]) -> None:
        for name in names:
            self._failures.pop(name, None)
