"""What users do to the cluster meanwhile: namespaces come, go and change labels, people delete
and edit syncd's Secrets by hand, ServiceAccounts appear, and some namespaces hold a Secret of
the same name that someone else owns.

Every change is told to the observer (`Notes`), which gives churned objects a grace period and
knows which Secrets were edited by hand (those are not syncd's writes to judge).
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness.kube_objects import name_of, namespace_of, resource_version
from soak.settings import SOAK_LABEL, TIER_LABEL, TIERS, specs

MANAGED_BY = "app.kubernetes.io/managed-by"
FOREIGN_CONTENT = base64.b64encode(b'{"auths":{"other.example":{"auth":"eDp5"}}}').decode()
HAND_EDIT = base64.b64encode(b'{"auths":{"edited.by.hand":{"auth":"eDp5"}}}').decode()
SPEC_NAMES = [spec.name for spec in specs(0)]
# A ServiceAccount the churn adds to some namespaces; `default` is the controller-manager's, in all.
EXTRA_ACCOUNT = "builder"


class Notes(Protocol):
    """What the observer needs to hear from the churn."""

    def churned(self, namespace: str) -> None: ...
    def unmanaged(self, namespace: str, name: str, resource_version: str) -> None: ...
    def hand_edited(self, namespace: str, name: str, resource_version: str) -> None: ...
    def deleted(self, namespace: str) -> None: ...


@dataclass
class ChurnCounts:
    done: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def add(self, kind: str) -> None:
        self.done[kind] = self.done.get(kind, 0) + 1


class Churn:
    def __init__(self, core: client.CoreV1Api, notes: Notes, rng: random.Random, prefix: str = "soak") -> None:
        self.core = core
        self.notes = notes
        self.rng = rng
        self.prefix = prefix
        self.live: list[str] = []  # namespaces created and not deleted
        self.next_index = 0
        self.counts = ChurnCounts()

    # --- the population ---------------------------------------------------------------------------

    def populate(self, count: int) -> None:
        """`count` namespaces, 1 in 20 with a foreign Secret of a spec's name, half with a `builder` SA
        (`default` comes from kube-controller-manager in every one)."""
        plans = [self._plan_namespace() for _ in range(count)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda plan: self._create_namespace(*plan), plans))

    def _plan_namespace(self) -> tuple[str, str, str | None, bool]:
        name = f"{self.prefix}-{self.next_index:04d}"
        self.next_index += 1
        foreign = self.rng.choice(SPEC_NAMES) if self.rng.random() < 0.05 else None
        return name, self.rng.choice(TIERS), foreign, self.rng.random() < 0.5

    def _create_namespace(self, name: str, tier: str, foreign: str | None, service_account: bool) -> None:
        """Created unselected, given its foreign Secret and ServiceAccount, then labelled into selection:
        syncd must find the foreign Secret in its way, never race it."""
        self.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TIER_LABEL: tier}))
        )
        for secret in filter(None, (foreign, "not-ours")):
            self._create_foreign(name, secret)
        if service_account:
            self.core.create_namespaced_service_account(
                name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=EXTRA_ACCOUNT))
            )
        self.core.patch_namespace(name, {"metadata": {"labels": {SOAK_LABEL: "yes"}}})
        self.notes.churned(name)
        self.live.append(name)

    def _create_foreign(self, namespace: str, name: str) -> None:
        secret = client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels={"owner": "someone-else"}),
            type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": FOREIGN_CONTENT},
        )
        created = self.core.create_namespaced_secret(namespace, secret)
        self.notes.unmanaged(namespace, name, resource_version(created))

    # --- one random change ------------------------------------------------------------------------

    def step(self) -> None:
        """One change, chosen at random; API failures (during apiserver faults) are counted, not raised."""
        kinds: list[tuple[str, float, Callable[[], None]]] = [
            ("namespace-created", 0.12, self._new_namespace),
            ("namespace-deleted", 0.08, self._delete_namespace),
            ("namespace-relabelled", 0.25, self._relabel),
            ("secret-deleted", 0.2, self._delete_secret),
            ("secret-edited", 0.2, self._edit_secret),
            ("service-account-created", 0.15, self._new_service_account),
        ]
        kind, _, action = self.rng.choices(kinds, weights=[w for _, w, _ in kinds])[0]
        try:
            action()
        except (ApiException, OSError, Exception):  # the apiserver may be down: that is the point
            self.counts.failed += 1
            return
        self.counts.add(kind)

    def _pick(self) -> str | None:
        return self.rng.choice(self.live) if self.live else None

    def _new_namespace(self) -> None:
        self._create_namespace(*self._plan_namespace())

    def _delete_namespace(self) -> None:
        """kube-controller-manager empties and removes a deleted namespace; while it is Terminating,
        syncd must skip it."""
        name = self._pick()
        if name is None:
            return
        self.live.remove(name)
        self.notes.deleted(name)  # before the call: its Secrets may be gone before the call returns
        self.core.delete_namespace(name)
        self.notes.churned(name)

    def _relabel(self) -> None:
        name = self._pick()
        if name is None:
            return
        if self.rng.random() < 0.2:  # out of every selection for a while
            labels: dict[str, str | None] = {SOAK_LABEL: None if self.rng.random() < 0.5 else "yes"}
        else:
            labels = {TIER_LABEL: self.rng.choice(TIERS), SOAK_LABEL: "yes"}
        self.core.patch_namespace(name, {"metadata": {"labels": labels}})
        self.notes.churned(name)

    def _managed_secret(self) -> client.V1Secret | None:
        name = self._pick()
        if name is None:
            return None
        found = self.core.list_namespaced_secret(name, label_selector=f"{MANAGED_BY}=syncd").items
        return self.rng.choice(found) if found else None

    def _delete_secret(self) -> None:
        secret = self._managed_secret()
        if secret is not None:
            self.core.delete_namespaced_secret(name_of(secret), namespace_of(secret))
            self.notes.churned(namespace_of(secret))

    def _edit_secret(self) -> None:
        """Someone replaces the data of a managed Secret, labels left alone."""
        secret = self._managed_secret()
        if secret is None:
            return
        patch = {
            "metadata": {"resourceVersion": resource_version(secret)},
            "data": {".dockerconfigjson": HAND_EDIT},
        }
        edited = self.core.patch_namespaced_secret(name_of(secret), namespace_of(secret), patch)
        self.notes.hand_edited(namespace_of(secret), name_of(secret), resource_version(edited))
        self.notes.churned(namespace_of(secret))

    def _new_service_account(self) -> None:
        name = self._pick()
        if name is None:
            return
        try:
            self.core.create_namespaced_service_account(
                name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=EXTRA_ACCOUNT))
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            return
        self.notes.churned(name)


def run_churn(churn: Churn, stop: threading.Event, every: float) -> None:
    while not stop.wait(every * (0.5 + churn.rng.random())):
        churn.step()
        time.sleep(0)
