"""Composition root: builds sources, the cluster client and the reconciler from a config."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from syncd.config import Config
from syncd.kube.client import load_api_client
from syncd.kube.cluster import KubeCluster
from syncd.kube.events import EventRecorder
from syncd.metrics import Metrics
from syncd.reconciler import Reconciler
from syncd.sources.registry import build_sources


@dataclass(frozen=True)
class ClusterOptions:
    kubeconfig: str | None = None
    context: str | None = None


def write_workers() -> int:
    """Concurrent writes: enough to hide apiserver latency, bounded so as not to flood it."""
    return min(32, 8 * (os.cpu_count() or 2))


def build_cluster(options: ClusterOptions, workers: int) -> KubeCluster:
    api = load_api_client(kubeconfig=options.kubeconfig, context=options.context, pool_size=workers + 4)
    return KubeCluster(api)


def build_reconciler(config: Config, options: ClusterOptions, registry: CollectorRegistry | None = None) -> Reconciler:
    workers = write_workers()
    api = load_api_client(kubeconfig=options.kubeconfig, context=options.context, pool_size=workers + 4)
    return Reconciler(
        config=config,
        sources=build_sources(config),
        cluster=KubeCluster(api),
        metrics=Metrics(registry or CollectorRegistry()),
        workers=workers,
        events=EventRecorder(api, instance=config.instance),
    )
