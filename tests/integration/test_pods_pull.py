"""The chain that ends in a Pod pulling: syncd's Secret, the ServiceAccount, the kubelet, the registry.

A Deployment of a private image from the harness registry, in four namespaces that differ only in
the pull Secret syncd wrote there: one that logs in, one gone stale (the registry changed the
password after syncd wrote it), one wrong from the start (the source holds a wrong password) and
one missing (the ServiceAccount lists it, the Secret was deleted). kube-controller-manager makes
the ReplicaSet and Pod, the ServiceAccount admission plugin copies the `default` ServiceAccount's
imagePullSecrets into it, kube-scheduler puts it on the hollow node, and the kubelet there pulls
with what it found (harness/node.py). `syncd explain --verify` must agree with the kubelet in every
namespace: exit 0 exactly where the Pod goes Running, and where it does not, the reason the
kubelet's own Events give.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import default_service_account, pull_secret_names
from harness.oci import dockerconfigjson
from harness.wait import wait_until
from tests.integration import test_hollow_node as hollow
from tests.integration.conftest import Run, RunSyncd, WriteConfig
from tests.integration.test_hollow_node import Cluster, Image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

cluster, image = hollow.cluster, hollow.image  # the hollow node's fixtures: a node for this module
CASES = ("syncd", "stale", "wrong", "missing")
LABELS = {"app": "chain"}


@dataclass(frozen=True)
class Outcome:
    """What the kubelet made of the Deployment's Pod: Running, or waiting on a failed pull."""

    running: bool
    ready: bool
    waiting: str | None
    node: str
    image_id: str
    events: dict[str, list[str]]  # the kubelet's Events about the Pod: reason -> messages
    hosts: set[str]  # the nodes those Events came from


def create_deployment(cluster: Cluster, namespace: str, image: str) -> None:
    """One replica, no imagePullSecrets of its own: the Pod gets the ServiceAccount's at admission."""
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=LABELS),
        spec=client.V1PodSpec(
            # Always: with IfNotPresent the first Pod's pull would put the image on the node, and the
            # others would run without pulling, whatever their Secret (what explain cannot know).
            containers=[client.V1Container(name="app", image=image, image_pull_policy="Always")],
            termination_grace_period_seconds=0,
        ),
    )
    spec = client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels=LABELS), template=template)
    deployment = client.V1Deployment(metadata=client.V1ObjectMeta(name="chain"), spec=spec)
    client.AppsV1Api(cluster.core.api_client).create_namespaced_deployment(namespace, deployment)


def outcome(cluster: Cluster, namespace: str) -> Outcome | None:
    """The Pod's outcome once it has one: Running, or ImagePullBackOff (the kubelet retried and
    failed again); None before."""
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="app=chain")
    found: list[dict[str, Any]] = cluster.core.api_client.sanitize_for_serialization(pods)["items"]
    if len(found) != 1:
        return None
    pod, status = found[0], found[0].get("status", {})
    container = (status.get("containerStatuses") or [{}])[0]
    state = container.get("state", {})
    waiting = state.get("waiting", {}).get("reason")
    if status.get("phase") != "Running" and waiting != "ImagePullBackOff":
        assert status.get("phase") == "Pending", status  # never Running on the way to a back-off
        return None
    events, hosts = pod_events(cluster, namespace, pod["metadata"]["name"])
    node = pod["spec"].get("nodeName", "")
    return Outcome("running" in state, bool(container.get("ready")), waiting, node, container["imageID"], events, hosts)


def pod_events(cluster: Cluster, namespace: str, pod: str) -> tuple[dict[str, list[str]], set[str]]:
    listed = cluster.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}")
    events: list[dict[str, Any]] = cluster.core.api_client.sanitize_for_serialization(listed)["items"]
    found: dict[str, list[str]] = {}
    hosts = set()
    for event in events:
        if event["source"].get("component") == "kubelet":
            found.setdefault(event["reason"], []).append(event["message"])
            hosts.add(event["source"].get("host", ""))
    return found, hosts


@dataclass
class Chain:
    """The four namespaces by case, and the config `syncd once` wrote their Secrets from."""

    namespaces: dict[str, str]
    config: Path
    stale_user: str


