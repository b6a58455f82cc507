"""Fakes at syncd's own boundaries: a Source and a Cluster that keep state in memory."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from syncd.config import Credential, Namespaces
from syncd.config.selection import selects
from syncd.core.errors import CredentialNotFound, KubeError, SourceUnavailable
from syncd.core.values import (
    Action,
    DesiredSecret,
    ExistingSecret,
    FetchedCredential,
    NamespaceInfo,
    Ownership,
    RegistryCredential,
    ServiceAccountRef,
    WriteResult,
    added_entry,
)
from syncd.engine.ports import Cluster
from syncd.sources.base import Source


class FakeSource:
    """Answers from a dict of credential name -> (username, password); counts calls."""

    kind = "vault"

    def __init__(self, logins: dict[str, tuple[str, str]]) -> None:
        self.logins = logins
        self.calls: list[str] = []
        self.down = False

    def fetch(self, credential: Credential) -> FetchedCredential:
        self.calls.append(credential.name)
        if self.down:
            raise SourceUnavailable(credential.name, "fake source is down")
        if credential.name not in self.logins:
            raise CredentialNotFound(credential.name, "not in the fake")
        username, password = self.logins[credential.name]
        entry = RegistryCredential(credential.registry_names[0], username, password)
        return FetchedCredential(credential.name, self.kind, (entry,))


@dataclass(frozen=True)
class Written:
    existing: ExistingSecret
    labels: dict[str, str]


@dataclass
class FakeCluster:
    """Namespaces with labels, Secrets by (namespace, name), ServiceAccounts; records every write."""

    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], ExistingSecret] = field(default_factory=dict)
    accounts: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    added: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    version: int = 0

    def select_namespaces(self, selection: Namespaces) -> list[str]:
        return [
            n for n, labels in sorted(self.namespaces.items()) if selects(selection, NamespaceInfo(n, labels=labels))
        ]

    def managed_secrets(self, spec: str) -> list[ExistingSecret]:
        return [s for s in self.secrets.values() if s.managed and s.name == spec and s.spec == spec]

    def read_secret(self, namespace: str, name: str) -> ExistingSecret | None:
        return self.secrets.get((namespace, name))

    def _store(self, namespace: str, desired: DesiredSecret) -> None:
        self.version += 1
        self.secrets[(namespace, desired.name)] = ExistingSecret(
            namespace,
            desired.name,
            str(self.version),
            managed=True,
            spec=desired.name,
            annotated_hash=desired.content_hash,
            data_hash=desired.content_hash,
            secret_type="kubernetes.io/dockerconfigjson",
            credentials=",".join(desired.credentials),
            prune=desired.prune,
            instance=desired.instance,
        )

    def _check(self, namespace: str, operation: str) -> None:
        if namespace in self.failing:
            raise KubeError(f"{operation} in {namespace}: HTTP 500", status=500)
        self.writes.append((operation, namespace, ""))

    def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResult:
        existing = self.secrets.get((namespace, desired.name))
        ownership = existing.ownership(desired.instance) if existing is not None else None
        if ownership is Ownership.OTHER_INSTANCE or (ownership is Ownership.UNMANAGED and not adopt):
            theirs = ownership is Ownership.OTHER_INSTANCE and existing is not None
            return WriteResult(Action.CONFLICT, changed=False, owner=existing.instance if theirs and existing else None)
        self._check(namespace, "create")
        self._store(namespace, desired)
        return WriteResult(Action.ADOPT if existing else Action.CREATE, changed=True)

    def update(
        self, namespace: str, desired: DesiredSecret, resource_version: str, *, adopt: bool, now: dt.datetime
    ) -> WriteResult:
        self._check(namespace, "update")
        self._store(namespace, desired)
        return WriteResult(Action.UPDATE, changed=True)

    def delete(self, namespace: str, name: str, resource_version: str) -> None:
        self._check(namespace, "delete")
        del self.secrets[(namespace, name)]

    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        found = [
            ServiceAccountRef(ns, name, tuple(refs), tuple(self.added.get((ns, name), [])))
            for (ns, name), refs in self.accounts.items()
        ]
        return [
            sa
            for sa in found
            if (namespace is None or sa.namespace == namespace) and (names is None or sa.name in names)
        ]

    def read_namespace(self, name: str) -> NamespaceInfo | None:
        labels = self.namespaces.get(name)
        return NamespaceInfo(name, labels=labels) if labels is not None else None

    def add_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool:
        """The real adapter's rule: an entry already there is not recorded as syncd's."""
        key = (namespace, service_account)
        if secret in self.accounts[key]:
            return False
        self.accounts[key].append(secret)
        self.added.setdefault(key, []).append(added_entry(instance, secret))
        return True

    def remove_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool:
        key, entry = (namespace, service_account), added_entry(instance, secret)
        if entry not in self.added.get(key, []):
            return False
        self.added[key].remove(entry)
        if secret in self.accounts[key]:
            self.accounts[key].remove(secret)
        return True

    def edit_by_hand(self, namespace: str, name: str) -> None:
        self.secrets[(namespace, name)] = replace(self.secrets[(namespace, name)], data_hash="sha256:edited")


# The fakes stand in for these protocols: mypy --strict (make lint) fails here when one drifts from them.
_FAKE_CLUSTER: Cluster = FakeCluster()
_FAKE_SOURCE: Source[Credential] = FakeSource({})
