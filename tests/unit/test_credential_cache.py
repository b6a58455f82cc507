"""The one home of the cache policy: when a cached credential will do, and when a source is asked."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import Config, Credential, parse_config
from syncd.core.errors import SourceUnavailable
from syncd.core.values import FetchedCredential, RegistryCredential
from syncd.engine.fetcher import SHARED_FETCH_WINDOW, CredentialFetcher, Freshness, NotFetchedYet
from syncd.engine.metrics import Metrics

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
CONFIG = parse_config(
    {
        "vault": {"address": "https://vault.invalid"},
        "credentials": [
            {"name": "a", "registry": "a.example", "vault": {"path": "a"}},
            {"name": "b", "registry": "b.example", "vault": {"path": "b"}},
        ],
        "secrets": [{"name": "pull", "credentials": ["a", "b"], "namespaces": {"names": ["x"]}}],
        "schedule": {"refresh_before_expiry": 0.5},
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


class Source:
    """Counts calls; answers valid for `lifetime` when given; fails while `down`."""

    kind = "vault"

    def __init__(self, clock: Clock, lifetime: dt.timedelta | None = None) -> None:
        self.clock, self.lifetime = clock, lifetime
        self.calls: list[str] = []
        self.down = False

    def fetch(self, credential: Credential) -> FetchedCredential:
        self.calls.append(credential.name)
        if self.down:
            raise SourceUnavailable(credential.name, "down")
        entry = RegistryCredential(credential.registry_names[0], "user", f"password-{len(self.calls)}")
        expires = self.clock() + self.lifetime if self.lifetime else None
        return FetchedCredential(credential.name, "vault", (entry,), expires_at=expires)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def fetcher(source: Source, clock: Clock) -> CredentialFetcher:
    return CredentialFetcher({"vault": source}, Metrics(CollectorRegistry()), clock, verifier=lambda *_: None)


def fetch(cache: CredentialFetcher, freshness: Freshness, *names: str, config: Config = CONFIG) -> list[str]:
    return [c.entries[0].password for c in cache.fetch_all(config, names or ("a", "b"), freshness)]


def test_a_cache_only_sync_never_calls_a_source(clock: Clock) -> None:
    source = Source(clock)
    cache = fetcher(source, clock)
    with pytest.raises(NotFetchedYet):
        fetch(cache, Freshness.cached())
    fetch(cache, Freshness.per_run(T0))
    assert fetch(cache, Freshness.cached()) == ["password-1", "password-2"]
    assert source.calls == ["a", "b"]


def test_a_run_asks_each_credential_once_and_a_failure_once(clock: Clock) -> None:
    source = Source(clock)
    cache = fetcher(source, clock)
    fetch(cache, Freshness.per_run(T0), "a")
    fetch(cache, Freshness.per_run(T0), "a")
    source.down = True
    clock.now = T0 + S
    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            fetch(cache, Freshness.per_run(T0 + S), "b")
    assert source.calls == ["a", "b"]


def test_a_scheduled_job_shares_another_jobs_fresh_answer_and_no_older_one(clock: Clock) -> None:
    source = Source(clock)
    cache = fetcher(source, clock)
    fetch(cache, Freshness.scheduled(T0))
    clock.now = T0 + SHARED_FETCH_WINDOW - S
    fetch(cache, Freshness.scheduled(clock.now))
    assert source.calls == ["a", "b"]
    clock.now = T0 + SHARED_FETCH_WINDOW + S
    fetch(cache, Freshness.scheduled(clock.now))
    assert source.calls == ["a", "b", "a", "b"]


def test_a_scheduled_retry_asks_the_source_again_however_soon(clock: Clock) -> None:
    source = Source(clock)
    cache = fetcher(source, clock)
    source.down = True
    with pytest.raises(SourceUnavailable):
        fetch(cache, Freshness.scheduled(T0), "a")
    source.down = False
    clock.now = T0 + S
    assert fetch(cache, Freshness.scheduled(clock.now), "a") == ["password-2"]


def test_one_credential_due_for_its_expiry_refresh_refreshes_the_whole_spec(clock: Clock) -> None:
    source = Source(clock, lifetime=4 * S)
    cache = fetcher(source, clock)
    fetch(cache, Freshness.per_run(T0))
    assert cache.lifetimes(["a", "b"]) == [(T0, T0 + 4 * S), (T0, T0 + 4 * S)]
    clock.now = T0 + 2 * S  # half of the lifetime left: due, though inside the shared window
    fetch(cache, Freshness.scheduled(clock.now))
    assert source.calls == ["a", "b", "a", "b"]


def test_after_a_reload_kept_answers_are_reused_whatever_their_age(clock: Clock) -> None:
    source = Source(clock)
    cache = fetcher(source, clock)
    fetch(cache, Freshness.per_run(T0), "a")
    clock.now = T0 + dt.timedelta(hours=3)
    assert fetch(cache, Freshness.kept(clock.now)) == ["password-1", "password-2"]
    assert source.calls == ["a", "b"]  # only the credential never fetched


def test_after_a_reload_a_credential_due_for_refresh_is_still_refreshed(clock: Clock) -> None:
    source = Source(clock, lifetime=4 * S)
    cache = fetcher(source, clock)
    fetch(cache, Freshness.per_run(T0), "a")
    clock.now = T0 + 3 * S
    fetch(cache, Freshness.kept(clock.now), "a")
    assert source.calls == ["a", "a"]
