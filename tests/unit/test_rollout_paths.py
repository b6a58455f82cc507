"""The one rollout path (syncd.engine.rollout.Rollout.fan_out) as a namespace sync and a retired
spec take it: ServiceAccounts listed before the writes, each namespace's edits after its own
Secret, reported in the order listed. test_reconciler_accounts holds the whole-spec sync to it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import Config, parse_config
from syncd.core.values import Action, ExistingSecret, ServiceAccountRef, added_entry
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from tests.unit.fakes import FakeCluster, FakeSource

TEAMS = ["team-1", "team-2", "team-3"]
RETIRED = {"name": "gone", "service_accounts": ["default", "builder"]}


@dataclass
class Recording(FakeCluster):
    """Records each ServiceAccount list (the namespace asked) and each write, in order, from any thread."""

    lists: list[str | None] = field(default_factory=list)
    order: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        self.lists.append(namespace)
        return super().service_accounts(names, namespace)

    def _check(self, namespace: str, operation: str, *, namespace_listed: bool = True) -> None:
        super()._check(namespace, operation, namespace_listed=namespace_listed)
        with self.lock:
            self.order.append((operation, namespace))

    def add_pull_secret(self, namespace: str, service_account: str, *args: Any, **kwargs: Any) -> bool:
        with self.lock:
            self.order.append(("link", f"{namespace}/{service_account}"))
        return super().add_pull_secret(namespace, service_account, *args, **kwargs)

    def remove_pull_secret(self, namespace: str, service_account: str, *args: Any, **kwargs: Any) -> bool:
        with self.lock:
            self.order.append(("unlink", f"{namespace}/{service_account}"))
        return super().remove_pull_secret(namespace, service_account, *args, **kwargs)


def config(retired: list[Any] | None = None, **spec: Any) -> Config:
    return parse_config(
        {
            "vault": {"address": "https://vault.invalid"},
            "credentials": [{"name": "a", "registry": "a.example", "vault": {"path": "a"}}],
            "secrets": [{"name": "pull", "credentials": ["a"], "namespaces": {"patterns": ["team-*"]}, **spec}],
            "retired_secrets": retired or [],
        }
    )


def reconciler(cfg: Config, cluster: FakeCluster, registry: CollectorRegistry) -> Reconciler:
    source = FakeSource({"a": ("user-a", "secret-a")})
    return Reconciler(config=cfg, sources={"vault": source}, cluster=cluster, metrics=Metrics(registry), workers=2)


def test_a_namespace_sync_lists_only_its_namespace_and_links_after_its_secret(registry: CollectorRegistry) -> None:
    cluster = Recording(namespaces={"team-1": {}})
    cluster.accounts[("team-1", "default")] = []
    cfg = config(service_accounts=["default", "builder"])
    sync = reconciler(cfg, cluster, registry)
    sync.sync_all()
    cluster.namespaces["team-2"] = {}
    cluster.accounts[("team-2", "builder")] = []
    cluster.accounts[("team-2", "default")] = []
    cluster.lists.clear()
    cluster.order.clear()
    result = sync.sync_namespace(cfg.secrets[0], "team-2")
    assert result is not None
    assert cluster.lists == ["team-2"]
    assert cluster.order == [("create", "team-2"), ("link", "team-2/builder"), ("link", "team-2/default")]
    assert [(c.service_account, c.action) for c in result.account_changes] == [("builder", "link"), ("default", "link")]
    assert result.result == "success"


def test_a_namespace_sync_whose_write_fails_links_nothing(registry: CollectorRegistry) -> None:
    cluster = Recording(namespaces={"team-1": {}})
    cfg = config(service_accounts=["default"])
    sync = reconciler(cfg, cluster, registry)
    sync.sync_all()
    cluster.namespaces["team-2"] = {}
    cluster.accounts[("team-2", "default")] = []
    cluster.failing.add("team-2")
    result = sync.sync_namespace(cfg.secrets[0], "team-2")
    assert result is not None
    assert [o.error for o in result.outcomes] == ["create in team-2: HTTP 500"]
    assert result.account_changes == []
    assert cluster.accounts[("team-2", "default")] == []
    assert result.result == "partial"


def retired_everywhere(cluster: FakeCluster) -> None:
    """Secrets `gone` (a spec asking for pruning) in every team, linked by syncd to `default`;
    team-1's `builder` names it too, added by hand."""
    for team in TEAMS:
        cluster.namespaces[team] = {}
        cluster.secrets[(team, "gone")] = ExistingSecret(
            team, "gone", "1", managed=True, spec="gone", prune=True, instance="default"
        )
        cluster.accounts[(team, "default")] = ["gone"]
        cluster.added[(team, "default")] = [added_entry("default", "gone")]
    cluster.accounts[("team-1", "builder")] = ["gone"]


def test_a_retired_spec_is_deleted_and_unlinked_namespace_by_namespace(registry: CollectorRegistry) -> None:
    cluster = Recording()
    retired_everywhere(cluster)
    cluster.failing.add("team-2")
    result = reconciler(config(retired=[RETIRED]), cluster, registry).prune_retired()
    assert [(o.change.namespace, o.change.action, o.ok) for o in result.outcomes] == [
        ("team-1", Action.PRUNE, True),
        ("team-2", Action.PRUNE, False),
        ("team-3", Action.PRUNE, True),
    ]
    assert cluster.lists == [None]  # once, before the deletes
    for team in ("team-1", "team-3"):
        assert cluster.order.index(("delete", team)) < cluster.order.index(("unlink", f"{team}/default"))
    assert [(c.namespace, c.service_account, c.action) for c in result.account_changes] == [
        ("team-1", "default", "unlink"),
        ("team-3", "default", "unlink"),
    ]
    assert cluster.accounts[("team-1", "builder")] == ["gone"]  # not syncd's to take back
    assert cluster.accounts[("team-2", "default")] == ["gone"]  # its Secret is still there


def test_a_dry_run_of_a_retired_spec_plans_the_same_and_edits_nothing(registry: CollectorRegistry) -> None:
    cluster = Recording()
    retired_everywhere(cluster)
    result = reconciler(config(retired=[RETIRED]), cluster, registry).prune_retired(dry_run=True)
    assert [c.namespace for c in result.account_changes] == TEAMS
    assert cluster.order == []
    assert all(cluster.accounts[(team, "default")] == ["gone"] for team in TEAMS)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()
