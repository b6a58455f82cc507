"""Leases through the reconciler: revoked once every spec wrote a newer login everywhere, renewed
when Vault grants the full duration. Fakes at the Source and Cluster boundaries."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import Config, Credential, parse_config
from syncd.core.errors import SourceUnavailable
from syncd.core.values import FetchedCredential, Lease, RegistryCredential
from syncd.engine.fetcher import Freshness
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from tests.unit.fakes import FakeCluster

HOUR = dt.timedelta(hours=1)


class LeasingSource:
    """A new login and lease per fetch (`lease-1`, `lease-2`, ...); records revocations and renewals."""

    kind = "vault"

    def __init__(self, *, renewable: bool = False) -> None:
        self.renewable = renewable
        self.fetches = 0
        self.revoked: list[str] = []
        self.renewed: list[str] = []
        self.grant = HOUR
        self.revoke_fails = False

    def fetch(self, credential: Credential) -> FetchedCredential:
        self.fetches += 1
        entry = RegistryCredential("ghcr.io", f"user-{self.fetches}", f"password-{self.fetches}")
        lease = Lease(f"creds/lease-{self.fetches}", self.renewable, HOUR)
        return FetchedCredential(credential.name, self.kind, (entry,), lease=lease)

    def revoke(self, credential: Credential, lease: Lease) -> None:
        if self.revoke_fails:
            raise SourceUnavailable(credential.name, "Vault failed answering for sys/leases/revoke (HTTP 500)")
        self.revoked.append(lease.id)

    def renew(self, credential: Credential, lease: Lease) -> Lease:
        self.renewed.append(lease.id)
        return Lease(lease.id, lease.renewable, self.grant)


def config(revoke_previous: bool = True, **credential: Any) -> Config:
    vault = {"mount": "database", "path": "creds/ci", "revoke_previous": revoke_previous}
    return parse_config(
        {
            "vault": {"address": "https://vault.invalid"},
            "credentials": [{"name": "db", "registry": "ghcr.io", "vault": vault, **credential}],
            "secrets": [
                {"name": "one", "credentials": ["db"], "namespaces": {"names": ["team-1", "team-2"]}},
                {"name": "two", "credentials": ["db"], "namespaces": {"names": ["team-3"]}},
            ],
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(namespaces={"team-1": {}, "team-2": {}, "team-3": {}})


def _reconciler(cfg: Config, source: LeasingSource, cluster: FakeCluster, clock: Clock) -> Reconciler:
    return Reconciler(
        config=cfg, sources={"vault": source}, cluster=cluster, metrics=Metrics(CollectorRegistry()), clock=clock
    )


def _sync(reconciler: Reconciler, spec: str, clock: Clock) -> None:
    """A scheduled job of `spec`, a minute after the last: a fresh answer."""
    clock.now += dt.timedelta(minutes=1)
    found = next(s for s in reconciler.config.secrets if s.name == spec)
    reconciler.sync(found, freshness=Freshness.scheduled(clock.now))


def _revocations(reconciler: Reconciler, result: str = "success") -> float | None:
    labels = {"credential": "db", "result": result}
    return reconciler.metrics.registry.get_sample_value("syncd_vault_lease_revocations_total", labels)


def test_the_previous_lease_is_revoked_once_after_every_spec_wrote_the_new_login(cluster: FakeCluster) -> None:
    source, clock = LeasingSource(), Clock()
    reconciler = _reconciler(config(), source, cluster, clock)
    _sync(reconciler, "one", clock)  # lease-1, read
    _sync(reconciler, "two", clock)  # lease-2 replaces it: lease-1 waits for both specs
    assert source.revoked == []
    _sync(reconciler, "one", clock)  # lease-3: "one" holds it, "two" still lease-2
    assert source.revoked == ["creds/lease-1"]  # lease-1: "two" wrote lease-2, "one" lease-3
    _sync(reconciler, "two", clock)  # lease-4
    assert source.revoked == ["creds/lease-1", "creds/lease-2"]
    assert reconciler.fetcher.leases.pending("db") == 1  # lease-3: "one" has not written lease-4 yet
    assert _revocations(reconciler) == 2


def test_a_failed_write_revokes_nothing_until_a_whole_sync_succeeds(cluster: FakeCluster) -> None:
    source, clock = LeasingSource(), Clock()
    reconciler = _reconciler(config(), source, cluster, clock)
    _sync(reconciler, "one", clock)
    _sync(reconciler, "two", clock)
    cluster.failing.add("team-2")
    _sync(reconciler, "one", clock)  # lease-3 in team-1 only: team-2 may still hold lease-1
    _sync(reconciler, "two", clock)
    assert source.revoked == []
    cluster.failing.clear()
    _sync(reconciler, "one", clock)
    assert sorted(source.revoked) == ["creds/lease-1", "creds/lease-2", "creds/lease-3"]


def test_a_dry_run_revokes_nothing(cluster: FakeCluster) -> None:
    source, clock = LeasingSource(), Clock()
    reconciler = _reconciler(config(), source, cluster, clock)
    _sync(reconciler, "one", clock)
    for spec in reconciler.config.secrets:
        clock.now += dt.timedelta(minutes=1)
        reconciler.sync(spec, freshness=Freshness.scheduled(clock.now), dry_run=True)
    assert source.fetches == 3
    assert source.revoked == []


def test_revoke_previous_false_revokes_nothing(cluster: FakeCluster) -> None:
    source, clock = LeasingSource(), Clock()
    reconciler = _reconciler(config(revoke_previous=False), source, cluster, clock)
    for spec in ("one", "two", "one", "two"):
        _sync(reconciler, spec, clock)
    assert source.revoked == []
    assert reconciler.fetcher.leases.pending("db") == 0


def test_a_failed_revocation_is_counted_logged_without_the_lease_id_and_not_retried(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    source, clock = LeasingSource(), Clock()
    source.revoke_fails = True
    reconciler = _reconciler(config(), source, cluster, clock)
    with caplog.at_level(logging.DEBUG):
        for spec in ("one", "two", "one", "two"):
            _sync(reconciler, spec, clock)
    assert _revocations(reconciler, "failure") == 2
    assert "revoking the previous lease of credential db failed" in caplog.text
    assert "lease-" not in caplog.text
    assert reconciler.fetcher.leases.pending("db") == 1  # lease-3 alone: the failed ones are not retried


def test_a_renewable_lease_is_renewed_instead_of_read_until_vault_grants_less(cluster: FakeCluster) -> None:
    source, clock = LeasingSource(renewable=True), Clock()
    reconciler = _reconciler(config(), source, cluster, clock)
    _sync(reconciler, "one", clock)
    _sync(reconciler, "one", clock)
    assert (source.fetches, source.renewed) == (1, ["creds/lease-1"])
    assert reconciler.fetcher.cached("db").expires_at == clock.now + HOUR  # type: ignore[union-attr]
    source.grant = dt.timedelta(minutes=5)  # max TTL near: a new login, lease-2
    _sync(reconciler, "one", clock)
    source.grant = HOUR
    _sync(reconciler, "two", clock)  # renews lease-2; "two" writes it, so lease-1 is held nowhere
    assert source.fetches == 2
    assert source.renewed == ["creds/lease-1", "creds/lease-1", "creds/lease-2"]
    assert source.revoked == ["creds/lease-1"]
    value = reconciler.metrics.registry.get_sample_value
    assert value("syncd_vault_lease_renewals_total", {"credential": "db", "result": "success"}) == 2
    assert value("syncd_vault_lease_renewals_total", {"credential": "db", "result": "failure"}) == 1


def test_a_lifetime_rules_renewal_out(cluster: FakeCluster) -> None:
    source, clock = LeasingSource(renewable=True), Clock()
    reconciler = _reconciler(config(lifetime="10m"), source, cluster, clock)
    _sync(reconciler, "one", clock)
    _sync(reconciler, "one", clock)
    assert (source.fetches, source.renewed) == (2, [])
