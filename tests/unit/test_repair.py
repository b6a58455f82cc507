"""repair_pods: the decision (syncd.engine.repair), every refusal, the budget, the eviction's
bookkeeping, `once`'s knowledge from a run's results, and the daemon's triggers (syncd.daemon.repair)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from harness.wait import wait_until
from syncd.cli.output import repairs_table, results_json
from syncd.config import Config, parse_config
from syncd.core.errors import KubeError
from syncd.core.values import (
    AccountChange,
    Action,
    ChangeOutcome,
    DesiredSecret,
    ExistingSecret,
    NamespaceInfo,
    ObservedPod,
    PlannedChange,
    PodOwner,
    ServiceAccountRef,
    SyncResult,
)
from syncd.core.watch_events import KubeletEvent
from syncd.daemon.repair import RepairWorker, StoreKnowledge
from syncd.engine.metrics import Metrics
from syncd.engine.repair import (
    Eviction,
    Refusal,
    RepairAction,
    Repairer,
    RepairOutcome,
    SecretState,
    SyncKnowledge,
    TokenBucket,
    decide,
)
from syncd.manifests import rbac

REGISTRY = "registry.example:5000"
IMAGE = f"{REGISTRY}/team/app:v1"
OWNER = PodOwner("apps/v1", "ReplicaSet", "app-5d9f", "rs-uid")


def config(**extra: Any) -> Config:
    return parse_config(
        {
            "instance": "fix",
            "credentials": [{"name": "c", "registries": [REGISTRY], "docker_config": "/dev/null"}],
            "secrets": [
                {
                    "name": "regcred",
                    "credentials": ["c"],
                    "namespaces": {"patterns": ["team-*"]},
                    "service_accounts": ["default"],
                },
                {"name": "any-sa", "credentials": ["c"], "namespaces": {"names": ["open"]}, "service_accounts": ["*"]},
            ],
            "repair_pods": True,
            **extra,
        }
    )


CONFIG = config()


def stuck(**changes: Any) -> ObservedPod:
    pod = ObservedPod(
        namespace="team-a",
        name="app-5d9f-x1",
        uid="pod-uid",
        resource_version="7",
        service_account="default",
        phase="Pending",
        terminating=False,
        pull_secrets=(),
        controller=OWNER,
        failing_images=(IMAGE,),
        labels={},
    )
    return dataclasses.replace(pod, **changes)


class Known:
    """The engine's Knowledge as a table."""

    def __init__(
        self,
        namespaces: Iterable[NamespaceInfo] = (NamespaceInfo("team-a"), NamespaceInfo("open"), NamespaceInfo("other")),
        state: SecretState = SecretState.IN_SYNC,
        linked: bool = True,
    ) -> None:
        self.namespaces = {n.name: n for n in namespaces}
        self.state = state
        self.linked = linked

    def namespace(self, name: str) -> NamespaceInfo | None:
        return self.namespaces.get(name)

    def secret_state(self, secret: str, namespace: str) -> SecretState:
        return self.state

    def account_lists(self, namespace: str, account: str, secret: str) -> bool:
        return self.linked


def test_a_stuck_pod_of_a_replicaset_is_evicted_for_the_spec_that_serves_it() -> None:
    assert decide(stuck(), CONFIG, Known()) == Eviction(stuck(), OWNER, "regcred", IMAGE)


def test_any_serviceaccount_where_the_spec_says_star() -> None:
    pod = stuck(namespace="open", service_account="builder")
    verdict = decide(pod, CONFIG, Known())
    assert isinstance(verdict, Eviction)
    assert verdict.secret == "any-sa"


@pytest.mark.parametrize("kind", ["ReplicaSet", "StatefulSet", "DaemonSet", "Job"])
def test_every_controller_that_makes_a_new_pod(kind: str) -> None:
    owner = dataclasses.replace(OWNER, kind=kind)
    assert isinstance(decide(stuck(controller=owner), CONFIG, Known()), Eviction)