def write_secrets(
    stack: Stack, cluster: Cluster, write_config: WriteConfig, run_syncd: RunSyncd, old_password: str
) -> Chain:
    """`syncd once` writes each namespace's Secret from Vault and links it to `default`."""
    registry = stack.registry
    suffix = uuid.uuid4().hex[:6]
    namespaces = {case: f"chain-{case}-{suffix}" for case in CASES}
    for name in namespaces.values():
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        default_service_account(cluster.core, name)
    stale_user = f"chain-{suffix}"
    registry.set_password(stale_user, old_password)
    # Beside syncd's Secret, and first in the list: a hand-made one with a login the registry refuses.
    by_hand = {".dockerconfigjson": base64.b64encode(dockerconfigjson(registry.host, "old", "wrong")).decode()}
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="old-hub"), type="kubernetes.io/dockerconfigjson", data=by_hand
    )
    cluster.core.create_namespaced_secret(namespaces["syncd"], secret)
    default_service_account(cluster.core, namespaces["syncd"], ["old-hub"])
    logins = {
        "good": (registry.username, registry.password),
        "stale": (stale_user, old_password),
        "wrong": (registry.username, f"not-the-password-{suffix}"),
    }
    vault = hvac.Client(url=stack.vault.address, token=stack.vault.token)
    for credential, (username, password) in logins.items():
        path = f"chain/{suffix}/{credential}"
        vault.secrets.kv.v2.create_or_update_secret(path, secret={"username": username, "password": password})

    def spec(name: str, credential: str, *cases: str) -> dict[str, Any]:
        selected = {"names": [namespaces[case] for case in cases]}
        return {"name": name, "credentials": [credential], "namespaces": selected, "service_accounts": ["default"]}

    config = write_config(
        {
            "vault": {},
            "credentials": [
                {"name": name, "registry": registry.host, "vault": {"kv": 2, "path": f"chain/{suffix}/{name}"}}
                for name in logins
            ],
            "secrets": [
                spec("regcred", "good", "syncd", "missing"),
                spec("stale", "stale", "stale"),
                spec("wrong", "wrong", "wrong"),
            ],
        }
    )
    assert run_syncd("once", config=config).code == 0
    return Chain(namespaces, config, stale_user)


def explain(run_syncd: RunSyncd, chain: Chain, case: str, image: str) -> Run:
    namespace = chain.namespaces[case]
    return run_syncd(
        "explain", "--namespace", namespace, "--image", image, "--verify", "--output", "json", config=chain.config
    )


def test_a_deployment_runs_with_syncds_secret_only_and_explain_says_so(
    stack: Stack,
    cluster: Cluster,
    image: Image,
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    registry = stack.registry
    old, new = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    chain = write_secrets(stack, cluster, write_config, run_syncd, old)
    ns = chain.namespaces
    before = explain(run_syncd, chain, "stale", image.reference)
    assert before.code == 0, before.out  # the stale Secret logged in when syncd wrote it...
    registry.set_password(chain.stale_user, new)  # ...then the registry's password changed
    cluster.core.delete_namespaced_secret("regcred", ns["missing"])  # the ServiceAccount still lists it
    assert pull_secret_names(cluster.core.read_namespaced_service_account("default", ns["missing"])) == ["regcred"]

    began = time.monotonic()
    for namespace in ns.values():
        create_deployment(cluster, namespace, image.reference)
    explained = {case: explain(run_syncd, chain, case, image.reference) for case in CASES}
    outcomes: dict[str, Outcome] = {}

    def decided() -> bool:
        for case, namespace in ns.items():
            if case not in outcomes and (found := outcome(cluster, namespace)) is not None:
                outcomes[case] = found
        return len(outcomes) == len(CASES)

    wait_until(decided, 120, "each Deployment's Pod Running or in ImagePullBackOff")
    print(f"\npod chain: all four decided {time.monotonic() - began:.1f}s after the Deployments")

    # explain and the kubelet agree everywhere: a login accepted exactly where the Pod runs.
    assert {case: o.running for case, o in outcomes.items()} == {case: case == "syncd" for case in CASES}
    assert {o.node for o in outcomes.values()} == {cluster.node.name}
    assert set().union(*(o.hosts for o in outcomes.values())) == {cluster.node.name}
    assert outcomes["syncd"].ready
    assert outcomes["syncd"].image_id.endswith(image.digest)
    assert any(image.reference in m for m in outcomes["syncd"].events["Pulled"]), outcomes["syncd"].events
    assert {case: run.code == 0 for case, run in explained.items()} == {case: o.running for case, o in outcomes.items()}
    answers = {case: json.loads(run.out) for case, run in explained.items()}
    # The runtime tries the logins in the Pod's order (kuberuntime_image.go) until one works: the
    # hand-made one is refused, syncd's pulls.
    assert [(o["secret"], o["credential"], o["login"]) for o in answers["syncd"]["offers"]] == [
        ("old-hub", None, "refused"),
        ("regcred", "good", "accepted"),
    ]
    for case, credential in (("stale", "stale"), ("wrong", "wrong")):
        assert [(o["secret"], o["credential"], o["login"]) for o in answers[case]["offers"]] == [
            (case, credential, "refused")
        ]
        assert answers[case]["problems"] == [
            "the registry refused every offered login: the kubelet's pull fails (ErrImagePull)"
        ]
        assert_refused_by_the_registry(outcomes[case], image)
    assert answers["missing"]["offers"] == []
    assert answers["missing"]["problems"][0].startswith(f"Secret {ns['missing']}/regcred is listed but missing")
    missing = outcomes["missing"]
    assert_refused_by_the_registry(missing, image)  # pulled anonymously, and refused
    assert any("(regcred)" in m for m in missing.events["FailedToRetrieveImagePullSecret"]), missing.events
    for run in explained.values():
        assert registry.password not in run.out + run.err
        assert old not in run.out + run.err


def assert_refused_by_the_registry(found: Outcome, image: Image) -> None:
    """The kubelet's own failure: the container waits on the pull, the Event names the 401."""
    assert found.waiting == "ImagePullBackOff"
    assert not found.running
    assert not found.ready
    failed = [m for m in found.events.get("Failed", []) if m.startswith(f'Failed to pull image "{image.reference}": ')]
    assert failed, found.events
    assert all("401 Unauthorized" in m for m in failed), failed
