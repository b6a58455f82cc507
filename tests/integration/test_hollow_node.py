"""A kubelet whose pulls are real: Pods on the hollow node pull a private image from the registry.

The session stack is a control plane (kube-apiserver with the ServiceAccount admission plugin on,
kube-controller-manager, whose node-lifecycle-controller lifts the node's not-ready taint and
whose serviceaccount-controller makes each namespace's `default`, kube-scheduler) with the
harness registry (htpasswd). This module adds a HollowNode to it: v1.34.4's kubelet over fake
containers, whose image service logs in to the registry with the AuthConfig the kubelet hands it.
Every outcome asserted on is the kubelet's own: the Pod's phase and container state, and the
Events it writes. A pull the registry refuses (a wrong, stale or missing Secret) is in
test_pods_pull.py, as a Deployment beside `syncd explain --verify`; its fixtures are these.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import default_service_account, pull_secret_names
from harness.node import HollowNode
from harness.oci import Skopeo, dockerconfigjson, make_layout
from harness.process import free_port
from harness.registry import Registry
from harness.syncd_process import SyncdProcess, vault_config
from harness.wait import wait_until

# A cold build of hollow-node (scripts/hollow-node.sh) takes minutes; `make hollow-node` ahead avoids that.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PULL_FAILED = ("ErrImagePull", "ImagePullBackOff")


@dataclass
class Cluster:
    registry: Registry
    node: HollowNode
    core: client.CoreV1Api
    skopeo: Skopeo


@pytest.fixture(scope="module")
def cluster(stack: Stack, kube_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The stack with a hollow node, for this module only: stop() deletes the Node again, so the
    other modules' Pods stay unscheduled, as they were written for."""
    state = tmp_path_factory.mktemp("hollow")
    node = HollowNode(stack.kube, state, insecure_registries=[stack.registry.host])
    began = time.monotonic()
    node.start()
    try:
        ready = time.monotonic() - began
        node.wait_schedulable()
        print(f"\nhollow node: Ready {ready:.1f}s after start, schedulable after {time.monotonic() - began:.1f}s")
        print(f"hollow node: kubelet {(node.node() or {})['status']['nodeInfo']['kubeletVersion']}")
        yield Cluster(stack.registry, node, client.CoreV1Api(kube_api), Skopeo(state / "skopeo"))
        print(f"\nhollow node: RSS {node.rss_kib() / 1024:.0f} MiB")
    finally:
        node.stop()


FAILURES = "syncd_image_pull_failures_total"


@dataclass
class Image:
    reference: str
    digest: str


@pytest.fixture
def image(cluster: Cluster, tmp_path: Path) -> Image:
    """A private image of this test's own, pushed with skopeo: no other test's pull can have put
    it on the node already (where IfNotPresent would skip the pull)."""
    layout = make_layout(tmp_path / "layout", "v1", {"hello.txt": f"hollow {uuid.uuid4()}\n".encode()})
    registry = cluster.registry
    authfile = tmp_path / "auth.json"
    authfile.write_bytes(dockerconfigjson(registry.host, registry.username, registry.password))
    reference = f"{registry.host}/syncd/hollow-{uuid.uuid4().hex[:8]}:v1"
    pushed = cluster.skopeo.run(
        "copy", "--authfile", str(authfile), "--dest-tls-verify=false", layout.reference, f"docker://{reference}"
    )
    assert pushed.returncode == 0, pushed.stderr
    return Image(reference, layout.digest)


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    """A new namespace, once the controller gave it its `default` ServiceAccount (admission needs it)."""
    name = f"hollow-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    default_service_account(cluster.core, name)
    return name


def pull_secret(cluster: Cluster, namespace: str, password: str) -> str:
    registry = cluster.registry
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="pull"),
        type="kubernetes.io/dockerconfigjson",
        data={
            ".dockerconfigjson": base64.b64encode(dockerconfigjson(registry.host, registry.username, password)).decode()
        },
    )
    cluster.core.create_namespaced_secret(namespace, secret)
    return "pull"


def create_pod(cluster: Cluster, namespace: str, image: str, secret: str | None) -> float:
    """Create Pod `app`; returns the monotonic time of the create."""
    spec = client.V1PodSpec(
        containers=[client.V1Container(name="app", image=image)],
        image_pull_secrets=[client.V1LocalObjectReference(name=secret)] if secret else None,
        termination_grace_period_seconds=0,
    )
    began = time.monotonic()
    cluster.core.create_namespaced_pod(namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="app"), spec=spec))
    return began