@pytest.mark.parametrize(
    ("pod", "known", "refusal"),
    [
        (stuck(terminating=True), Known(), Refusal.TERMINATING),
        (stuck(phase="Running"), Known(), Refusal.NOT_PENDING),
        (stuck(failing_images=()), Known(), Refusal.NOT_FAILING_PULL),
        (stuck(labels={"syncd.io/inject": "false"}), Known(), Refusal.OPTED_OUT_POD),
        (stuck(controller=None), Known(), Refusal.BARE),
        (stuck(controller=dataclasses.replace(OWNER, kind="Node")), Known(), Refusal.OWNER_KIND),
        (stuck(namespace="team-new"), Known(), Refusal.NAMESPACE_UNKNOWN),
        (
            stuck(),
            Known([NamespaceInfo("team-a", labels={"syncd.io/inject": "false"})]),
            Refusal.OPTED_OUT_NAMESPACE,
        ),
        (stuck(namespace="other"), Known(), Refusal.NOT_SELECTED),
        (stuck(), Known([NamespaceInfo("team-a", terminating=True)]), Refusal.NOT_SELECTED),
        (stuck(service_account="builder"), Known(), Refusal.ACCOUNT_NOT_LISTED),
        (stuck(pull_secrets=("mine", "regcred")), Known(), Refusal.ALREADY_LISTED),
        (stuck(failing_images=("docker.io/library/nginx:1", "Not/An:Image")), Known(), Refusal.IMAGE_NOT_SERVED),
        (stuck(), Known(state=SecretState.CONFLICT), Refusal.CONFLICT),
        (stuck(), Known(state=SecretState.NOT_IN_SYNC), Refusal.SECRET_NOT_IN_SYNC),
        (stuck(), Known(linked=False), Refusal.REPLACEMENT_NOT_SERVED),
    ],
    ids=lambda value: value.name if isinstance(value, Refusal) else "",
)
def test_every_refusal(pod: ObservedPod, known: Known, refusal: Refusal) -> None:
    assert decide(pod, CONFIG, known) is refusal


def test_with_the_webhook_on_the_replacement_is_served_whatever_the_serviceaccount_lists() -> None:
    with_webhook = config(admission={"enabled": True})
    assert isinstance(decide(stuck(), with_webhook, Known(linked=False)), Eviction)


def test_the_second_failing_image_is_the_one_served() -> None:
    verdict = decide(stuck(failing_images=("docker.io/library/nginx:1", IMAGE)), CONFIG, Known())
    assert isinstance(verdict, Eviction)
    assert verdict.image == IMAGE


def test_the_token_bucket_allows_a_burst_then_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(burst=3, per_second=0.5, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]
    assert bucket.take() == pytest.approx(2.0)
    now[0] += 1.0
    assert bucket.take() == pytest.approx(1.0)
    now[0] += 1.0
    assert bucket.take() == 0
    now[0] += 1000
    assert [bucket.take() for _ in range(4)][-1] > 0  # never more than the burst saved up


class FakePods:
    def __init__(self, pods: Iterable[ObservedPod] = (), errors: Iterable[KubeError] = ()) -> None:
        self.pods = {(p.namespace, p.name): p for p in pods}
        self.errors = list(errors)
        self.evicted: list[ObservedPod] = []
        self.reads: list[tuple[str, str]] = []

    def pending_pods(self) -> Iterable[ObservedPod]:
        return list(self.pods.values())

    def read_pod(self, namespace: str, name: str) -> ObservedPod | None:
        self.reads.append((namespace, name))
        return self.pods.get((namespace, name))

    def evict(self, pod: ObservedPod) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.evicted.append(pod)
        self.pods.pop((pod.namespace, pod.name), None)


class Notes:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def pod_repaired(self, pod: ObservedPod, owner: PodOwner, message: str, now: dt.datetime) -> None:
        self.events.append((pod.namespace, f"{owner.kind}/{owner.name}", message))


