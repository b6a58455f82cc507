"""What the engine needs of the world outside it: the cluster and an Event sink.

Protocols only, so that the engine holds no library import and is tested with fakes
(tests/unit/fakes.py); syncd.kube implements them on the Kubernetes API.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from syncd.config import Namespaces
from syncd.core.values import DesiredSecret, EventNote, ExistingSecret, NamespaceInfo, ServiceAccountRef, WriteResult


class Cluster(Protocol):
    """What the reconciler needs of Kubernetes (implemented by syncd.kube.cluster.KubeCluster)."""

    def select_namespaces(self, selection: Namespaces) -> list[str]: ...
    def managed_secrets(self, spec: str) -> list[ExistingSecret]: ...
    def read_secret(self, namespace: str, name: str) -> ExistingSecret | None: ...
    def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResult: ...
    def update(
        self, namespace: str, desired: DesiredSecret, resource_version: str, *, adopt: bool, now: dt.datetime
    ) -> WriteResult: ...
    def delete(self, namespace: str, name: str, resource_version: str) -> None: ...
    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]: ...
    def read_namespace(self, name: str) -> NamespaceInfo | None: ...
    def add_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool: ...
    def remove_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool: ...


class EventSink(Protocol):
    def emit(self, events: list[EventNote], now: dt.datetime) -> int: ...
