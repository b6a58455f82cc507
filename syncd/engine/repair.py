"""`repair_pods`: which Pods stuck without their pull Secret to evict, and evicting them (issue 22).

The ServiceAccount admission plugin copies a ServiceAccount's `imagePullSecrets` into a Pod once,
at creation; a Pod admitted before syncd linked its Secret (or while the webhook was down) never
gets it, and a private image keeps it in ImagePullBackOff until someone deletes it. Its
controller makes a new Pod when it is evicted, and the new one gets the Secret from the webhook
or the ServiceAccount. `decide` says whether a Pod is such a Pod, and for which spec:

- the Pod: Pending (only Pending Pods: the Eviction API never weighs a PodDisruptionBudget for
  those, and nothing of theirs runs), not being deleted, a container (init ones too) waiting in
  ErrImagePull or ImagePullBackOff, not labelled `syncd.io/inject: "false"`, controlled by a
  ReplicaSet, StatefulSet, DaemonSet or Job (a bare Pod would simply be gone);
- its namespace: known, not labelled `syncd.io/inject: "false"`;
- a spec that selects the namespace and lists the Pod's ServiceAccount ("*": any), whose Secret
  the Pod does not list, whose keys serve a failing image (the kubelet's lookup,
  syncd.registry.kubelet), whose Secret is syncd's and in sync there (not a conflict: eviction
  cannot help otherwise), and whose Secret the replacement will get (the webhook is on, or the
  ServiceAccount lists it now).

No loop: a replacement that gets the Secret is never a candidate again, whatever becomes of its
pull. Evictions are rate-limited (`TokenBucket`), counted per spec, and announced by an Event on
the owner. Pure except `Repairer`, which talks to the cluster through the ports below.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from syncd.config import Config, SecretSpec
from syncd.config.models import INJECT_LABEL
from syncd.config.selection import selects
from syncd.core.clock import utcnow
from syncd.core.errors import KubeError
from syncd.core.values import Action, NamespaceInfo, ObservedPod, PodOwner, SyncResult
from syncd.engine.metrics import Metrics
from syncd.engine.pull_failures import spec_keyring
from syncd.registry.kubelet import InvalidImage, repository

log = logging.getLogger(__name__)
# The controllers that make a new Pod for an evicted one (by kind: their API groups are fixed).
CONTROLLERS = ("ReplicaSet", "StatefulSet", "DaemonSet", "Job")
# The budget: 30 evictions at once, then one every 2 s (30 a minute). Each eviction costs the
# cluster a Pod deletion, a Pod creation by the controller, a scheduling and a pull; 0.5/s is a
# small share of kube-controller-manager's own default client budget (20 QPS) and repairs the
# backlog of a real outage (the 50 Namespace + Deployment pairs) within about a minute.
# A wrong decision is cheap (the Pod was Pending: nothing of it ran) but never more than 30 a minute.
BURST = 30
PER_SECOND = 0.5


class Refusal(enum.StrEnum):
    """Why a Pod is not evicted, in the order they are checked."""

    TERMINATING = "the Pod is being deleted"
    NOT_PENDING = "the Pod is not Pending"
    NOT_FAILING_PULL = "no container waits in ErrImagePull or ImagePullBackOff"
    OPTED_OUT_POD = f"the Pod is labelled {INJECT_LABEL}=false"
    BARE = "no controller owns the Pod: nothing would make a new one"
    OWNER_KIND = "its controller is not a ReplicaSet, StatefulSet, DaemonSet or Job"
    NAMESPACE_UNKNOWN = "the namespace is not known"
    OPTED_OUT_NAMESPACE = f"the namespace is labelled {INJECT_LABEL}=false"
    # per spec, the furthest one reached is reported
    NOT_SELECTED = "no secret spec selects the namespace"
    ACCOUNT_NOT_LISTED = "no secret spec selecting the namespace lists the Pod's ServiceAccount"
    ALREADY_LISTED = "the Pod lists the spec's Secret already"
    IMAGE_NOT_SERVED = "the spec's Secret serves none of the failing images"
    CONFLICT = "the spec's Secret name is another owner's Secret in the namespace (a conflict)"
    SECRET_NOT_IN_SYNC = "the spec's Secret is not in sync in the namespace yet"  # noqa: S105 (a reason)
    REPLACEMENT_NOT_SERVED = "neither the webhook nor the ServiceAccount would give a new Pod the Secret"


class SecretState(enum.StrEnum):
    IN_SYNC = "in_sync"
    CONFLICT = "conflict"
    NOT_IN_SYNC = "not_in_sync"  # missing, stale, failed, or not synced yet


class Knowledge(Protocol):
    """What `decide` knows of the cluster (the daemon: its watch stores; `once`: its sync results)."""

    def namespace(self, name: str) -> NamespaceInfo | None: ...
    def secret_state(self, secret: str, namespace: str) -> SecretState: ...
    def account_lists(self, namespace: str, account: str, secret: str) -> bool: ...


@dataclass(frozen=True)
class Eviction:
    pod: ObservedPod
    owner: PodOwner
    secret: str
    image: str


def decide(pod: ObservedPod, config: Config, known: Knowledge) -> Eviction | Refusal:
    """The eviction for the first spec that passes every check; else why not (the furthest reached)."""
    refused = next((refusal for check, refusal in _POD_CHECKS if check(pod)), None)
    if refused is not None or pod.controller is None:
        return refused or Refusal.BARE
    namespace = known.namespace(pod.namespace)
    if namespace is None:
        return Refusal.NAMESPACE_UNKNOWN
    if namespace.labels.get(INJECT_LABEL) == "false":
        return Refusal.OPTED_OUT_NAMESPACE
    candidate = _Candidate(pod, pod.controller, namespace, config, known)
    furthest = Refusal.NOT_SELECTED
    for spec in config.secrets:
        verdict = candidate.for_spec(spec)
        if isinstance(verdict, Eviction):
            return verdict
        furthest = max(furthest, verdict, key=_ORDER.index)
    return furthest


_ORDER = list(Refusal)
_POD_CHECKS: tuple[tuple[Callable[[ObservedPod], bool], Refusal], ...] = (
    (lambda pod: pod.terminating, Refusal.TERMINATING),
    (lambda pod: pod.phase != "Pending", Refusal.NOT_PENDING),
    (lambda pod: not pod.failing_images, Refusal.NOT_FAILING_PULL),
    (lambda pod: pod.labels.get(INJECT_LABEL) == "false", Refusal.OPTED_OUT_POD),
    (lambda pod: pod.controller is None, Refusal.BARE),
    (lambda pod: pod.controller is not None and pod.controller.kind not in CONTROLLERS, Refusal.OWNER_KIND),
)


@dataclass(frozen=True)
class _Candidate:
    """A Pod past the Pod and namespace checks, weighed against one spec after another."""

    pod: ObservedPod
    owner: PodOwner
    namespace: NamespaceInfo
    config: Config
    known: Knowledge

    def for_spec(self, spec: SecretSpec) -> Eviction | Refusal:
        """The checks in order (each asked only when the ones before passed), then the eviction."""
        pod, known = self.pod, self.known
        image = served_image(self.config, spec, pod.failing_images)
        checks: tuple[tuple[Callable[[], bool], Refusal], ...] = (
            (lambda: not selects(spec.namespaces, self.namespace), Refusal.NOT_SELECTED),
            (
                lambda: "*" not in spec.service_accounts and pod.service_account not in spec.service_accounts,
                Refusal.ACCOUNT_NOT_LISTED,
            ),
            (lambda: spec.name in pod.pull_secrets, Refusal.ALREADY_LISTED),
            (lambda: image is None, Refusal.IMAGE_NOT_SERVED),
            (lambda: known.secret_state(spec.name, pod.namespace) is SecretState.CONFLICT, Refusal.CONFLICT),
            (
                lambda: known.secret_state(spec.name, pod.namespace) is not SecretState.IN_SYNC,
                Refusal.SECRET_NOT_IN_SYNC,
            ),
            (
                lambda: (
                    not self.config.admission.enabled
                    and not known.account_lists(pod.namespace, pod.service_account, spec.name)
                ),
                Refusal.REPLACEMENT_NOT_SERVED,
            ),
        )
        refused = next((refusal for check, refusal in checks if check()), None)
        return refused or Eviction(pod, self.owner, spec.name, image or "")


def served_image(config: Config, spec: SecretSpec, images: Iterable[str]) -> str | None:
    """The first image the spec's Secret would log the kubelet in for."""
    keyring = spec_keyring(config, spec)
    for image in images:
        try:
            if keyring.lookup(repository(image)):
                return image
        except InvalidImage:
            continue
    return None