def repairer(pods: FakePods, notes: Notes, bucket: TokenBucket | None = None) -> tuple[Repairer, Metrics]:
    metrics = Metrics(CollectorRegistry())
    made = Repairer(
        config=lambda: CONFIG, pods=pods, metrics=metrics, events=notes, bucket=bucket or TokenBucket(burst=5)
    )
    return made, metrics


def repaired(metrics: Metrics, result: str, secret: str = "regcred") -> float:  # noqa: S107 (a spec name)
    value = metrics.registry.get_sample_value("syncd_pods_repaired_total", {"secret": secret, "result": result})
    return value or 0.0


def test_an_eviction_is_counted_and_told_on_the_owner_without_a_value() -> None:
    pods, notes = FakePods([stuck()]), Notes()
    made, metrics = repairer(pods, notes)
    outcome = made.consider(stuck(), Known())
    assert isinstance(outcome, RepairOutcome)
    assert outcome.action is RepairAction.EVICTED
    assert pods.evicted == [stuck()]
    assert repaired(metrics, "success") == 1
    [(namespace, owner, message)] = notes.events
    assert (namespace, owner) == ("team-a", "ReplicaSet/app-5d9f")
    assert "app-5d9f-x1" in message
    assert "regcred" in message
    assert IMAGE in message


def test_each_eviction_is_handed_to_the_status_and_a_refused_one_is_not() -> None:
    told: list[str] = []
    pods = FakePods([stuck(), stuck(name="p2")], [KubeError("evicting: HTTP 403 Forbidden", status=403)])
    made = Repairer(
        config=lambda: CONFIG,
        pods=pods,
        metrics=Metrics(CollectorRegistry()),
        events=None,
        bucket=TokenBucket(burst=5),
        on_repaired=told.append,
    )
    actions = [o.action for o in made.sweep(Known())]
    assert actions == [RepairAction.FAILED, RepairAction.EVICTED]
    assert told == ["regcred"]


def test_dry_run_evicts_nothing() -> None:
    pods, notes = FakePods([stuck(), stuck(name="bare", controller=None)]), Notes()
    made, metrics = repairer(pods, notes)
    outcomes = made.sweep(Known(), dry_run=True)
    assert [(o.eviction.pod.name, o.action) for o in outcomes] == [("app-5d9f-x1", RepairAction.WOULD_EVICT)]
    assert pods.evicted == []
    assert notes.events == []
    assert repaired(metrics, "success") == 0


def test_past_the_budget_pods_are_held_back_or_waited_for() -> None:
    now = [0.0]
    bucket = TokenBucket(burst=1, per_second=0.5, clock=lambda: now[0])
    pods = FakePods([stuck(name=f"p{i}") for i in range(3)])
    made, _ = repairer(pods, Notes(), bucket)
    actions = [o.action for o in made.sweep(Known())]
    assert actions == [RepairAction.EVICTED, RepairAction.HELD_BACK, RepairAction.HELD_BACK]
    waited: list[float] = []

    def wait(seconds: float) -> bool:
        waited.append(seconds)
        now[0] += seconds
        return True

    outcome = made.consider(stuck(name="p1"), Known(), wait=wait)
    assert isinstance(outcome, RepairOutcome)
    assert outcome.action is RepairAction.EVICTED
    assert waited == [pytest.approx(2.0)]


def test_a_refused_eviction_is_counted_as_a_failure() -> None:
    pods = FakePods([stuck()], [KubeError("evicting Pod team-a/app: HTTP 403 Forbidden", status=403)])
    made, metrics = repairer(pods, Notes())
    outcome = made.consider(stuck(), Known())
    assert isinstance(outcome, RepairOutcome)
    assert outcome.action is RepairAction.FAILED
    assert outcome.error is not None
    assert "403" in outcome.error
    assert repaired(metrics, "failure") == 1
    assert repaired(metrics, "success") == 0


def test_a_pod_changed_since_it_was_read_is_read_and_decided_again() -> None:
    fresh = stuck(resource_version="8", pull_secrets=("regcred",))  # meanwhile it got the Secret
    pods = FakePods([fresh], [KubeError("evicting: HTTP 409 Conflict", status=409)])
    made, metrics = repairer(pods, Notes())
    assert made.consider(stuck(), Known()) is Refusal.ALREADY_LISTED
    assert pods.reads == [("team-a", "app-5d9f-x1")]
    assert pods.evicted == []
    assert repaired(metrics, "failure") == 0


