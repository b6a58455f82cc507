"""Kubernetes Events for changes and trouble, rate-limited.

A failed sync can touch thousands of namespaces; one Event per namespace per attempt would
flood etcd and bury everything else. So each sync emits at most `per_sync` Events, and the same
(namespace, secret, reason) is repeated at most once per `min_interval`. Messages carry names
and counts, never a secret value.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from kubernetes import client

from syncd.core.errors import KubeError
from syncd.core.values import (
    DEFAULT_INSTANCE,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    EventNote,
    EventReason,
    ObservedPod,
    PodOwner,
)
from syncd.kube.client import send

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        instance: str = DEFAULT_INSTANCE,
        per_sync: int = 20,
        min_interval: dt.timedelta = dt.timedelta(minutes=10),
        workers: int = 8,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.instance = instance
        self.per_sync = per_sync
        self.workers = workers
        self.min_interval = min_interval
        self._last: dict[tuple[str, str, str], dt.datetime] = {}
        self._lock = threading.Lock()

    def _allowed(self, key: tuple[str, str, str], now: dt.datetime) -> bool:
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.min_interval:
                return False
            self._last[key] = now
            return True

    def emit(self, events: list[EventNote], now: dt.datetime) -> int:
        """(namespace, secret, reason, message) tuples, Warnings first; returns how many were written.

        At most `per_sync` are attempted, all at once on up to `workers` threads: one after the
        other, the 20 Events of a first rollout or a rotation added 20 round trips to its sync.
        A refused one is not replaced by the next (at most `per_sync` requests, whatever happens)."""
        ordered = sorted(events, key=lambda e: e[2] == EventReason.SYNCED)
        chosen: list[EventNote] = []
        for note in ordered:
            if len(chosen) >= self.per_sync:
                break
            if self._allowed((note[0], note[1], note[2]), now):
                chosen.append(note)
        written = sum(self._each(lambda note: self._create(*note, now), chosen))
        if len(events) > written:
            log.debug("events: %d written, %d held back by the rate limit", written, len(events) - written)
        return written

    def _each(self, create: Callable[[EventNote], int], notes: list[EventNote]) -> list[int]:
        if len(notes) <= 1:  # a namespace's sync: no thread to start for one Event
            return [create(note) for note in notes]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(notes)), thread_name_prefix="syncd-event") as pool:
            return list(pool.map(create, notes))

    def _create(self, namespace: str, secret: str, reason: str, message: str, now: dt.datetime) -> int:
        involved = {"apiVersion": "v1", "kind": "Secret", "namespace": namespace, "name": secret}
        kind = "Normal" if reason == EventReason.SYNCED else "Warning"
        return self._post(namespace, involved, reason, kind, message, now=now)

    def condition_changed(self, name: str, uid: str, condition: Mapping[str, str], now: dt.datetime) -> None:
        """An Event on a PullSecretSync whose condition changed. Cluster-scoped objects have their
        Events in `default`, where `kubectl describe pullsync` looks; repeats are held back as above."""
        healthy = (condition["type"] in ("ExpiringSoon", "Degraded")) != (condition["status"] == "True")
        reason = f"{condition['type']}{condition['status']}"
        if not self._allowed(("", name, f"{reason}/{condition.get('reason', '')}"), now):
            return
        involved = {"apiVersion": "syncd.io/v1alpha1", "kind": "PullSecretSync", "name": name, "uid": uid}
        message = f"{condition['type']} is {condition['status']} ({condition.get('reason', '')}): "
        message += condition.get("message", "")
        self._post("default", involved, reason, "Normal" if healthy else "Warning", message, now=now)

    def pod_repaired(self, pod: ObservedPod, owner: PodOwner, message: str, now: dt.datetime) -> None:
        """A Normal Event on the Pod's owner (where `kubectl describe` of the workload shows it): one per
        eviction, which repair's own rate limit bounds (names and an image reference, never a value)."""
        involved = {
            "apiVersion": owner.api_version,
            "kind": owner.kind,
            "namespace": pod.namespace,
            "name": owner.name,
            "uid": owner.uid,
        }
        self._post(pod.namespace, involved, EventReason.POD_REPAIRED, "Normal", message, now=now)

    def _post(
        self, namespace: str, involved: dict[str, str], reason: str, kind: str, message: str, *, now: dt.datetime
    ) -> int:
        """One Event (names and counts, never a value); 1 when written, 0 when refused."""
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "metadata": {
                "name": f"{involved['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, INSTANCE_LABEL: self.instance},
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": kind,
            "source": {"component": "syncd"},
            "reportingComponent": "syncd",
            "reportingInstance": f"syncd-{self.instance}",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            send(
                lambda: self.core.create_namespaced_event(namespace, cast(Any, body), _preload_content=False),
                what=f"creating Event in {namespace}",
            )
        except KubeError as exc:  # an Event is a courtesy: never fail a sync over it
            log.debug("could not record event: %s", exc)
            return 0
        return 1
