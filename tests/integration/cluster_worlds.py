"""The three implementations of the reconciler's Cluster port, each in a world a test can arrange.

`fake`: tests.unit.fakes.FakeCluster, arranged in memory. `kube`: syncd.kube.cluster.KubeCluster on
the session's apiserver. `cached`: syncd.kube.cached_cluster.CachedCluster over the watch stores
(syncd.kube.stores) filled by syncd.kube.watches, as `syncd run` wires them in syncd/app.py.

A world is arranged the way the apiserver would be: a namespace carries its
`kubernetes.io/metadata.name` label, a `default` ServiceAccount is what the controller-manager
makes, someone else's Secret is written by someone else. The cached world is eventually consistent
by design: `settle()` waits until every store holds what a LIST returns now (for this test's
namespaces), and is called before each read the stores serve, so a case asserts one answer for all.

The only module of the contract tests importing the harness (harness/).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.kube_objects import (
    HasMetadata,
    default_service_account,
    name_of,
    namespace_of,
    pull_secret_names,
    resource_version,
)
from harness.wait import wait_until
from syncd.config import Namespaces
from syncd.core.values import (
    DesiredSecret,
    ExistingSecret,
    NamespaceInfo,
    RegistryCredential,
    ServiceAccountRef,
)
from syncd.core.watch_events import NamespaceEvent, SecretEvent, ServiceAccountEvent, WatchEvent
from syncd.engine.ports import Cluster
from syncd.kube.cached_cluster import CachedCluster
from syncd.kube.client import load_api_client
from syncd.kube.cluster import KubeCluster
from syncd.kube.lists import list_items
from syncd.kube.secrets import existing_from
from syncd.kube.stores import WatchCache
from syncd.kube.watches import WatchLoop, watch_loops
from syncd.registry.dockerconfig import render
from tests.unit.fakes import FakeCluster

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
SYNCED_AT = "2026-01-02T03:04:05Z"
SECRET = "regcred"
OTHER_SPEC = "othercred"
ACCOUNTS = ("default", "builder", "nobody")  # every ServiceAccount name the cases ask for
NAME_LABEL = "kubernetes.io/metadata.name"  # the apiserver sets it on every namespace
PROTECTED = "kube-system"
HOLD = "contracts.syncd.test/hold"  # a finalizer keeping a deleted namespace Terminating
SETTLE_SECONDS = 30.0


def desired(login: str = "pw-1", *, instance: str, name: str = SECRET) -> DesiredSecret:
    """The Secret syncd would write for the robot login `login` (a password: each one a new content)."""
    rendered = render([RegistryCredential("ghcr.io", "robot", login)])
    return DesiredSecret(
        name=name,
        content=rendered.content,
        content_hash=rendered.content_hash,
        credentials=("robot",),
        instance=instance,
    )


def secret_item(
    namespace: str, name: str, labels: dict[str, str], data: dict[str, bytes], kind: str = "Opaque"
) -> dict[str, Any]:
    """A Secret as someone else writes it (and as a LIST returns it, less the server's fields)."""
    encoded = {key: base64.b64encode(value).decode() for key, value in data.items()}
    return {"metadata": {"namespace": namespace, "name": name, "labels": labels}, "type": kind, "data": encoded}


class World(Protocol):
    """What a contract case needs: the port, and the cluster arranged as others would arrange it."""

    name: str
    prefix: str

    @property
    def cluster(self) -> Cluster: ...

    def namespace(self, suffix: str, labels: dict[str, str] | None = None, *, terminating: bool = False) -> str: ...
    def foreign_secret(
        self, namespace: str, name: str, labels: dict[str, str], data: dict[str, bytes], kind: str = "Opaque"
    ) -> None: ...
    def account(self, namespace: str, name: str, pull_secrets: tuple[str, ...] = ()) -> None: ...
    def stored_pull_secrets(self, namespace: str, name: str) -> list[str]: ...
    def state(self) -> dict[str, Any]: ...
    def settle(self) -> None: ...


@dataclass
class FakeWorld:
    """FakeCluster, holding what the apiserver would hold: kube-system, and each namespace's label."""

    prefix: str
    name: str = "fake"
    fake: FakeCluster = field(default_factory=FakeCluster)

    def __post_init__(self) -> None:
        self.fake.namespaces[PROTECTED] = {}

    @property
    def cluster(self) -> Cluster:
        return self.fake

    def namespace(self, suffix: str, labels: dict[str, str] | None = None, *, terminating: bool = False) -> str:
        name = f"{self.prefix}-{suffix}"
        self.fake.namespaces[name] = dict(labels or {})
        if terminating:
            self.fake.terminating.add(name)
        return name

    def foreign_secret(
        self, namespace: str, name: str, labels: dict[str, str], data: dict[str, bytes], kind: str = "Opaque"
    ) -> None:
        self.fake.version += 1
        found = existing_from(secret_item(namespace, name, labels, data, kind))  # parsed as the adapter parses it
        self.fake.secrets[(namespace, name)] = replace(found, resource_version=str(self.fake.version))

    def account(self, namespace: str, name: str, pull_secrets: tuple[str, ...] = ()) -> None:
        self.fake.accounts[(namespace, name)] = list(pull_secrets)

    def stored_pull_secrets(self, namespace: str, name: str) -> list[str]:
        return list(self.fake.accounts[(namespace, name)])

    def state(self) -> dict[str, Any]:
        secrets = {key: s.resource_version for key, s in self.fake.secrets.items() if key[0].startswith(self.prefix)}
        accounts = {key: list(v) for key, v in self.fake.accounts.items() if key[0].startswith(self.prefix)}
        return {"secrets": secrets, "accounts": accounts}

    def settle(self) -> None:
        """Memory is read as written."""


@dataclass
class KubeWorld:
    """KubeCluster on the apiserver; arranged with the admin client, as users and controllers do."""

    prefix: str
    core: client.CoreV1Api
    cluster: Cluster
    name: str = "kube"
    held: list[str] = field(default_factory=list)

    def namespace(self, suffix: str, labels: dict[str, str] | None = None, *, terminating: bool = False) -> str:
        name = f"{self.prefix}-{suffix}"
        hold = [HOLD] if terminating else None
        self.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels, finalizers=hold))
        )
        if terminating:
            self.held.append(name)
            self.core.delete_namespace(name)  # the finalizer keeps it there, Terminating
        return name

    def foreign_secret(
        self, namespace: str, name: str, labels: dict[str, str], data: dict[str, bytes], kind: str = "Opaque"
    ) -> None:
        self.core.create_namespaced_secret(namespace, cast(Any, secret_item(namespace, name, labels, data, kind)))

    def account(self, namespace: str, name: str, pull_secrets: tuple[str, ...] = ()) -> None:
        if name == "default":  # the controller-manager's; a user sets its imagePullSecrets
            default_service_account(self.core, namespace, pull_secrets)
            return
        refs = [client.V1LocalObjectReference(name=s) for s in pull_secrets]
        body = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name), image_pull_secrets=refs)
        self.core.create_namespaced_service_account(namespace, body)

    def stored_pull_secrets(self, namespace: str, name: str) -> list[str]:
        return pull_secret_names(self.core.read_namespaced_service_account(name, namespace))

    def state(self) -> dict[str, Any]:
        found = self.core.list_secret_for_all_namespaces().items
        secrets = {(namespace_of(s), name_of(s)): resource_version(s) for s in found if self._ours(s)}
        listed = self.core.list_service_account_for_all_namespaces().items
        accounts = {(namespace_of(a), name_of(a)): pull_secret_names(a) for a in listed if self._ours(a)}
        return {"secrets": secrets, "accounts": accounts}

    def _ours(self, obj: HasMetadata) -> bool:
        return namespace_of(obj).startswith(self.prefix)

    def settle(self) -> None:
        """Every read is a request: nothing to wait for."""

    def release(self) -> None:
        """Terminating namespaces go once their finalizer is taken off."""
        for name in self.held:
            try:
                self.core.patch_namespace(name, {"metadata": {"finalizers": None}})
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _comparable(value: object) -> tuple[str, object]:
    """A stored value as (namespace, what must be current): NamespaceInfo leaves its labels out of
    equality and ServiceAccountRef its resourceVersion, and a settled store holds both current."""
    if isinstance(value, NamespaceInfo):
        return value.name, (value.terminating, tuple(sorted(value.labels.items())))
    if isinstance(value, ExistingSecret):
        return value.namespace, value
    assert isinstance(value, ServiceAccountRef), value
    return value.namespace, (value, value.resource_version)


