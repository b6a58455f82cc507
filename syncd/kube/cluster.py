"""The cluster as the reconciler sees it: select namespaces, read and write managed Secrets.

Write semantics live here because they need the API's answers: a create that meets an
existing Secret (409) turns into a conflict or an adoption; an update that meets a newer
version (409) is re-read and retried; a delete only removes the version we saw as ours.
"""

from __future__ import annotations

import datetime as dt

from kubernetes import client

from syncd.config import Namespaces
from syncd.config.selection import resolve
from syncd.core.errors import KubeError
from syncd.core.values import (
    Action,
    DesiredSecret,
    ExistingSecret,
    NamespaceInfo,
    Ownership,
    ServiceAccountRef,
    WriteResult,
    adoption_refused,
)
from syncd.kube import namespaces, pullsecrets, secrets, serviceaccounts
from syncd.registry.kubelet import PullSecret

MAX_CONFLICT_RETRIES = 3


class KubeCluster:
    """Implements the reconciler's Cluster protocol on the Kubernetes API."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def select_namespaces(self, selection: Namespaces) -> list[str]:
        """One LIST: every namespace when names or patterns are given, else only those the
        apiserver matches to the selector. Either way the items carry their labels, and
        syncd.config.selection decides, by the same rule as for a watch event."""
        selector = None if selection.names or selection.patterns else selection.selector
        return resolve(selection, namespaces.list_namespaces(self.core, selector))

    def managed_secrets(self, spec: str) -> list[ExistingSecret]:
        return secrets.list_managed(self.core, spec)

    def read_secret(self, namespace: str, name: str) -> ExistingSecret | None:
        return secrets.read(self.core, namespace, name)

    def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResult:
        try:
            secrets.create(self.core, namespace, desired, now)
        except KubeError as exc:
            if exc.status != 409:
                raise
            return self._resolve_existing(namespace, desired, adopt=adopt, now=now)
        return WriteResult(Action.CREATE, changed=True)

    def update(
        self, namespace: str, desired: DesiredSecret, resource_version: str, *, adopt: bool, now: dt.datetime
    ) -> WriteResult:
        try:
            secrets.update(self.core, namespace, desired, now, resource_version)
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise
            return self._resolve_existing(namespace, desired, adopt=adopt, now=now)
        return WriteResult(Action.UPDATE, changed=True)

    def _resolve_existing(
        self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime
    ) -> WriteResult:
        """Someone else wrote first: look again and decide, a bounded number of times."""
        for _ in range(MAX_CONFLICT_RETRIES):
            existing = secrets.read(self.core, namespace, desired.name)
            try:
                return self._write_over(namespace, desired, existing, adopt=adopt, now=now)
            except KubeError as exc:
                if exc.status not in (404, 409):
                    raise
        raise KubeError(f"Secret {namespace}/{desired.name} kept changing under us; giving up until the next sync")

    def _write_over(
        self, namespace: str, desired: DesiredSecret, existing: ExistingSecret | None, *, adopt: bool, now: dt.datetime
    ) -> WriteResult:
        if existing is None:
            secrets.create(self.core, namespace, desired, now)
            return WriteResult(Action.CREATE, changed=True)
        ownership = existing.ownership(desired.instance)
        if ownership is Ownership.OTHER_INSTANCE:
            return WriteResult(Action.CONFLICT, changed=False, owner=existing.instance)
        if ownership is Ownership.UNMANAGED and not adopt:
            return WriteResult(Action.CONFLICT, changed=False)
        if ownership is Ownership.UNMANAGED and (refused := adoption_refused(existing.secret_type)) is not None:
            return refused
        if existing.matches(desired):
            return WriteResult(Action.UNCHANGED, changed=False)
        secrets.update(self.core, namespace, desired, now, existing.resource_version)
        return WriteResult(Action.ADOPT if ownership is Ownership.UNMANAGED else Action.UPDATE, changed=True)

    def delete(self, namespace: str, name: str, resource_version: str) -> None:
        secrets.delete(self.core, namespace, name, resource_version)

    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        return serviceaccounts.list_named(self.core, names, namespace)

    def read_namespace(self, name: str) -> NamespaceInfo | None:
        return namespaces.read_namespace(self.core, name)

    def pull_secret_names(self, namespace: str, service_account: str) -> list[str] | None:
        return pullsecrets.pull_secret_names(self.core, namespace, service_account)

    def pull_secret(self, namespace: str, name: str, instance: str) -> tuple[PullSecret, str | None] | None:
        return pullsecrets.pull_secret(self.core, namespace, name, instance)

    def add_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool:
        return serviceaccounts.add_pull_secret(self.core, namespace, service_account, secret, instance, known=known)

    def remove_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool:
        return serviceaccounts.remove_pull_secret(self.core, namespace, service_account, secret, instance, known=known)
