"""The daemon's watch stores (syncd.kube.stores) against the real apiserver, through a TCP proxy
that can fail the watches' connections: a Secret deleted while its watch was down is repaired,
whether the watch was seen to fail (syncs read with a LIST meanwhile) or failed silently and lost
the event (the periodic re-list repairs the store, and the re-sync it triggers the Secret)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from harness import Stack
from harness.syncd_process import has_secret, new_namespace
from harness.wait import wait_until
from syncd.config import parse_config
from syncd.core.values import Action
from syncd.engine.fetcher import Freshness
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from syncd.kube.cached_cluster import CachedCluster
from syncd.kube.client import load_api_client
from syncd.kube.stores import WatchCache
from syncd.kube.watches import WatchLoop, watch_loops
from tests.integration.tcp_proxy import TcpProxy
from tests.unit.fakes import FakeSource

pytestmark = pytest.mark.integration
SECRETS = "secrets/regcred"


@dataclass
class Daemonish:
    """The daemon's reading side, in-process: watch loops through the proxy filling a cache, and
    a reconciler planning from it (writing, and listing when a store is down, directly)."""

    cache: WatchCache
    loops: dict[str, WatchLoop]
    reconciler: Reconciler
    relists: list[str]

    def sync(self) -> Action | None:
        """The action the one namespace got; None when the namespace store has not seen it yet."""
        result = self.reconciler.sync(self.reconciler.config.secrets[0], freshness=Freshness.cached())
        assert not result.stopped, result.errors
        return result.outcomes[0].change.action if result.outcomes else None

    def holds(self, namespace: str) -> bool:
        return any(getattr(s, "namespace", None) == namespace for s in self.cache.values(SECRETS) or [])


@pytest.fixture
def proxy(stack: Stack) -> Iterator[TcpProxy]:
    forwarder = TcpProxy(int(urlparse(stack.kube.url).port or 0))
    yield forwarder
    forwarder.close()


def _api(kubeconfig: Path, host: str | None = None) -> client.ApiClient:
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=8)
    if host is not None:
        api.configuration.host = host
    return api


@pytest.fixture
def daemonish(
    stack: Stack, proxy: TcpProxy, prefix: str, instance: str, request: pytest.FixtureRequest
) -> Iterator[Daemonish]:
    config = parse_config(
        {
            "instance": instance,
            "vault": {"address": "https://vault.invalid"},
            "credentials": [{"name": "robot", "registry": "r.example", "vault": {"path": "robot"}}],
            "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"patterns": [f"{prefix}-*"]}}],
        }
    )
    cache, relists = WatchCache(), list[str]()
    relist_every = getattr(request, "param", 3600.0)
    loops = watch_loops(
        _api(stack.kube.kubeconfig, proxy.url),
        secret_names=["regcred"],
        service_account_names=["default"],
        on_event=lambda _event: None,
        on_relist=relists.append,
        cache=cache,
        relist_every=relist_every,
    )
    reconciler = Reconciler(
        config=config,
        sources={"vault": FakeSource({"robot": ("robot", "pw-1")})},
        cluster=CachedCluster(_api(stack.kube.kubeconfig), cache, first_list_wait=30),
        metrics=Metrics(CollectorRegistry()),
    )
    for loop in loops.values():
        loop.start()
    reconciler.desired(config.secrets[0], Freshness.scheduled(reconciler.clock()))  # fetch once; syncs use the cache
    yield Daemonish(cache, loops, reconciler, relists)
    for loop in loops.values():
        loop.stop(wait=5)


def _first_sync(daemon: Daemonish, core_v1: client.CoreV1Api, namespace: str) -> None:
    new_namespace(core_v1, namespace, {})
    wait_until(lambda: daemon.cache.values("namespaces") is not None, 30, "the namespace store")
    wait_until(lambda: daemon.sync() is Action.UNCHANGED and daemon.holds(namespace), 15, "the Secret in the store")


def test_a_secret_deleted_while_the_watch_is_down_is_recreated_from_a_list(
    daemonish: Daemonish, proxy: TcpProxy, core_v1: client.CoreV1Api, prefix: str
) -> None:
    namespace = f"{prefix}-cut"
    _first_sync(daemonish, core_v1, namespace)

    proxy.cut()
    wait_until(lambda: daemonish.cache.values(SECRETS) is None, 15, "the store to go down with its watch")
    core_v1.delete_namespaced_secret("regcred", namespace)
    assert daemonish.sync() is Action.CREATE  # planned from a LIST, not from the store that still holds it
    assert has_secret(core_v1, namespace)

    proxy.restore()
    wait_until(lambda: daemonish.cache.values(SECRETS) is not None, 30, "the watch to come back")
    wait_until(lambda: daemonish.sync() is Action.UNCHANGED, 10, "the store to hold the recreated Secret")


@pytest.mark.parametrize("daemonish", [3.0], indirect=True)
def test_a_secret_deleted_while_the_watch_silently_lost_its_events_is_repaired_by_the_relist(
    daemonish: Daemonish, proxy: TcpProxy, core_v1: client.CoreV1Api, prefix: str
) -> None:
    namespace = f"{prefix}-deaf"
    _first_sync(daemonish, core_v1, namespace)

    proxy.deafen()
    relists, dropped = len(daemonish.relists), proxy.dropped
    core_v1.delete_namespaced_secret("regcred", namespace)
    # The apiserver sent the DELETED event and the proxy swallowed it (no other watch has news).
    wait_until(lambda: proxy.dropped > dropped, 15, "the DELETED event to reach the deaf proxy")
    assert daemonish.sync() is Action.UNCHANGED  # the store missed the DELETED event: it sees the Secret
    assert not has_secret(core_v1, namespace)

    wait_until(lambda: len(daemonish.relists) > relists and not daemonish.holds(namespace), 30, "a re-list")
    assert daemonish.sync() is Action.CREATE  # what the daemon's re-sync after a re-list does
    assert has_secret(core_v1, namespace)


def test_a_stopped_watch_ends_at_once_and_logs_no_failure(
    daemonish: Daemonish, core_v1: client.CoreV1Api, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload stops the watches it no longer needs: each must let go of its connection now, not
    sit in a read until the watch times out (minutes) and log a failure when the apiserver goes."""
    _first_sync(daemonish, core_v1, f"{prefix}-stop")
    loops = list(daemonish.loops.values())
    wait_until(lambda: all(loop.connected.is_set() for loop in loops), 15, "every watch connected")
    started = time.monotonic()
    for loop in loops:
        loop.stop(wait=5)
    assert [loop.kind for loop in loops if loop.thread.is_alive()] == []
    assert time.monotonic() - started < 5
    assert [r.getMessage() for r in caplog.records if "failed" in r.getMessage()] == []
