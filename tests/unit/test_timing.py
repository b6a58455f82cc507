from __future__ import annotations

import datetime as dt
import random

from syncd.config import Schedule
from syncd.engine.timing import backoff, next_run, refresh_at

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


def schedule(**fields: object) -> Schedule:
    return Schedule.model_validate({"interval": "1h", "jitter": "30s", "retry": {"min": "5s", "max": "5m"}, **fields})


def test_backoff_doubles_from_min_and_stops_at_max() -> None:
    assert [backoff(schedule(), n).total_seconds() for n in (1, 2, 3, 4, 7, 8, 50)] == [5, 10, 20, 40, 300, 300, 300]


def test_after_a_failure_the_next_run_is_the_backoff_whatever_the_interval() -> None:
    assert next_run(NOW, schedule(), failures=3) == NOW + 20 * S


def test_a_healthy_spec_runs_after_the_interval_plus_at_most_the_jitter() -> None:
    runs = [next_run(NOW, schedule(), failures=0, rng=random.Random(seed)) for seed in range(50)]
    assert all(NOW + 3600 * S <= r <= NOW + 3630 * S for r in runs)
    assert len(set(runs)) > 1  # jitter spreads specs and replicas


def test_a_12h_token_is_refreshed_while_4h_are_left_whatever_the_interval() -> None:
    fetched, expires = NOW, NOW + dt.timedelta(hours=12)
    assert refresh_at(fetched, expires, 1 / 3) == NOW + dt.timedelta(hours=8)
    at = next_run(
        NOW, schedule(interval="24h", refresh_before_expiry=1 / 3), failures=0, lifetimes=[(fetched, expires)]
    )
    assert at == NOW + dt.timedelta(hours=8)


def test_a_credential_past_its_refresh_point_is_fetched_soon_not_in_the_past() -> None:
    fetched, expires = NOW - 10 * S, NOW + S
    assert next_run(NOW, schedule(), failures=0, lifetimes=[(fetched, expires)]) == NOW + dt.timedelta(milliseconds=500)


def test_the_earliest_credential_wins() -> None:
    lifetimes = [(NOW, NOW + 600 * S), (NOW, NOW + 60 * S)]
    assert next_run(NOW, schedule(refresh_before_expiry=0.5), failures=0, lifetimes=lifetimes) == NOW + 30 * S
