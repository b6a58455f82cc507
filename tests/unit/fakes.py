"""Fakes at syncd's own boundaries: a Source and a Cluster that keep state in memory."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace

from syncd.config import Credential, Namespaces
from syncd.config.selection import resolve
from syncd.core.errors import CredentialNotFound, KubeError, SourceUnavailable
from syncd.core.values import (
    SECRET_TYPE,
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
from syncd.registry.dockerconfig import content_hash, registries_of
from syncd.sources.base import Source

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


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
    """Namespaces with labels, Secrets by (namespace, name), ServiceAccounts; records every write.

    Follows syncd.kube.cluster.KubeCluster on the apiserver, as tests/integration/test_cluster_contract.py
    holds it: a namespace carries its `kubernetes.io/metadata.name` label, a write in a namespace
    that does not exist is a 404, an update or delete from a stale resourceVersion a 409 (which
    create and update resolve as the adapter does, by looking again), a ServiceAccount that does
    not exist is not edited.
    """

    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], ExistingSecret] = field(default_factory=dict)
    accounts: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    added: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    terminating: set[str] = field(default_factory=set)
    version: int = 0

    def _info(self, name: str, labels: dict[str, str]) -> NamespaceInfo:
        # The apiserver labels every namespace with its name (selectable as any other label).
        labels = {**labels, NAMESPACE_NAME_LABEL: name}
        return NamespaceInfo(name, terminating=name in self.terminating, labels=labels)

    def select_namespaces(self, selection: Namespaces) -> list[str]:
        return resolve(selection, (self._info(n, labels) for n, labels in self.namespaces.items()))

    def managed_secrets(self, spec: str) -> list[ExistingSecret]:
        return [s for s in self.secrets.values() if s.managed and s.name == spec and s.spec == spec]

    def read_secret(self, namespace: str, name: str) -> ExistingSecret | None:
        return self.secrets.get((namespace, name))

    def _store(self, namespace: str, desired: DesiredSecret, now: dt.datetime) -> None:
        self.version += 1
        existing = self.secrets.get((namespace, desired.name))
        # A Secret's type is immutable: an update (a merge patch) keeps the type it was created with.
        secret_type = existing.secret_type if existing is not None else SECRET_TYPE
        self.secrets[(namespace, desired.name)] = ExistingSecret(
            namespace,
            desired.name,
            str(self.version),
            managed=True,
            spec=desired.name,
            annotated_hash=desired.content_hash,
            data_hash=content_hash(desired.content),
            secret_type=secret_type,
            synced_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            credentials=",".join(desired.credentials),
            registries=tuple(registries_of(desired.content)),
            prune=desired.prune,
            instance=desired.instance,
        )

    def _check(self, namespace: str, operation: str, *, namespace_listed: bool = True) -> None:
        if namespace in self.failing:
            raise KubeError(f"{operation} in {namespace}: HTTP 500", status=500)
        if namespace_listed and namespace not in self.namespaces:
            raise KubeError(f"{operation} in {namespace}: HTTP 404 Not Found", status=404)
        self.writes.append((operation, namespace, ""))

    def _write(self, operation: str, namespace: str, desired: DesiredSecret, now: dt.datetime) -> None:
        self._check(namespace, operation)
        self._store(namespace, desired, now)

    def create(self, namespace: str, desired: DesiredSecret, *, adopt: bool, now: dt.datetime) -> WriteResult:
        existing = self.secrets.get((namespace, desired.name))
        if existing is not None:  # the apiserver's 409: look again and decide
            return self._write_over(namespace, desired, existing, adopt=adopt, now=now)
        self._write("create", namespace, desired, now)
        return WriteResult(Action.CREATE, changed=True)

    def update(
        self, namespace: str, desired: DesiredSecret, resource_version: str, *, adopt: bool, now: dt.datetime
    ) -> WriteResult:
        existing = self.secrets.get((namespace, desired.name))
        if existing is None or existing.resource_version != resource_version:  # 404 or 409: look again
            return self._write_over(namespace, desired, existing, adopt=adopt, now=now)
        self._write("update", namespace, desired, now)
        return WriteResult(Action.UPDATE, changed=True)

    def _write_over(
        self, namespace: str, desired: DesiredSecret, existing: ExistingSecret | None, *, adopt: bool, now: dt.datetime
    ) -> WriteResult:
        """KubeCluster._write_over: someone else wrote first."""
        if existing is None:
            self._write("create", namespace, desired, now)
            return WriteResult(Action.CREATE, changed=True)
        ownership = existing.ownership(desired.instance)
        if ownership is Ownership.OTHER_INSTANCE:
            return WriteResult(Action.CONFLICT, changed=False, owner=existing.instance)
        if ownership is Ownership.UNMANAGED and not adopt:
            return WriteResult(Action.CONFLICT, changed=False)
        if existing.matches(desired):
            return WriteResult(Action.UNCHANGED, changed=False)
        self._write("update", namespace, desired, now)
        return WriteResult(Action.ADOPT if ownership is Ownership.UNMANAGED else Action.UPDATE, changed=True)

    def delete(self, namespace: str, name: str, resource_version: str) -> None:
        """Only the version seen (the adapter's precondition): a newer one is a 409, none a 404."""
        existing = self.secrets.get((namespace, name))
        if existing is None:
            raise KubeError(f"deleting Secret {namespace}/{name}: HTTP 404 Not Found", status=404)
        if existing.resource_version != resource_version:
            raise KubeError(f"deleting Secret {namespace}/{name}: HTTP 409 Conflict", status=409)
        # A Secret there means its namespace exists, even where a test dropped it from `namespaces`
        # to deselect it.
        self._check(namespace, "delete", namespace_listed=False)
        del self.secrets[(namespace, name)]

    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        return [
            self._ref(key)
            for key in self.accounts
            if (namespace is None or key[0] == namespace) and (names is None or key[1] in names)
        ]

    def _ref(self, key: tuple[str, str]) -> ServiceAccountRef:
        pull_secrets, added = tuple(self.accounts[key]), tuple(self.added.get(key, []))
        # A version that changes whenever the account does (tests also edit `accounts` directly).
        version = hashlib.sha256(repr((pull_secrets, added)).encode()).hexdigest()[:12]
        return ServiceAccountRef(key[0], key[1], pull_secrets, added, resource_version=version)

    def read_namespace(self, name: str) -> NamespaceInfo | None:
        labels = self.namespaces.get(name)
        return self._info(name, labels) if labels is not None else None

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
        return self._edit((namespace, service_account), secret, instance, add=True, known=known)

    def remove_pull_secret(
        self,
        namespace: str,
        service_account: str,
        secret: str,
        instance: str,
        *,
        known: ServiceAccountRef | None = None,
    ) -> bool:
        """Only an entry syncd recorded (every entry of that name goes with it)."""
        return self._edit((namespace, service_account), secret, instance, add=False, known=known)

    def _edit(
        self, key: tuple[str, str], secret: str, instance: str, *, add: bool, known: ServiceAccountRef | None
    ) -> bool:
        """As syncd.kube.serviceaccounts._edit: a `known` listing decides alone when it shows nothing
        to do; otherwise its patch goes out if it is still current, else the account is read again."""
        if known is not None and known.resource_version:
            if not _edit_wanted(known, secret, instance, add=add):
                return False
            if key in self.accounts and self._ref(key).resource_version == known.resource_version:
                return self._apply(key, secret, instance, add=add)
        if key not in self.accounts or not _edit_wanted(self._ref(key), secret, instance, add=add):
            return False
        return self._apply(key, secret, instance, add=add)

    def _apply(self, key: tuple[str, str], secret: str, instance: str, *, add: bool) -> bool:
        entry = added_entry(instance, secret)
        if add:
            self.accounts[key].append(secret)
            self.added.setdefault(key, []).append(entry)
        else:
            self.added[key] = [e for e in self.added[key] if e != entry]
            self.accounts[key] = [name for name in self.accounts[key] if name != secret]
        return True

    def edit_by_hand(self, namespace: str, name: str) -> None:
        """Someone changes the Secret's data: a new resourceVersion, as every write makes."""
        self.version += 1
        edited = replace(self.secrets[(namespace, name)], data_hash="sha256:edited", resource_version=str(self.version))
        self.secrets[(namespace, name)] = edited


def _edit_wanted(account: ServiceAccountRef, secret: str, instance: str, *, add: bool) -> bool:
    """Whether the edit changes anything: adding where the name is absent, removing what syncd added."""
    return secret not in account.pull_secrets if add else account.added_by(instance, secret)


# The fakes stand in for these protocols: mypy --strict (make lint) fails here when one drifts from them.
_FAKE_CLUSTER: Cluster = FakeCluster()
_FAKE_SOURCE: Source[Credential] = FakeSource({})
