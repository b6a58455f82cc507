"""The reconciler's decisions, with fakes at the Source and Cluster boundaries."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import Config, parse_config
from syncd.core.errors import KubeError
from syncd.core.values import Action, ExistingSecret
from syncd.engine.fetcher import Freshness
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from tests.unit.fakes import FakeCluster, FakeSource


def config(**spec: Any) -> Config:
    return parse_config(
        {
            "vault": {"address": "https://vault.invalid"},
            "credentials": [
                {"name": "a", "registry": "a.example", "vault": {"path": "a"}},
                {"name": "b", "registry": "b.example", "vault": {"path": "b"}},
            ],
            "secrets": [
                {"name": "pull", "credentials": ["a", "b"], "namespaces": {"patterns": ["team-*"]}, **spec},
                {"name": "pull-a", "credentials": ["a"], "namespaces": {"names": ["team-1"]}},
            ],
        }
    )


@pytest.fixture
def source() -> FakeSource:
    return FakeSource({"a": ("user-a", "secret-a"), "b": ("user-b", "secret-b")})


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(namespaces={"team-1": {}, "team-2": {}, "other": {}})


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


_metrics: dict[int, Metrics] = {}


def reconciler(cfg: Config, source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry) -> Reconciler:
    """A fresh reconciler per run, as the CLI builds one; metrics are registered once per registry."""
    if id(registry) not in _metrics:
        _metrics[id(registry)] = Metrics(registry)
    metrics = _metrics[id(registry)]
    return Reconciler(config=cfg, sources={"vault": source}, cluster=cluster, metrics=metrics, workers=2)


def test_each_credential_is_fetched_once_per_run_across_specs(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    results = reconciler(config(), source, cluster, registry).sync_all()
    assert sorted(source.calls) == ["a", "b"]
    assert [r.result for r in results] == ["success", "success"]
    assert set(cluster.secrets) == {("team-1", "pull"), ("team-2", "pull"), ("team-1", "pull-a")}
    value = registry.get_sample_value
    assert value("syncd_source_requests_total", {"credential": "a", "source": "vault", "result": "success"}) == 1
    assert value("syncd_secret_writes_total", {"secret": "pull", "operation": "create", "result": "success"}) == 2


def test_a_second_run_with_nothing_changed_writes_nothing(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    reconciler(config(), source, cluster, registry).sync_all()
    cluster.writes.clear()
    results = reconciler(config(), source, cluster, registry).sync_all()
    assert cluster.writes == []
    assert results[0].count(Action.UNCHANGED) == 2


def test_a_hand_edited_secret_is_repaired(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    reconciler(config(), source, cluster, registry).sync_all()
    cluster.edit_by_hand("team-2", "pull")
    cluster.writes.clear()
    reconciler(config(), source, cluster, registry).sync_all()
    assert cluster.writes == [("update", "team-2", "")]


def test_a_failing_source_writes_nothing_and_counts_a_failure(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    reconciler(config(), source, cluster, registry).sync_all()
    cluster.writes.clear()
    source.down = True
    results = reconciler(config(), source, cluster, registry).sync_all()
    assert cluster.writes == []
    assert results[0].result == "failure"
    assert "credential 'a'" in results[0].source_errors[0]
    labels = {"credential": "a", "source": "vault", "result": "failure"}
    assert registry.get_sample_value("syncd_source_requests_total", labels) == 1
    assert registry.get_sample_value("syncd_sync_runs_total", {"secret": "pull", "result": "failure"}) == 1


def test_an_invalid_credential_is_an_error_not_an_empty_entry(
    cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    source = FakeSource({"a": ("user-a", ""), "b": ("user-b", "secret-b")})
    results = reconciler(config(), source, cluster, registry).sync_all()
    assert results[0].result == "failure"
    assert "password is empty" in results[0].source_errors[0]
    assert cluster.secrets == {}


def test_dry_run_writes_nothing_and_reports_conflicts(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    cluster.secrets[("team-2", "pull")] = ExistingSecret("team-2", "pull", "7", managed=False)
    results = reconciler(config(), source, cluster, registry).sync_all(dry_run=True)
    assert cluster.writes == []
    actions = {o.change.namespace: o.change.action for o in results[0].outcomes}
    assert actions == {"team-1": Action.CREATE, "team-2": Action.CONFLICT}
    assert registry.get_sample_value("syncd_sync_runs_total", {"secret": "pull", "result": "partial"}) is None


def test_a_failed_write_in_one_namespace_does_not_stop_the_others(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    cluster.failing.add("team-2")
    result = reconciler(config(), source, cluster, registry).sync_all()[0]
    assert result.result == "partial"
    assert ("team-1", "pull") in cluster.secrets
    assert [o.change.namespace for o in result.failed_writes] == ["team-2"]
    states = {
        s: registry.get_sample_value("syncd_namespaces", {"secret": "pull", "state": s}) for s in ("in_sync", "failed")
    }
    assert states == {"in_sync": 1, "failed": 1}


def test_prune_and_service_accounts(source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry) -> None:
    cluster.accounts[("team-1", "default")] = ["other"]
    cluster.accounts[("team-2", "default")] = ["other"]
    cluster.accounts[("team-2", "builder")] = []
    reconciler(config(service_accounts=["default"]), source, cluster, registry).sync_all()
    assert cluster.accounts[("team-2", "default")] == ["other", "pull"]
    assert cluster.accounts[("team-2", "builder")] == []
    narrowed = config(service_accounts=["default"])
    narrowed = narrowed.model_copy(
        update={
            "secrets": [
                narrowed.secrets[0].model_copy(
                    update={"namespaces": narrowed.secrets[0].namespaces.model_copy(update={"patterns": ["team-1"]})}
                ),
                narrowed.secrets[1],
            ]
        }
    )
    reconciler(narrowed, source, cluster, registry).sync_all()
    assert ("team-2", "pull") not in cluster.secrets
    assert cluster.accounts[("team-2", "default")] == ["other"]


def test_secrets_of_retired_specs_are_pruned_only_if_they_asked(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    cluster.secrets[("team-1", "gone")] = ExistingSecret(
        "team-1", "gone", "1", managed=True, spec="gone", prune=True, instance="default"
    )
    cluster.secrets[("team-1", "kept")] = ExistingSecret(
        "team-1", "kept", "1", managed=True, spec="kept", prune=False, instance="default"
    )
    cluster.secrets[("team-1", "other")] = ExistingSecret(
        "team-1", "other", "1", managed=True, spec="other", prune=True, instance="default"
    )
    cfg = config().model_copy(update={"retired_secrets": ["gone", "kept"]})
    reconciler(cfg, source, cluster, registry).sync_all()
    assert ("team-1", "gone") not in cluster.secrets
    assert ("team-1", "kept") in cluster.secrets
    assert ("team-1", "other") in cluster.secrets  # not named by the config: never looked at


def test_pruning_takes_back_the_references_syncd_added_and_no_others(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    cfg = config(service_accounts=["default"])
    sync = reconciler(cfg, source, cluster, registry)
    cluster.accounts[("team-1", "default")] = []
    cluster.accounts[("team-1", "builder")] = ["pull"]  # put there by hand
    sync.sync_all()
    assert cluster.accounts[("team-1", "default")] == ["pull"]
    cluster.namespaces.pop("team-1")  # deselected: pruned
    cluster.namespaces["gone-1"] = {}
    result = sync.sync(cfg.secrets[0], freshness=Freshness.cached())
    assert [(c.namespace, c.service_account, c.action) for c in result.account_changes] == [
        ("team-1", "default", "unlink")
    ]
    assert cluster.accounts[("team-1", "default")] == []
    assert cluster.accounts[("team-1", "builder")] == ["pull"]


def test_a_namespace_sync_writes_that_namespace_alone_from_the_last_rendered_content(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    cfg = config(service_accounts=["default"])
    sync = reconciler(cfg, source, cluster, registry)
    sync.sync_all()
    calls = len(source.calls)
    cluster.namespaces["team-3"] = {}
    cluster.accounts[("team-3", "default")] = []
    cluster.writes.clear()
    result = sync.sync_namespace(cfg.secrets[0], "team-3")
    assert result is not None
    assert [o.change.action for o in result.outcomes] == [Action.CREATE]
    assert cluster.writes == [("create", "team-3", "")]
    assert cluster.accounts[("team-3", "default")] == ["pull"]
    assert len(source.calls) == calls  # no source call
    assert sync.sync_namespace(cfg.secrets[0], "other") is None  # not selected: nothing done
    assert sync.sync_namespace(cfg.secrets[0], "team-3").outcomes[0].change.action is Action.UNCHANGED  # type: ignore[union-attr]


def test_a_sync_from_cached_credentials_does_not_move_last_success(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry
) -> None:
    """Found by the soak: while Vault was down, watch-triggered syncs (cached credentials) moved
    syncd_last_success_timestamp_seconds, so under namespace churn SyncdSyncFailing never fired."""
    times = iter(dt.datetime(2026, 1, 1, 0, 0, second, tzinfo=dt.UTC) for second in range(60))
    metrics = Metrics(registry)
    cfg = config()
    sync = Reconciler(
        config=cfg, sources={"vault": source}, cluster=cluster, metrics=metrics, clock=lambda: next(times)
    )
    [spec, _] = cfg.secrets
    assert sync.sync(spec, freshness=Freshness.scheduled(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))).result == "success"
    value = registry.get_sample_value
    first = value("syncd_last_success_timestamp_seconds", {"secret": "pull"})
    assert first is not None
    source.down = True
    cluster.namespaces["team-3"] = {}
    assert sync.sync(spec, freshness=Freshness.cached()).result == "success"  # the new namespace is served
    assert ("team-3", "pull") in cluster.secrets
    assert value("syncd_last_success_timestamp_seconds", {"secret": "pull"}) == first
    assert value("syncd_sync_runs_total", {"secret": "pull", "result": "success"}) == 2
    source.down = False
    later = Freshness.scheduled(dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC))
    assert sync.sync(spec, freshness=later).result == "success"
    after = value("syncd_last_success_timestamp_seconds", {"secret": "pull"})
    assert after is not None
    assert after > first


@pytest.mark.parametrize("dry_run", [True, False])
def test_adopting_a_secret_of_another_type_is_refused_as_a_conflict_that_says_why(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry, dry_run: bool
) -> None:
    cluster.secrets[("team-1", "pull")] = ExistingSecret("team-1", "pull", "7", managed=False, secret_type="Opaque")
    cfg = config(on_conflict="adopt")
    [result, _] = reconciler(cfg, source, cluster, registry).sync_all(dry_run=dry_run)
    outcome = next(o for o in result.outcomes if o.change.namespace == "team-1")
    assert outcome.change.action is Action.CONFLICT
    assert "of type Opaque exists; adopting it cannot make it a pull Secret" in outcome.change.reason
    assert cluster.secrets[("team-1", "pull")].secret_type == "Opaque"
    assert not cluster.secrets[("team-1", "pull")].managed


def test_an_apiserver_that_fails_the_plans_list_is_a_cluster_error_not_a_source_error(
    source: FakeSource, cluster: FakeCluster, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(spec: str) -> list[ExistingSecret]:
        raise KubeError(f"listing the Secrets of {spec}: 503 Service Unavailable")

    monkeypatch.setattr(cluster, "managed_secrets", refused)
    results = reconciler(config(), source, cluster, registry).sync_all()
    assert cluster.writes == []
    assert results[0].source_errors == []
    assert results[0].cluster_errors == ["listing the Secrets of pull: 503 Service Unavailable"]
    assert results[0].result == "failure"
    assert results[0].errors == results[0].cluster_errors
    labels = {"credential": "a", "source": "vault", "result": "success"}
    assert registry.get_sample_value("syncd_source_requests_total", labels) == 1  # the source did answer
