"""syncd.kube.stores and syncd.kube.cached_cluster: the stores planning reads, and when it reads the API instead.

The API client points at a port nothing listens on: a read that reaches the API fails with a
KubeError, so a test passing proves the answer came from the store (or, where expected, did not).
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from syncd.config import Namespaces
from syncd.core.errors import KubeError
from syncd.core.values import ExistingSecret, NamespaceInfo, ServiceAccountRef
from syncd.kube.cached_cluster import CachedCluster
from syncd.kube.stores import WatchCache


def _secret(namespace: str, spec: str | None = "regcred", version: str = "1") -> ExistingSecret:
    return ExistingSecret(namespace=namespace, name="regcred", resource_version=version, managed=True, spec=spec)


def _nowhere() -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    configuration.retries = 0
    return client.ApiClient(configuration)


@pytest.fixture
def cache() -> WatchCache:
    found = WatchCache()
    found.replace(
        "namespaces", [NamespaceInfo("team-a"), NamespaceInfo("team-b", terminating=True), NamespaceInfo("x")]
    )
    found.replace("secrets/regcred", [_secret("team-a"), _secret("x", spec="other")])
    found.replace(
        "serviceaccounts/default", [ServiceAccountRef("team-a", "default", ()), ServiceAccountRef("x", "default", ())]
    )
    return found


def test_events_keep_a_store_current(cache: WatchCache) -> None:
    cache.apply("secrets/regcred", "MODIFIED", _secret("team-a", version="2"))
    cache.apply("secrets/regcred", "ADDED", _secret("team-c"))
    cache.apply("secrets/regcred", "DELETED", _secret("x"))
    found = sorted((s.namespace, s.resource_version) for s in cache.values("secrets/regcred") or [])  # type: ignore[union-attr]
    assert found == [("team-a", "2"), ("team-c", "1")]


def test_a_store_whose_watch_is_down_is_not_read_and_comes_back_with_it(cache: WatchCache) -> None:
    cache.set_live("secrets/regcred", False)
    assert cache.values("secrets/regcred") is None
    cache.set_live("secrets/regcred", True)
    assert cache.values("secrets/regcred") is not None
    cache.forget("secrets/regcred")
    assert cache.values("secrets/regcred") is None


def test_a_first_list_is_waited_for_but_not_once_it_failed() -> None:
    cache = WatchCache()
    cache.expect("namespaces")
    started = time.monotonic()
    assert cache.values("namespaces", wait=0.2) is None
    assert time.monotonic() - started >= 0.2
    cache.set_live("namespaces", False)  # the first LIST failed: read with LISTs, at once
    started = time.monotonic()
    assert cache.values("namespaces", wait=5) is None
    assert time.monotonic() - started < 1
    cache.replace("namespaces", [NamespaceInfo("team-a")])
    assert cache.values("namespaces", wait=5) == [NamespaceInfo("team-a")]


def test_planning_reads_the_stores_and_never_the_api(cache: WatchCache) -> None:
    cluster = CachedCluster(_nowhere(), cache, first_list_wait=0)
    assert cluster.select_namespaces(Namespaces(patterns=["team-*"])) == ["team-a"]  # terminating skipped
    assert [s.namespace for s in cluster.managed_secrets("regcred")] == ["team-a"]  # its spec label only
    assert [a.namespace for a in cluster.service_accounts(["default"], "x")] == ["x"]
    assert len(cluster.service_accounts(["default"])) == 2


def test_a_kind_whose_watch_is_down_or_missing_is_read_from_the_api(cache: WatchCache) -> None:
    cluster = CachedCluster(_nowhere(), cache, first_list_wait=0)
    cache.set_live("namespaces", False)
    with pytest.raises(KubeError, match="listing namespaces"):
        cluster.select_namespaces(Namespaces(patterns=["team-*"]))
    with pytest.raises(KubeError, match="Secrets named 'retired'"):
        cluster.managed_secrets("retired")  # a retired spec's name is not watched
    with pytest.raises(KubeError, match="ServiceAccounts"):
        cluster.service_accounts(["default", "builder"])  # one of the names is not watched