class TokenBucket:
    """`burst` evictions at once, refilled at `per_second`; thread-safe."""

    def __init__(
        self, burst: int = BURST, per_second: float = PER_SECOND, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.per_second, self.clock = burst, per_second, clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken; otherwise the seconds until one will be there (none taken)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.per_second


class RepairAction(enum.StrEnum):
    EVICTED = "evicted"
    WOULD_EVICT = "would evict"  # --dry-run
    HELD_BACK = "held back"  # over the rate limit: a later run (or the kubelet's next Event) retries
    FAILED = "failed"
    GONE = "gone"  # deleted before syncd could evict it


@dataclass(frozen=True)
class RepairOutcome:
    eviction: Eviction
    action: RepairAction
    error: str | None = None


class Pods(Protocol):
    """What repair needs of the cluster (syncd.kube.pods.KubePods)."""

    def pending_pods(self) -> Iterable[ObservedPod]: ...
    def read_pod(self, namespace: str, name: str) -> ObservedPod | None: ...
    def evict(self, pod: ObservedPod) -> None: ...


class OwnerEvents(Protocol):
    def pod_repaired(self, pod: ObservedPod, owner: PodOwner, message: str, now: dt.datetime) -> None: ...


class Repairer:
    """Decides, and evicts within the budget: counted, logged, an Event on the owner."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        pods: Pods,
        metrics: Metrics,
        events: OwnerEvents | None,
        bucket: TokenBucket,
        clock: Callable[[], dt.datetime] = utcnow,
        on_repaired: Callable[[str], None] | None = None,
    ) -> None:
        self.on_repaired = on_repaired  # the spec whose Secret a repair was for (the PullSecretSync counts it)
        self.config = config
        self.pods = pods
        self.metrics = metrics
        self.events = events
        self.bucket = bucket
        self.clock = clock

    def consider(
        self, pod: ObservedPod, known: Knowledge, *, dry_run: bool = False, wait: Callable[[float], bool] | None = None
    ) -> RepairOutcome | Refusal:
        """`wait(seconds)` sleeps until a token may be there (False: give up, e.g. stopping); without
        it a Pod over the budget is held back. A Pod changed since it was read (409) is read again
        and decided again, once."""
        for attempt in range(2):
            verdict = decide(pod, self.config(), known)
            if isinstance(verdict, Refusal) or dry_run:
                return verdict if isinstance(verdict, Refusal) else RepairOutcome(verdict, RepairAction.WOULD_EVICT)
            if not self._token(wait):
                return RepairOutcome(verdict, RepairAction.HELD_BACK)
            try:
                return self._evict(verdict)
            except KubeError as exc:
                if exc.status != 409 or attempt > 0:
                    return self._failed(verdict, exc)
                fresh = self.pods.read_pod(pod.namespace, pod.name)
                if fresh is None:
                    return RepairOutcome(verdict, RepairAction.GONE)
                pod = fresh
        raise AssertionError("unreachable")

    def _token(self, wait: Callable[[float], bool] | None) -> bool:
        while (left := self.bucket.take()) > 0:
            if wait is None or not wait(left):
                return False
        return True

    def _evict(self, eviction: Eviction) -> RepairOutcome:
        pod, owner = eviction.pod, eviction.owner
        self.pods.evict(pod)
        self.metrics.record_repair(eviction.secret, ok=True)
        if self.on_repaired is not None:
            self.on_repaired(eviction.secret)
        log.info(
            "evicted a Pod stuck without its pull Secret",
            extra={
                "namespace": pod.namespace,
                "pod": pod.name,
                "owner": f"{owner.kind}/{owner.name}",
                "image": eviction.image,
                "secret": eviction.secret,
            },
        )
        if self.events is not None:
            message = (
                f"Evicted Pod {pod.name}: it was admitted without pull Secret {eviction.secret} and cannot pull "
                f"{eviction.image}; the {owner.kind} makes a new Pod, which gets the Secret (syncd repair_pods)"
            )
            self.events.pod_repaired(pod, owner, message, self.clock())
        return RepairOutcome(eviction, RepairAction.EVICTED)

    def _failed(self, eviction: Eviction, exc: KubeError) -> RepairOutcome:
        if exc.status == 404:  # deleted meanwhile: nothing left to repair, and nothing failed
            return RepairOutcome(eviction, RepairAction.GONE)
        self.metrics.record_repair(eviction.secret, ok=False)
        log.warning("could not evict a Pod stuck without its pull Secret: %s", exc)
        return RepairOutcome(eviction, RepairAction.FAILED, str(exc))

    def sweep(self, known: Knowledge, *, dry_run: bool = False) -> list[RepairOutcome]:
        """`syncd once`: every Pending Pod, decided as listed; past the budget, held back (no waiting)."""
        outcomes = []
        for pod in self.pods.pending_pods():
            if pod.failing_images:
                outcome = self.consider(pod, known, dry_run=dry_run)
                if isinstance(outcome, RepairOutcome):
                    outcomes.append(outcome)
        return outcomes


class ClusterReads(Protocol):
    """What `syncd once`'s knowledge reads (syncd.kube.cluster.KubeCluster), for candidates only."""

    def read_namespace(self, name: str) -> NamespaceInfo | None: ...
    def pull_secret_names(self, namespace: str, service_account: str) -> list[str] | None: ...


_IN_SYNC_ACTIONS = (Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.ADOPT)


class SyncKnowledge:
    """`syncd once`: the Secrets' states from the run's results (what it wrote, or with --dry-run what it
    would write), and a GET of a candidate's namespace and ServiceAccount."""

    def __init__(self, cluster: ClusterReads, results: Iterable[SyncResult]) -> None:
        self.cluster = cluster
        self.states: dict[tuple[str, str], SecretState] = {}
        self.linked: set[tuple[str, str, str]] = set()
        for result in results:
            for outcome in result.outcomes:
                self.states[(result.secret, outcome.change.namespace)] = _state(outcome.change.action, ok=outcome.ok)
            self.linked |= {
                (c.secret, c.namespace, c.service_account) for c in result.account_changes if c.link and c.error is None
            }
        self._namespaces: dict[str, NamespaceInfo | None] = {}

    def namespace(self, name: str) -> NamespaceInfo | None:
        if name not in self._namespaces:
            self._namespaces[name] = self.cluster.read_namespace(name)
        return self._namespaces[name]

    def secret_state(self, secret: str, namespace: str) -> SecretState:
        return self.states.get((secret, namespace), SecretState.NOT_IN_SYNC)

    def account_lists(self, namespace: str, account: str, secret: str) -> bool:
        if (secret, namespace, account) in self.linked:
            return True
        return secret in (self.cluster.pull_secret_names(namespace, account) or [])


def _state(action: Action, *, ok: bool) -> SecretState:
    if action is Action.CONFLICT:
        return SecretState.CONFLICT
    return SecretState.IN_SYNC if ok and action in _IN_SYNC_ACTIONS else SecretState.NOT_IN_SYNC