def test_a_pod_gone_before_its_eviction_is_no_failure() -> None:
    pods = FakePods([], [KubeError("evicting: HTTP 404 Not Found", status=404)])
    made, metrics = repairer(pods, Notes())
    outcome = made.consider(stuck(), Known())
    assert isinstance(outcome, RepairOutcome)
    assert outcome.action is RepairAction.GONE
    assert repaired(metrics, "failure") == 0


def test_once_knows_the_secrets_from_its_results() -> None:
    def outcome(namespace: str, action: Action, error: str | None = None) -> ChangeOutcome:
        return ChangeOutcome(PlannedChange(namespace, "regcred", action), error)

    result = SyncResult(
        "regcred",
        outcomes=[
            outcome("team-a", Action.CREATE),
            outcome("team-b", Action.CONFLICT),
            outcome("team-c", Action.UPDATE, "HTTP 500"),
            outcome("team-d", Action.UNCHANGED),
        ],
        account_changes=[AccountChange("team-a", "default", "regcred", link=True)],
    )

    class Reads:
        def read_namespace(self, name: str) -> NamespaceInfo | None:
            return NamespaceInfo(name)

        def pull_secret_names(self, namespace: str, service_account: str) -> list[str] | None:
            return ["regcred"] if namespace == "team-d" else None

    known = SyncKnowledge(Reads(), [result])
    states = [known.secret_state("regcred", n) for n in ("team-a", "team-b", "team-c", "team-d", "team-e")]
    assert states == ["in_sync", "conflict", "not_in_sync", "in_sync", "not_in_sync"]
    assert known.account_lists("team-a", "default", "regcred")  # linked by this run
    assert known.account_lists("team-d", "default", "regcred")  # linked before
    assert not known.account_lists("team-e", "default", "regcred")


# -- the daemon ---------------------------------------------------------------------------------

DESIRED = DesiredSecret("regcred", b"{}", "sha256:abc", ("c",), instance="fix")


def ours(namespace: str, **changes: Any) -> ExistingSecret:
    secret = ExistingSecret(
        namespace,
        "regcred",
        "1",
        managed=True,
        spec="regcred",
        annotated_hash="sha256:abc",
        data_hash="sha256:abc",
        secret_type="kubernetes.io/dockerconfigjson",
        credentials="c",
        instance="fix",
    )
    return dataclasses.replace(secret, **changes)


class Stores:
    def __init__(self, items: dict[tuple[str, Any], object]) -> None:
        self.items = items

    def get(self, kind: str, key: str | tuple[str, str]) -> object | None:
        return self.items.get((kind, key))


def store_knowledge(items: dict[tuple[str, Any], object], conflicts: set[tuple[str, str]] = set()) -> StoreKnowledge:  # noqa: B006
    return StoreKnowledge(
        Stores(items),
        config=lambda: CONFIG,
        rendered=lambda name: DESIRED if name == "regcred" else None,
        conflict=lambda secret, namespace: (secret, namespace) in conflicts,
    )


def test_the_daemon_knows_the_secrets_from_its_stores() -> None:
    known = store_knowledge(
        {
            ("secrets/regcred", "team-a"): ours("team-a"),
            ("secrets/regcred", "team-old"): ours("team-old", data_hash="sha256:old"),
            ("secrets/regcred", "team-theirs"): ours("team-theirs", instance="other"),
            ("serviceaccounts/default", ("team-a", "default")): ServiceAccountRef("team-a", "default", ("regcred",)),
            ("serviceaccounts/default", ("team-b", "default")): ServiceAccountRef("team-b", "default", ()),
        },
        conflicts={("regcred", "team-foreign")},
    )
    names = ("team-a", "team-old", "team-theirs", "team-foreign", "team-none")
    assert [known.secret_state("regcred", n) for n in names] == [
        "in_sync",
        "not_in_sync",
        "conflict",
        "conflict",
        "not_in_sync",
    ]
    assert known.account_lists("team-a", "default", "regcred")
    assert not known.account_lists("team-b", "default", "regcred")
    assert not known.account_lists("team-c", "default", "regcred")


