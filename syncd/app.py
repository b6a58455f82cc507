"""Composition root: the one place that builds real clients. `once`, `status` and `run` start here.

Everything below is handed what it talks to: the reconciler its sources and cluster, the
daemon its Ports. A reload goes through `Sources`, which keeps the Vault session (and its
login) unless the `vault:` block changed.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client
from prometheus_client import CollectorRegistry, disable_created_metrics

from syncd.config import Config
from syncd.core.values import SyncResult
from syncd.core.watch_events import FAILED_TO_PULL
from syncd.daemon.routing import Loop
from syncd.daemon.service import Daemon, Elector, OnEvent, OnRelist, Ports
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from syncd.engine.repair import Repairer, RepairOutcome, SyncKnowledge, TokenBucket
from syncd.kube.cached_cluster import CachedCluster
from syncd.kube.client import WriteFence, load_api_client
from syncd.kube.cluster import KubeCluster
from syncd.kube.elector import LeaderElector
from syncd.kube.events import EventRecorder
from syncd.kube.pods import KubePods
from syncd.kube.pull_events import pull_failure_loops
from syncd.kube.pullsyncs import CrdMissing, PullSyncObjects
from syncd.kube.reviews import AccessReviews
from syncd.kube.stores import WatchCache
from syncd.kube.watches import watch_loops
from syncd.kube.webhook import WebhookObjects
from syncd.sources.base import Source
from syncd.sources.factory import build_sources


@dataclass(frozen=True)
class ClusterOptions:
    kubeconfig: str | None = None
    context: str | None = None


def write_workers() -> int:
    """Concurrent writes: enough to hide apiserver latency, bounded so as not to flood it."""
    return min(32, 8 * (os.cpu_count() or 2))


class Sources:
    """The sources of the running config, rebuilt for a reloaded one."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.current = build_sources(config)

    def reload(self, config: Config) -> dict[str, Source[Any]]:
        """A new Vault session (a new login) only when the `vault:` block changed."""
        kept = self.current.get("vault") if config.vault == self.config.vault else None
        self.config, self.current = config, build_sources(config, vault=kept)
        return self.current


def _api(options: ClusterOptions, pool_size: int, fence: WriteFence | None = None) -> client.ApiClient:
    return load_api_client(kubeconfig=options.kubeconfig, context=options.context, pool_size=pool_size, fence=fence)


def build_cluster(options: ClusterOptions, workers: int) -> KubeCluster:
    """`status`: the cluster, read only."""
    return KubeCluster(_api(options, workers + 4))


def read_status_objects(options: ClusterOptions, instance: str | None) -> list[dict[str, Any]]:
    """`status --from-cluster`: the PullSecretSync objects, of one instance or of all."""
    objects = PullSyncObjects(_api(options, 2), instance or "")
    return objects.objects(every_instance=instance is None)


def _reconciler(
    config: Config,
    api: client.ApiClient,
    sources: dict[str, Source[Any]],
    metrics: Metrics,
    cache: WatchCache | None = None,
) -> Reconciler:
    """With a cache (the daemon), syncs plan from the watch stores; without (`once`), from LISTs."""
    return Reconciler(
        config=config,
        sources=sources,
        cluster=KubeCluster(api) if cache is None else CachedCluster(api, cache),
        metrics=metrics,
        workers=write_workers(),
        events=EventRecorder(api, instance=config.instance),
    )


def build_reconciler(config: Config, options: ClusterOptions, registry: CollectorRegistry | None = None) -> Reconciler:
    """`once`: one reconciler, one run."""
    api = _api(options, write_workers() + 4)
    return _reconciler(config, api, build_sources(config), Metrics(registry or CollectorRegistry()))


