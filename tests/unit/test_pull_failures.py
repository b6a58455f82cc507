"""Which kubelet Events count as failed pulls for syncd's Secrets, and how often (syncd.engine.pull_failures).

The messages are the kubelet's formats (Kubernetes 1.34.4) around runtime errors quoted from
containerd v2.1 and CRI-O (containers/image v5); tests/integration/test_pull_failures.py has the
kubelet's own code write them into a real apiserver.
"""

from __future__ import annotations

import pytest

from syncd.config import Config, parse_config
from syncd.core.values import NamespaceInfo, PullFailureReason
from syncd.core.watch_events import Change, KubeletEvent
from syncd.engine.pull_failures import (
    Occurrences,
    PullFailure,
    PullFailureCounter,
    classify,
    failed_image,
    unavailable_secrets,
)
from syncd.manifests import rbac

CONFIG: Config = parse_config(
    {
        "pull_failures": True,
        "credentials": [
            {"name": "hub", "registry": "https://index.docker.io/v1/", "helper": "pass"},
            {"name": "team", "registry": "quay.io/team", "helper": "pass"},
            {"name": "ecr", "registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "helper": "ecr-login"},
        ],
        "secrets": [
            {"name": "regcred", "credentials": ["hub", "team"], "namespaces": {"patterns": ["team-*"]}},
            {"name": "ecr-pull", "credentials": ["ecr"], "namespaces": {"selector": "aws=yes"}},
        ],
    }
)
TEAM = NamespaceInfo("team-a")
AWS = NamespaceInfo("payments", labels={"aws": "yes"})
OTHER = NamespaceInfo("other")
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"

# Runtime errors, as the runtimes word them (see AUTH_MARKERS in syncd/engine/pull_failures.py).
CONTAINERD_401 = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/nginx:latest": '
    'failed to resolve reference "docker.io/library/nginx:latest": failed to authorize: failed to fetch '
    "oauth token: unexpected status from POST request to https://auth.docker.io/token: 401 Unauthorized"
)
CONTAINERD_DENIED = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "quay.io/team/app:1": failed to resolve '
    'reference "quay.io/team/app:1": pull access denied, repository does not exist or may require '
    "authorization: server message: insufficient_scope: authorization failed"
)
CRIO_401 = (
    "rpc error: code = Unknown desc = reading manifest 1 in quay.io/team/app: unable to retrieve auth token: "
    "invalid username/password: unauthorized: access to the requested resource is not authorized"
)
ECR_403 = (
    f'rpc error: code = Unknown desc = failed to pull and unpack image "{ECR}/api:7": failed to resolve '
    f'reference "{ECR}/api:7": unexpected status from HEAD request to https://{ECR}/v2/api/manifests/7: '
    "403 Forbidden"
)
NOT_FOUND = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/team/app:9": failed to resolve '
    'reference "quay.io/team/app:9": quay.io/team/app:9: not found'
)
UNREACHABLE = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "quay.io/team/app:1": failed to resolve '
    'reference "quay.io/team/app:1": failed to do request: Head "https://quay.io/v2/team/app/manifests/1": '
    "dial tcp 10.0.0.1:443: connect: connection refused"
)


def pulled(image: str, error: str, *, combined: bool = False, count: int = 1, change: Change = "ADDED") -> KubeletEvent:
    prefix = "(combined from similar events): " if combined else ""
    message = f'{prefix}Failed to pull image "{image}": {error}'
    return KubeletEvent(change, f"uid-{image}", "team-a", "Failed", message, count)


def missing(*names: str, count: int = 1, change: Change = "ADDED", uid: str = "uid-missing") -> KubeletEvent:
    listed = ", ".join(names)
    message = f"Unable to retrieve some image pull secrets ({listed}); attempting to pull the image may not succeed."
    return KubeletEvent(change, uid, "team-a", "FailedToRetrieveImagePullSecret", message, count)


@pytest.mark.parametrize("error", [CONTAINERD_401, CONTAINERD_DENIED, CRIO_401, ECR_403])
def test_refused_logins_are_auth_failures(error: str) -> None:
    assert failed_image(f'Failed to pull image "nginx": {error}') == "nginx"


@pytest.mark.parametrize("error", [NOT_FOUND, UNREACHABLE, "rpc error: code = Unknown desc = no space left on device"])
def test_other_pull_errors_are_not(error: str) -> None:
    assert failed_image(f'Failed to pull image "quay.io/team/app:1": {error}') is None


def test_messages_of_other_shapes_are_not_pull_failures() -> None:
    assert failed_image('Back-off pulling image "nginx": ErrImagePull: unauthorized') is None
    assert failed_image("Error: ErrImagePull") is None
    assert unavailable_secrets("Unable to retrieve some image pull secrets") == []


def test_the_missing_secret_names_are_read_from_the_kubelets_message() -> None:
    assert unavailable_secrets(missing("regcred", "other").message) == ["regcred", "other"]
    combined = "(combined from similar events): " + missing("regcred").message
    assert unavailable_secrets(combined) == ["regcred"]