def _value_of(event: WatchEvent) -> object:
    if isinstance(event, NamespaceEvent):
        return event.namespace
    if isinstance(event, SecretEvent):
        return event.secret
    assert isinstance(event, ServiceAccountEvent), event
    return event.account


def _ours(values: Iterable[object], prefix: str) -> list[tuple[str, object]]:
    return sorted((c for c in map(_comparable, values) if c[0].startswith(prefix)), key=repr)


@dataclass
class Watches:
    """The daemon's reading side, started once per module: a store for every kind the cases read."""

    cache: WatchCache
    loops: dict[str, WatchLoop]

    def stored(self, kind: str, prefix: str) -> list[tuple[str, object]] | None:
        """This test's part of a store; None while the store is not live (reads would LIST)."""
        values = self.cache.values(kind)
        return None if values is None else _ours(values, prefix)

    def listed(self, kind: str, prefix: str) -> list[tuple[str, object]]:
        """This test's part of what the store's own LIST returns now."""
        loop = self.loops[kind]
        items = list_items(loop.list_call, what=f"settling {kind}", **cast(dict[str, Any], loop.selector))
        return _ours((_value_of(loop.parse("ADDED", item)) for item in items), prefix)

    def settled(self, prefix: str) -> bool:
        return all(self.stored(kind, prefix) == self.listed(kind, prefix) for kind in self.loops)

    def stop(self) -> None:
        for loop in self.loops.values():
            loop.stop(wait=5)