def repair_once(
    config: Config, options: ClusterOptions, results: list[SyncResult], *, dry_run: bool
) -> list[RepairOutcome]:
    """`once` with repair_pods: the Pending Pods after the run's sync (--dry-run: listed, not evicted)."""
    api = _api(options, 4)
    repairer = Repairer(
        config=lambda: config,
        pods=KubePods(api),
        metrics=Metrics(CollectorRegistry()),
        events=EventRecorder(api, instance=config.instance),
        bucket=TokenBucket(),
    )
    return repairer.sweep(SyncKnowledge(KubeCluster(api), results), dry_run=dry_run)


def _watch_loops(
    api: client.ApiClient, cache: WatchCache, config: Config, on_event: OnEvent, on_relist: OnRelist
) -> dict[str, Loop]:
    loops: dict[str, Loop] = {}
    if config.pull_failures:
        loops = dict(pull_failure_loops(api, on_event))
    elif config.repair_pods:  # repair's trigger: the kubelet's `Failed to pull image` Events only
        loops = dict(pull_failure_loops(api, on_event, (FAILED_TO_PULL,)))
    return loops | dict(
        watch_loops(
            api,
            secret_names=[s.name for s in config.secrets],
            service_account_names=config.service_account_names(),
            on_event=on_event,
            on_relist=on_relist,
            cache=cache,
            relist_every=config.schedule.relist_interval.total_seconds(),
        )
    )


def _elector(api: client.ApiClient, identity: str, config: Config, on_change: Callable[[bool], None]) -> Elector | None:
    election = config.leader_election
    if not election.enabled:
        return None
    return LeaderElector(
        api,
        namespace=election.namespace,
        name=election.name,
        identity=identity,
        lease_duration=election.lease_duration,
        on_change=on_change,
        instance=config.instance,
    )


def _webhook_objects(config: Config, options: ClusterOptions) -> WebhookObjects | None:
    if not config.admission.enabled or config.admission.tls is not None:
        return None
    return WebhookObjects(_api(options, 2), instance=config.instance)


def build_daemon(
    config_path: Path, config: Config, options: ClusterOptions, registry: CollectorRegistry | None = None
) -> Daemon:
    """`run`: the daemon on the real clients; it reloads `config_path` when the file changes."""
    registry = registry or CollectorRegistry()
    fence = WriteFence()
    api = _api(options, write_workers() + 8, fence)
    sources = Sources(config)
    cache = WatchCache()
    reconciler = _reconciler(config, api, sources.current, Metrics(registry), cache)
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    ports = Ports(
        reconciler=reconciler,
        metrics=reconciler.metrics,
        registry=registry,
        lifetimes=reconciler.fetcher.lifetimes,
        sources=sources.reload,
        watch_loops=partial(_watch_loops, api, cache),
        elector=partial(_elector, api, identity),
        # Unfenced: a standby replica answers scrapes too, and a review is a `create`.
        access_reviews=AccessReviews(_api(options, 4)) if config.server.metrics_auth == "kubernetes" else None,
        status_objects=PullSyncObjects(api, config.instance),
        condition_events=EventRecorder(api, instance=config.instance),
        crd_missing=CrdMissing,
        identity=identity,
        stores=cache,
        # Unfenced: every replica may create the shared TLS Secret, the first create wins (409 for the rest).
        webhook_objects=WebhookObjects(_api(options, 2), instance=config.instance)
        if config.admission.enabled
        else None,
        pods=KubePods(api),  # fenced: an eviction is a write, the leader's alone
        owner_events=EventRecorder(api, instance=config.instance),
    )
    daemon = Daemon(config_path, config, ports)
    # Every write asks the lease right before it is sent, not only once per run (the elector has
    # a client of its own, unfenced, for the Lease itself).
    fence.allowed = daemon.may_write
    return daemon


def run_daemon(config_path: Path, config: Config, options: ClusterOptions) -> int:
    """The process of `syncd run`: SIGTERM / SIGINT stop scheduling, let in-flight writes finish,
    release the Lease, exit 0."""
    disable_created_metrics()  # `_created` series double the scrape and nobody alerts on them
    daemon = build_daemon(config_path, config, options)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    return daemon.run()