def test_a_refused_login_counts_for_the_key_that_serves_the_image() -> None:
    for image in ("nginx", "nginx:1.27", "docker.io/library/nginx", "index.docker.io/acme/api@sha256:" + "a" * 64):
        assert classify(pulled(image, CONTAINERD_401), CONFIG, TEAM) == [
            PullFailure("regcred", "docker.io", PullFailureReason.AUTH_FAILED)
        ], image
    assert classify(pulled("quay.io/team/app:1", CRIO_401, combined=True), CONFIG, TEAM) == [
        PullFailure("regcred", "quay.io/team/", PullFailureReason.AUTH_FAILED)
    ]
    assert classify(pulled(f"{ECR}/api:7", ECR_403), CONFIG, AWS) == [
        PullFailure("ecr-pull", ECR, PullFailureReason.AUTH_FAILED)
    ]


def test_images_no_key_serves_and_namespaces_no_spec_selects_do_not_count() -> None:
    assert classify(pulled("quay.io/team-admin/app:1", CRIO_401), CONFIG, TEAM) == []
    assert classify(pulled("ghcr.io/acme/app", CONTAINERD_401), CONFIG, TEAM) == []
    assert classify(pulled(f"{ECR}/api:7", ECR_403), CONFIG, TEAM) == []  # ecr-pull does not select team-a
    assert classify(pulled("nginx", CONTAINERD_401), CONFIG, OTHER) == []
    assert classify(pulled("nginx", CONTAINERD_401), CONFIG, NamespaceInfo("team-b", terminating=True)) == []
    assert classify(pulled("Not/A Valid:image", CONTAINERD_401), CONFIG, TEAM) == []


def test_a_missing_pull_secret_counts_only_for_syncds_names_where_selected() -> None:
    unavailable = PullFailure("regcred", "", PullFailureReason.SECRET_UNAVAILABLE)
    assert classify(missing("by-hand", "regcred"), CONFIG, TEAM) == [unavailable]
    assert classify(missing("by-hand"), CONFIG, TEAM) == []
    assert classify(missing("regcred"), CONFIG, OTHER) == []
    assert classify(missing("ecr-pull"), CONFIG, AWS) == [
        PullFailure("ecr-pull", "", PullFailureReason.SECRET_UNAVAILABLE)
    ]


def test_occurrences_follow_the_recorders_count_on_one_event() -> None:
    seen = Occurrences(size=2)
    assert seen.new(missing("regcred", count=1)) == 1
    assert seen.new(missing("regcred", count=3, change="MODIFIED")) == 2
    assert seen.new(missing("regcred", count=3, change="MODIFIED")) == 0  # another field changed
    # An Event syncd first sees modified (it started, or relisted, after the Event was made):
    # only the occurrence that modified it is new.
    assert seen.new(missing("regcred", count=40, change="MODIFIED", uid="older")) == 1
    assert seen.new(missing("regcred", count=2, change="ADDED", uid="new")) == 2
    assert seen.new(missing("regcred", count=5, change="DELETED", uid="new")) == 0
    # Bounded: the oldest is forgotten first.
    seen.new(missing("regcred", uid="x"))
    seen.new(missing("regcred", uid="y"))
    assert seen.new(missing("regcred", count=3, change="MODIFIED")) == 1


def test_the_counter_records_each_failure_times_its_new_occurrences_and_reads_namespaces_lazily() -> None:
    recorded: list[tuple[PullFailure, int]] = []
    namespaces_read: list[str] = []

    def namespace(name: str) -> NamespaceInfo | None:
        namespaces_read.append(name)
        return TEAM if name == "team-a" else None

    counter = PullFailureCounter(lambda: CONFIG, namespace, lambda f, n: recorded.append((f, n)))
    counter.observe(pulled("ghcr.io/acme/app", UNREACHABLE))
    counter.observe(missing("someone-elses"))
    assert namespaces_read == []  # neither can count: no namespace read
    counter.observe(pulled("nginx", CONTAINERD_401))
    counter.observe(pulled("nginx", CONTAINERD_401, count=4, change="MODIFIED"))
    auth = PullFailure("regcred", "docker.io", PullFailureReason.AUTH_FAILED)
    assert recorded == [(auth, 1), (auth, 3)]
    gone = KubeletEvent("ADDED", "uid-gone", "deleted-ns", "Failed", pulled("nginx", CONTAINERD_401).message, 1)
    assert counter.observe(gone) == []


def test_syncd_rbac_grants_reading_events_only_with_pull_failures() -> None:
    read_events = {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]}
    assert read_events in rbac.cluster_rules(CONFIG)
    off = CONFIG.model_copy(update={"pull_failures": False})
    assert read_events not in rbac.cluster_rules(off)
    assert [r for r in rbac.cluster_rules(off) if "events" in r["resources"]] == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}
    ]


def test_a_standby_reads_no_namespace_and_records_nothing() -> None:
    recorded: list[tuple[PullFailure, int]] = []
    namespaces_read: list[str] = []

    def namespace(name: str) -> NamespaceInfo | None:
        namespaces_read.append(name)
        return TEAM

    leading = False
    counter = PullFailureCounter(
        lambda: CONFIG, namespace, lambda f, n: recorded.append((f, n)), counting=lambda: leading
    )
    counter.observe(pulled("nginx", CONTAINERD_401))
    assert (recorded, namespaces_read) == ([], [])
    leading = True  # taking the lease: only occurrences after that count
    counter.observe(pulled("nginx", CONTAINERD_401, count=3, change="MODIFIED"))
    assert recorded == [(PullFailure("regcred", "docker.io", PullFailureReason.AUTH_FAILED), 2)]