def failed_pull(namespace: str, pod: str, image: str = IMAGE, change: str = "MODIFIED") -> KubeletEvent:
    message = f'Failed to pull image "{image}": pull access denied, repository does not exist'
    return KubeletEvent(change, f"ev-{pod}", namespace, "Failed", message, 2, pod, f"uid-{pod}")  # type: ignore[arg-type]


def test_the_daemon_reads_only_the_pods_of_events_that_may_concern_it() -> None:
    pods = FakePods([stuck()])
    notes = Notes()
    made, metrics = repairer(pods, notes)
    known = store_knowledge(
        {
            ("namespaces", "team-a"): NamespaceInfo("team-a"),
            ("namespaces", "other"): NamespaceInfo("other"),
            ("secrets/regcred", "team-a"): ours("team-a"),
            ("serviceaccounts/default", ("team-a", "default")): ServiceAccountRef("team-a", "default", ("regcred",)),
        }
    )
    leading = [True]
    worker = RepairWorker(made, pods, known, config=lambda: CONFIG, may_write=lambda: leading[0])
    worker.on_event(failed_pull("other", "x"))  # an unselected namespace
    worker.on_event(failed_pull("team-a", "y", image="docker.io/library/nginx:1"))  # an image not served
    worker.on_event(failed_pull("team-a", "z", change="DELETED"))
    leading[0] = False
    worker.on_event(failed_pull("team-a", "app-5d9f-x1"))  # a standby
    leading[0] = True
    worker.on_event(failed_pull("team-a", "app-5d9f-x1"))
    worker.on_event(failed_pull("team-a", "app-5d9f-x1"))  # repeats collapse
    worker.start()
    try:
        wait_until(lambda: bool(pods.evicted), 5, "the worker's eviction", interval=0.01)
    finally:
        worker.stop()
    assert pods.reads == [("team-a", "app-5d9f-x1")]
    assert [p.name for p in pods.evicted] == ["app-5d9f-x1"]
    assert repaired(metrics, "success") == 1


# -- what `syncd rbac` grants, what `syncd once` prints ------------------------------------------


def _pod_rules(settings: Config) -> list[dict[str, Any]]:
    rules = rbac.cluster_rules(settings)
    return [r for r in rules if any(res.startswith("pods") for res in r["resources"]) or r["resources"] == ["events"]]


def test_rbac_grants_pods_and_evictions_only_with_repair_pods() -> None:
    off = parse_config({**CONFIG.model_dump(mode="json", exclude_none=True), "repair_pods": False})
    assert _pod_rules(off) == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    assert _pod_rules(CONFIG) == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    ]


def test_once_prints_each_repair_with_its_pod_owner_image_and_spec() -> None:
    evicted = RepairOutcome(Eviction(stuck(), OWNER, "regcred", IMAGE), RepairAction.WOULD_EVICT)
    printed = repairs_table([evicted])
    assert f"team-a/app-5d9f-x1  ReplicaSet/app-5d9f  {IMAGE}  regcred  would evict" in printed
    assert repairs_table([]) == "repair_pods: no Pod stuck without its pull Secret"
    results = [SyncResult("regcred"), SyncResult("any-sa")]
    as_json = json.loads(results_json(results, [evicted]))
    assert as_json[0]["repairs"] == [
        {
            "pod": "team-a/app-5d9f-x1",
            "owner": "ReplicaSet/app-5d9f",
            "image": IMAGE,
            "secret": "regcred",
            "action": "would evict",
            "error": "",
        }
    ]
    assert as_json[1]["repairs"] == []
    assert "repairs" not in json.loads(results_json(results))[0]  # repair_pods off: the 0.2 shape
