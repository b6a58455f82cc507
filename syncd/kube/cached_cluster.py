"""The cluster as the daemon reads it: planning from the watch stores, writing through the API.

A scheduled sync in which nothing changed then makes no request at all: namespaces, the spec's
managed Secrets and the ServiceAccounts come from syncd.kube.stores. Writes are unchanged and
stay safe on a store a moment behind: updates and deletes carry the resourceVersion the store
holds (a newer one makes them a 409, re-read and retried), a create meeting an existing Secret
re-reads it, a ServiceAccount patch is conditioned on the version seen. A kind whose watch is
down is read with a LIST, as `syncd once` does. Single-namespace reads (watch-triggered syncs)
stay GETs: the event that triggered them is the freshest news there is.
"""

from __future__ import annotations

from typing import cast

from kubernetes import client

from syncd.config import Namespaces
from syncd.config.selection import resolve
from syncd.core.values import ExistingSecret, NamespaceInfo, ServiceAccountRef
from syncd.kube.cluster import KubeCluster
from syncd.kube.stores import WatchCache

# How long a sync waits for a watch's first LIST before listing for itself (50,000 namespaces
# take seconds to list; listing them twice would cost the apiserver and our memory twice).
FIRST_LIST_WAIT = 120.0


class CachedCluster(KubeCluster):
    def __init__(self, api: client.ApiClient, cache: WatchCache, *, first_list_wait: float = FIRST_LIST_WAIT) -> None:
        super().__init__(api)
        self.cache = cache
        self.first_list_wait = first_list_wait

    def select_namespaces(self, selection: Namespaces) -> list[str]:
        found = self.cache.values("namespaces", wait=self.first_list_wait)
        if found is None:
            return super().select_namespaces(selection)
        return resolve(selection, cast(list[NamespaceInfo], found))

    def managed_secrets(self, spec: str) -> list[ExistingSecret]:
        """The store holds every syncd-labelled Secret of that name; the LIST also selects its spec label."""
        found = self.cache.values(f"secrets/{spec}", wait=self.first_list_wait)
        if found is None:
            return super().managed_secrets(spec)
        return [secret for secret in cast(list[ExistingSecret], found) if secret.spec == spec]

    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        kinds = ["serviceaccounts"] if names is None else [f"serviceaccounts/{name}" for name in names]
        stores = [self.cache.values(kind, wait=self.first_list_wait) for kind in kinds]
        if any(store is None for store in stores):
            return super().service_accounts(names, namespace)
        accounts = [cast(ServiceAccountRef, account) for store in stores for account in store or []]
        return [a for a in accounts if namespace is None or a.namespace == namespace]
