"""`repair_pods` in `syncd run`: which Pods to look at, and when (syncd.engine.repair decides).

Two triggers, neither a Pod watch (syncd.kube.pods says why):
- the kubelet's `Failed to pull image` Events, already watched field-selected for `pull_failures`
  (and for repair alone when that is off): an Event of a namespace a spec selects, for an image
  that spec's Secret serves, queues its Pod, which is then read (one GET) and decided on. The
  kubelet retries a failed pull with a backoff of at most 5 minutes, so a Pod whose Secret was
  not in sync at its first Event is met again;
- a sweep, once after this replica starts leading (and after a reload) and its specs have each
  been synced once: one paged LIST of the Pending Pods, for the Pods stuck before syncd ran.

Nothing else: an idle daemon makes no request for repair. One worker thread evicts, leader only,
within the engine's rate limit (waiting for a token, so a backlog drains at its pace); the queue
is keyed by Pod (repeats collapse) and bounded (a Pod dropped at the bound comes back with the
kubelet's next Event).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from syncd.config import Config
from syncd.config.selection import selects
from syncd.core.errors import KubeError
from syncd.core.values import DesiredSecret, ExistingSecret, NamespaceInfo, ObservedPod, Ownership, ServiceAccountRef
from syncd.core.watch_events import FAILED_TO_PULL, KubeletEvent
from syncd.engine.pull_failures import pulled_image
from syncd.engine.repair import Knowledge, Pods, Refusal, RepairAction, Repairer, SecretState, served_image

log = logging.getLogger(__name__)
MAX_QUEUED = 10_000  # Pods waiting for a decision; a small value each (a key, or a parsed Pod)
SETTLED = 4096  # Pods never to read again (evicted, or listing the Secret: imagePullSecrets is immutable)
# A sweep follows the syncs that just wrote the Secrets and linked the ServiceAccounts; the
# decision reads those from the watch stores, which their watch events reach milliseconds later.
SWEEP_SETTLE = 2.0
PodKey = tuple[str, str]


class Stores(Protocol):
    """What repair reads of the watch stores (syncd.kube.stores.WatchCache)."""

    def get(self, kind: str, key: str | tuple[str, str]) -> object | None: ...


class StoreKnowledge:
    """The engine's Knowledge from the watch stores, the last syncs' conflicts and rendered content."""

    def __init__(
        self,
        stores: Stores,
        *,
        config: Callable[[], Config],
        rendered: Callable[[str], DesiredSecret | None],
        conflict: Callable[[str, str], bool],
    ) -> None:
        self.stores = stores
        self.config = config
        self.rendered = rendered
        self.conflict = conflict  # (secret, namespace): this replica's last sync found a foreign Secret

    def namespace(self, name: str) -> NamespaceInfo | None:
        found = self.stores.get("namespaces", name)
        return found if isinstance(found, NamespaceInfo) else None

    def secret_state(self, secret: str, namespace: str) -> SecretState:
        found = self.stores.get(f"secrets/{secret}", namespace)
        existing = found if isinstance(found, ExistingSecret) else None
        if self.conflict(secret, namespace) or (
            existing is not None and existing.ownership(self.config().instance) is Ownership.OTHER_INSTANCE
        ):
            return SecretState.CONFLICT
        desired = self.rendered(secret)
        in_sync = existing is not None and desired is not None and existing.matches(desired)
        return SecretState.IN_SYNC if in_sync else SecretState.NOT_IN_SYNC

    def account_lists(self, namespace: str, account: str, secret: str) -> bool:
        for kind in (f"serviceaccounts/{account}", "serviceaccounts"):
            found = self.stores.get(kind, (namespace, account))
            if isinstance(found, ServiceAccountRef):
                return secret in found.pull_secrets
        return False


class RepairWorker:
    def __init__(
        self,
        repairer: Repairer,
        pods: Pods,
        known: Knowledge,
        *,
        config: Callable[[], Config],
        may_write: Callable[[], bool],
        sweep_settle: float = SWEEP_SETTLE,
    ) -> None:
        self.sweep_settle = sweep_settle
        self.repairer = repairer
        self.pods = pods
        self.known = known
        self.config = config
        self.may_write = may_write
        self._queue: OrderedDict[PodKey, ObservedPod | None] = OrderedDict()
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._sweep = False
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncd-repair", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)

    def _on(self) -> bool:
        return self.config().repair_pods and self.may_write()

    def on_event(self, event: KubeletEvent) -> None:
        """A kubelet Event (from a watch thread): queue its Pod when repair may concern it."""
        if event.reason != FAILED_TO_PULL or event.change == "DELETED" or not event.pod or not self._on():
            return
        image = pulled_image(event.message)
        namespace = self.known.namespace(event.namespace)
        if image is None or namespace is None or self._is_settled(event.pod_uid):
            return
        config = self.config()
        if any(selects(s.namespaces, namespace) and served_image(config, s, [image]) for s in config.secrets):
            self._enqueue((event.namespace, event.pod), None)

    def request_sweep(self) -> None:
        with self._changed:
            self._sweep = True
            self._changed.notify_all()

    def _enqueue(self, key: PodKey, pod: ObservedPod | None) -> None:
        with self._changed:
            if key not in self._queue and len(self._queue) >= MAX_QUEUED:
                log.debug("repair queue full; %s/%s waits for the kubelet's next Event", *key)
                return
            self._queue[key] = pod
            self._changed.notify_all()

    def _is_settled(self, uid: str) -> bool:
        with self._changed:
            return bool(uid) and uid in self._settled

    def _settle(self, uid: str) -> None:
        with self._changed:
            self._settled[uid] = None
            while len(self._settled) > SETTLED:
                self._settled.popitem(last=False)

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._changed:
                while not (self._queue or self._sweep or self._stopped.is_set()):
                    self._changed.wait()
                sweep, self._sweep = self._sweep, False
                item = None if sweep or not self._queue else self._queue.popitem(last=False)
            try:
                if sweep:
                    self._run_sweep()
                elif item is not None:
                    self._repair(*item)
            except Exception:  # the worker must outlive any error: one Pod, one LIST
                log.exception("repair_pods: unexpected error")

    def _run_sweep(self) -> None:
        if self._stopped.wait(self.sweep_settle) or not self._on():
            return
        queued = 0
        try:
            for pod in self.pods.pending_pods():
                if pod.failing_images and not self._is_settled(pod.uid):
                    self._enqueue((pod.namespace, pod.name), pod)
                    queued += 1
        except KubeError as exc:
            log.warning("repair_pods: listing Pending Pods failed: %s", exc)
        log.info("repair_pods: swept the Pending Pods", extra={"failing_pulls": queued})

    def _repair(self, key: PodKey, pod: ObservedPod | None) -> None:
        if not self._on():
            return
        try:
            pod = pod or self.pods.read_pod(*key)
        except KubeError as exc:
            log.warning("repair_pods: %s", exc)
            return
        if pod is None:
            return
        # Waiting for a token: stopping, or no longer leading (or repair turned off) meanwhile, gives up.
        outcome = self.repairer.consider(
            pod, self.known, wait=lambda seconds: not self._stopped.wait(seconds) and self._on()
        )
        if outcome is Refusal.ALREADY_LISTED or (
            not isinstance(outcome, Refusal) and outcome.action is RepairAction.EVICTED
        ):
            self._settle(pod.uid)
        if isinstance(outcome, Refusal):
            log.debug("repair_pods: %s/%s left alone: %s", pod.namespace, pod.name, outcome.value)
