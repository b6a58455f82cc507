"""ServiceAccount links in a sync: each namespace's patches follow its own Secret, on one pool.

Before issue 14 (item 2), every Secret was written first and the ServiceAccounts were patched in
a second wave; a first rollout waited for the slowest Secret before its first patch.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import Config, Namespaces, parse_config
from syncd.core.errors import KubeError
from syncd.core.values import Action, DesiredSecret, ExistingSecret, ServiceAccountRef, WriteResult
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from tests.unit.fakes import FakeCluster, FakeSource

TEAMS = ["team-1", "team-2", "team-3", "team-4"]


def config(**spec: Any) -> Config:
    return parse_config(
        {
            "vault": {"address": "https://vault.invalid"},
            "credentials": [{"name": "a", "registry": "a.example", "vault": {"path": "a"}}],
            "secrets": [{"name": "pull", "credentials": ["a"], "namespaces": {"patterns": ["team-*"]}, **spec}],
        }
    )


@dataclass
class RecordingCluster(FakeCluster):
    """Records Secret writes and ServiceAccount links in the order they happen, from any thread."""

    events: list[tuple[str, str]] = field(default_factory=list)
    account_lists: int = 0
    slow: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResult:
        time.sleep(self.slow.get(namespace, 0.0))
        written = super().create(namespace, desired, adopt=adopt, now=now)
        with self.lock:
            self.events.append(("secret", namespace))
        return written

    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        self.account_lists += 1
        return super().service_accounts(names, namespace)

    def add_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool:
        with self.lock:
            self.events.append(("link", namespace))
            return super().add_pull_secret(namespace, service_account, secret, instance, known=known)


def cluster_with_accounts() -> RecordingCluster:
    cluster = RecordingCluster(namespaces={team: {} for team in TEAMS})
    for team in TEAMS:
        cluster.accounts[(team, "default")] = []
    return cluster


def reconciler(cfg: Config, cluster: FakeCluster, registry: CollectorRegistry, workers: int = 2) -> Reconciler:
    source = FakeSource({"a": ("user-a", "secret-a")})
    return Reconciler(
        config=cfg, sources={"vault": source}, cluster=cluster, metrics=Metrics(registry), workers=workers
    )


def test_a_namespace_is_linked_before_the_other_namespaces_secrets_are_all_written(
    registry: CollectorRegistry,
) -> None:
    """team-2's create waits for a first link. With two waves (every Secret, then every patch),
    no link comes before the last create: it waits out its timeout and the test fails."""
    linked = threading.Event()

    @dataclass
    class WaitsForALink(RecordingCluster):
        waited: list[bool] = field(default_factory=list)

        def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResult:
            if namespace == "team-2":
                self.waited.append(linked.wait(timeout=3))
            return super().create(namespace, desired, adopt=adopt, now=now)

        def add_pull_secret(self, namespace: str, *args: Any, **kwargs: Any) -> bool:
            linked.set()
            return super().add_pull_secret(namespace, *args, **kwargs)

    cluster = WaitsForALink(namespaces={team: {} for team in TEAMS})
    for team in TEAMS:
        cluster.accounts[(team, "default")] = []
    result = reconciler(config(service_accounts=["default"]), cluster, registry).sync_all()[0]
    assert cluster.waited == [True]
    assert result.result == "success"
    assert all(cluster.accounts[(team, "default")] == ["pull"] for team in TEAMS)


def test_each_link_follows_its_own_namespaces_secret(registry: CollectorRegistry) -> None:
    cluster = cluster_with_accounts()
    cluster.slow = {"team-1": 0.2}
    reconciler(config(service_accounts=["default"]), cluster, registry).sync_all()
    for team in TEAMS:
        assert cluster.events.index(("secret", team)) < cluster.events.index(("link", team))
    assert cluster.events[-1] == ("link", "team-1")  # the slow namespace did not hold the others back


def test_a_secret_that_failed_or_is_not_ours_is_never_linked(registry: CollectorRegistry) -> None:
    cluster = cluster_with_accounts()
    cluster.failing.add("team-2")
    cluster.secrets[("team-3", "pull")] = ExistingSecret("team-3", "pull", "7", managed=False)  # someone else's
    result = reconciler(config(service_accounts=["default"]), cluster, registry).sync_all()[0]
    assert {team: cluster.accounts[(team, "default")] for team in TEAMS} == {
        "team-1": ["pull"],
        "team-2": [],
        "team-3": [],
        "team-4": ["pull"],
    }
    assert [(c.namespace, c.action) for c in result.account_changes] == [("team-1", "link"), ("team-4", "link")]
    assert result.result == "partial"
    patches = {"secret": "pull", "operation": "patch_service_account", "result": "success"}
    assert registry.get_sample_value("syncd_secret_writes_total", patches) == 2


def test_links_are_reported_in_the_order_the_service_accounts_were_listed(registry: CollectorRegistry) -> None:
    """As before the writes and links became one task per namespace (the plan's order is another)."""
    listed = ["team-3", "team-1", "team-4", "team-2"]
    cluster = RecordingCluster(namespaces={team: {} for team in TEAMS})
    for team in listed:
        cluster.accounts[(team, "default")] = []
    result = reconciler(config(service_accounts=["default"]), cluster, registry, workers=4).sync_all()[0]
    assert [o.change.namespace for o in result.outcomes] == TEAMS
    assert [c.namespace for c in result.account_changes] == listed


def test_service_accounts_are_listed_once_per_sync_and_only_when_an_edit_is_possible(
    registry: CollectorRegistry,
) -> None:
    linking = cluster_with_accounts()
    sync = reconciler(config(service_accounts=["default"]), linking, registry)
    sync.sync_all()
    sync.sync_all()  # idle: nothing to link, the list still tells
    assert linking.account_lists == 2
    plain = cluster_with_accounts()
    reconciler(config(), plain, CollectorRegistry()).sync_all()
    assert plain.account_lists == 0


def test_a_failed_service_account_list_still_writes_every_secret_and_is_reported(
    registry: CollectorRegistry,
) -> None:
    @dataclass
    class NoAccounts(RecordingCluster):
        def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
            raise KubeError("listing ServiceAccounts named 'default' in all namespaces: HTTP 500", status=500)

    cluster = NoAccounts(namespaces={team: {} for team in TEAMS})
    result = reconciler(config(service_accounts=["default"]), cluster, registry).sync_all()[0]
    assert [o.change.action for o in result.outcomes] == [Action.CREATE] * 4
    assert result.service_account_errors == ["listing ServiceAccounts named 'default' in all namespaces: HTTP 500"]
    assert result.result == "partial"


def test_a_pruned_namespace_loses_the_link_syncd_added_after_its_secret_is_deleted(
    registry: CollectorRegistry,
) -> None:
    cluster = cluster_with_accounts()
    cfg = config(service_accounts=["default"], prune=True)
    reconciler(cfg, cluster, registry).sync_all()
    narrowed = cfg.model_copy(
        update={"secrets": [cfg.secrets[0].model_copy(update={"namespaces": Namespaces(names=["team-1"])})]}
    )
    result = reconciler(narrowed, cluster, CollectorRegistry()).sync_all()[0]
    assert sorted(n for (n, _) in cluster.secrets) == ["team-1"]
    assert [(c.namespace, c.action) for c in result.account_changes] == [
        ("team-2", "unlink"),
        ("team-3", "unlink"),
        ("team-4", "unlink"),
    ]
    assert {team: cluster.accounts[(team, "default")] for team in TEAMS} == {
        "team-1": ["pull"],
        "team-2": [],
        "team-3": [],
        "team-4": [],
    }


def test_a_dry_run_plans_the_links_and_edits_nothing(registry: CollectorRegistry) -> None:
    cluster = cluster_with_accounts()
    result = reconciler(config(service_accounts=["default"]), cluster, registry).sync_all(dry_run=True)[0]
    assert [(c.namespace, c.action) for c in result.account_changes] == [(team, "link") for team in TEAMS]
    assert cluster.events == []
    assert all(cluster.accounts[(team, "default")] == [] for team in TEAMS)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()