@dataclass(frozen=True)
class PodState:
    """What the kubelet reported of Pod `app` (read as JSON: the client's models are all Optional)."""

    phase: str
    node: str
    service_account: str
    waiting: str | None
    running: bool
    ready: bool
    image_id: str


def pod_state(cluster: Cluster, namespace: str) -> PodState:
    pod: dict[str, Any] = cluster.core.api_client.sanitize_for_serialization(
        cluster.core.read_namespaced_pod("app", namespace)
    )
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    state = statuses[0].get("state", {})
    return PodState(
        phase=pod["status"].get("phase", ""),
        node=pod["spec"].get("nodeName", ""),
        service_account=pod["spec"].get("serviceAccountName", ""),
        waiting=state.get("waiting", {}).get("reason"),
        running="running" in state,
        ready=bool(statuses[0].get("ready")),
        image_id=statuses[0].get("imageID", ""),
    )


@dataclass(frozen=True)
class Event:
    type: str
    message: str
    host: str


def kubelet_events(cluster: Cluster, namespace: str, reason: str, pod: str = "app") -> list[Event]:
    """The Events with `reason` the kubelet wrote about `pod`."""
    found = cluster.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}")
    events: list[dict[str, Any]] = cluster.core.api_client.sanitize_for_serialization(found)["items"]
    return [
        Event(e["type"], e["message"], e["source"].get("host", ""))
        for e in events
        if e["reason"] == reason and e["source"].get("component") == "kubelet"
    ]


def test_a_pull_secret_that_logs_in_runs_the_pod(cluster: Cluster, image: Image, namespace: str) -> None:
    """The kubelet pulls with the Secret's login; the Pod runs on the hollow node with that image."""
    began = create_pod(cluster, namespace, image.reference, pull_secret(cluster, namespace, cluster.registry.password))

    def running() -> bool:
        state = pod_state(cluster, namespace)
        assert state.waiting not in PULL_FAILED, state
        return state.phase == "Running"

    wait_until(running, 120, "Pod Running")
    print(f"\nhollow node: Pod Running {time.monotonic() - began:.1f}s after create")
    state = pod_state(cluster, namespace)
    assert state.node == cluster.node.name
    assert state.service_account == "default"  # admitted by the ServiceAccount plugin
    assert state.running
    assert state.ready
    assert state.image_id.endswith(image.digest)
    pulled = kubelet_events(cluster, namespace, "Pulled")
    assert any(image.reference in e.message for e in pulled), pulled


def create_named_pod(
    cluster: Cluster, namespace: str, name: str, image: str, pull_secrets: list[str] | None = None
) -> None:
    """Pod `name` pulling `image` every time (a pull is what is tested); without `pull_secrets` it
    gets its ServiceAccount's at admission."""
    refs = [client.V1LocalObjectReference(name=secret) for secret in pull_secrets] if pull_secrets else None
    spec = client.V1PodSpec(
        containers=[client.V1Container(name="app", image=image, image_pull_policy="Always")],
        image_pull_secrets=refs,
        termination_grace_period_seconds=0,
    )
    cluster.core.create_namespaced_pod(namespace, client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=spec))


def failed_pulls(cluster: Cluster, namespace: str, pod: str) -> list[str]:
    """The kubelet's `Failed` Events of the pull itself (the other says `Error: ErrImagePull`)."""
    failed = kubelet_events(cluster, namespace, "Failed", pod)
    return [e.message for e in failed if e.message.startswith("Failed to pull image ")]


def pull_failure_settings(stack: Stack, tmp_path: Path, selected: str, refused: str, closed: str) -> dict[str, Any]:
    """Spec `regcred` in `selected`: the registry's right login, and a key for a host nobody answers
    on; spec `absent` there too, from a Vault path that does not exist (so its Secret is never
    written); spec `wrongcred` in `refused`: a password the registry refuses."""
    vault = hvac.Client(url=stack.vault.address, token=stack.vault.token)
    registry = stack.registry
    path = f"hollow/{uuid.uuid4().hex[:8]}"
    logins = {"right": registry.password, "wrong": "not-the-password"}
    for name, password in logins.items():
        vault.secrets.kv.v2.create_or_update_secret(
            f"{path}/{name}", secret={"username": registry.username, "password": password}
        )

    def credential(name: str, host: str, vault_path: str) -> dict[str, Any]:
        return {"name": name, "registry": host, "vault": {"kv": 2, "path": f"{path}/{vault_path}"}}

    def spec(name: str, credentials: list[str], namespace: str) -> dict[str, Any]:
        return {"name": name, "credentials": credentials, "namespaces": {"names": [namespace]}}

    return {
        "instance": f"hollow-{uuid.uuid4().hex[:6]}",
        "pull_failures": True,
        "vault": vault_config(stack, tmp_path),
        "credentials": [
            credential("harness", registry.host, "right"),
            credential("nobody", closed, "right"),
            credential("wrong", registry.host, "wrong"),
            credential("absent", registry.host, "absent"),
        ],
        "secrets": [
            {**spec("regcred", ["harness", "nobody"], selected), "service_accounts": ["default"]},
            spec("absent", ["absent"], selected),
            {**spec("wrongcred", ["wrong"], refused), "service_accounts": ["default"]},
        ],
        "schedule": {"interval": "1h"},
    }