def start_watches(api: client.ApiClient) -> Watches:
    """The loops `syncd run` starts for a config naming the cases' Secrets and ServiceAccounts, plus
    the every-ServiceAccount store a `"*"` config watches instead (CachedCluster reads either)."""
    cache = WatchCache()

    def loops(names: list[str] | None) -> dict[str, WatchLoop]:
        return watch_loops(
            api,
            secret_names=[SECRET, OTHER_SPEC],
            service_account_names=names,
            on_event=lambda _event: None,
            on_relist=lambda _kind: None,
            cache=cache,
        )

    started = loops(list(ACCOUNTS)) | {"serviceaccounts": loops(None)["serviceaccounts"]}
    for loop in started.values():
        loop.start()
    return Watches(cache, started)


@dataclass
class CachedWorld(KubeWorld):
    """CachedCluster over the module's watch stores; arranged like KubeWorld, then settled."""

    watches: Watches | None = None
    name: str = "cached"

    def settle(self) -> None:
        """Every store live and holding what a LIST returns now, for this test's namespaces."""
        assert self.watches is not None
        wait_until(
            lambda: self.watches is not None and self.watches.settled(self.prefix), SETTLE_SECONDS, "the watch stores"
        )


class SettlingCachedCluster(CachedCluster):
    """CachedCluster, each read it serves from its stores preceded by `settle` (the stores catching
    up with what the case arranged a moment ago), then answered by CachedCluster itself."""

    def __init__(self, api: client.ApiClient, cache: WatchCache, settle: Callable[[], None]) -> None:
        super().__init__(api, cache, first_list_wait=SETTLE_SECONDS)
        self.settle = settle

    def select_namespaces(self, selection: Namespaces) -> list[str]:
        self.settle()
        return super().select_namespaces(selection)

    def managed_secrets(self, spec: str) -> list[ExistingSecret]:
        self.settle()
        return super().managed_secrets(spec)

    def service_accounts(self, names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        self.settle()
        return super().service_accounts(names, namespace)


def syncd_api(stack: Stack) -> client.ApiClient:
    """syncd's own client, as `syncd once` and `syncd run` build it."""
    return load_api_client(kubeconfig=str(stack.kube.kubeconfig), context=None, pool_size=8)


def syncd_api_of(request: pytest.FixtureRequest) -> client.ApiClient:
    """syncd's own client of the session's apiserver (the `stack` fixture)."""
    return syncd_api(request.getfixturevalue("stack"))


def start_watches_on(stack: Stack) -> Watches:
    return start_watches(syncd_api(stack))


@contextmanager
def make_world(kind: str, request: pytest.FixtureRequest) -> Iterator[World]:
    """A world of `kind` with a namespace prefix of its own; the real ones take the session's
    apiserver (`stack`) and, for `cached`, the module's `watches` fixture."""
    prefix = f"c{uuid.uuid4().hex[:6]}"
    if kind == "fake":
        yield FakeWorld(prefix)
        return
    stack: Stack = request.getfixturevalue("stack")
    admin = client.CoreV1Api(request.getfixturevalue("kube_api"))
    api = syncd_api(stack)
    if kind == "kube":
        world = KubeWorld(prefix, admin, KubeCluster(api))
    else:
        watches: Watches = request.getfixturevalue("watches")
        world = CachedWorld(prefix, admin, KubeCluster(api), watches=watches)
        world.cluster = SettlingCachedCluster(api, watches.cache, world.settle)
    try:
        yield world
    finally:
        world.release()