def test_syncd_counts_the_kubelets_refused_pulls_and_missing_secrets_not_its_other_failures(
    stack: Stack, cluster: Cluster, image: Image, tmp_path: Path
) -> None:
    """`pull_failures: true` against the kubelet's own Events (issue 21), for each reason this
    kubelet fails a pull: a tag the registry does not have (404 manifest unknown), a registry host
    that does not answer (connection refused), a pull Secret the Pod names that does not exist, and
    a login the registry refuses (401). Only the last two are syncd's Secrets' doing, and only they
    count. The Events program (test_pull_failures.py) keeps what this node cannot write: other
    runtimes' error texts and fast repeats; the recorder's `(combined from similar events)` prefix
    is unit-tested (tests/unit/test_pull_failures.py)."""
    registry = stack.registry
    selected, refused = (f"hollow-{uuid.uuid4().hex[:6]}" for _ in range(2))
    for name in (selected, refused):
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        default_service_account(cluster.core, name)
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: the node's dial is refused
    daemon = SyncdProcess(
        pull_failure_settings(stack, tmp_path, selected, refused, closed),
        tmp_path / "daemon",
        stack.kube.kubeconfig,
        {},
    )
    daemon.start()
    try:
        daemon.wait_ready()
        wait_until(
            lambda: "regcred" in pull_secret_names(cluster.core.read_namespaced_service_account("default", selected)),
            30,
            "syncd to link regcred to the default ServiceAccount",
        )
        missing_tag = image.reference.rpartition(":")[0] + ":no-such-tag"
        create_named_pod(cluster, selected, "tag", missing_tag)
        create_named_pod(cluster, selected, "nobody", f"{closed}/syncd/app:v1")
        create_named_pod(cluster, selected, "absent", f"{closed}/syncd/app:v1", ["absent"])
        # Not syncd's doing: the kubelet's Events for them come first, on the same watch as the 401.
        wait_until(
            lambda: bool(failed_pulls(cluster, selected, "tag") and failed_pulls(cluster, selected, "nobody")),
            60,
            "the kubelet's failed pulls of a missing tag and of a host that does not answer",
        )
        not_found, unanswered = (failed_pulls(cluster, selected, pod) for pod in ("tag", "nobody"))
        assert all("404 Not Found" in m for m in not_found), not_found
        assert all("connection refused" in m for m in unanswered), unanswered
        wait_until(
            lambda: daemon.metric(FAILURES, secret="absent", registry="", reason="secret_unavailable") > 0,
            60,
            "the kubelet's missing pull Secret counted by syncd",
        )
        unavailable = kubelet_events(cluster, selected, "FailedToRetrieveImagePullSecret", "absent")
        assert any("(absent)" in e.message for e in unavailable), unavailable

        create_named_pod(cluster, refused, "app", image.reference)
        wait_until(
            lambda: daemon.metric(FAILURES, secret="wrongcred", registry=registry.host, reason="auth_failed") > 0,
            90,
            "the kubelet's refused pull counted by syncd",
        )
        # What syncd counted is the kubelet's own Event of the refused pull.
        refusals = failed_pulls(cluster, refused, "app")
        assert refusals, refusals
        assert all("401 Unauthorized" in m for m in refusals), refusals
        # The watch of Failed Events delivers in order: the 404 and the refused dial were seen first.
        counted = {
            line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in daemon.metrics().splitlines()
            if line.startswith(FAILURES) and not line.endswith(" 0.0")
        }
        assert set(counted) == {
            f'{FAILURES}{{reason="secret_unavailable",registry="",secret="absent"}}',
            f'{FAILURES}{{reason="auth_failed",registry="{registry.host}",secret="wrongcred"}}',
        }, counted
    finally:
        daemon.stop_quietly()
