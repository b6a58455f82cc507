"""The admission webhook on the real control plane, with the hollow kubelet that really pulls (issue 22).

A Namespace and a Deployment of a private image, created back to back, race syncd: the
ServiceAccount admission plugin copies `imagePullSecrets` into a Pod once, at creation, and a
Pod admitted before syncd linked its Secret to `default` never gets it. Measured here first
without the webhook (the race, its count printed), then with it (every Pod admitted with the
Secret, and Running: the kubelet logged in with it). Then: syncd stopped, Pods are still admitted;
a Pod's own pull Secrets keep their order, syncd's appended; no other spec's Secret and nothing
for an unselected namespace. Last, `repair_pods`: Pods stuck without the Secret while syncd was
down are evicted for their controller (daemon and `once`, as syncd's ServiceAccount under the
generated RBAC), never a bare Pod nor one of an unselected namespace.

The apiserver calls the webhook at `admission.url` (127.0.0.1); syncd issues the certificate,
keeps it in its Secret, and patches the caBundle of the configuration `syncd admission` printed.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from kubernetes import client
from kubernetes import config as config_loader
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.accounts import service_account_token, token_kubeconfig
from harness.kube_objects import default_service_account
from harness.kubectl import kubectl
from harness.process import free_port
from harness.syncd_process import SyncdProcess, vault_config
from harness.wait import wait_until
from syncd.config import Config
from syncd.manifests import rbac
from tests.integration import test_hollow_node as hollow
from tests.integration.test_hollow_node import Cluster, Image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
cluster, image = hollow.cluster, hollow.image  # the hollow node's fixtures: one node for this module too
# Namespace + Deployment pairs: the race without the webhook is shown on 20 (it lost 19-20 of 20
# in every run), the proof with it is the 50 of 50.
RACED_PAIRS = 20
PAIRS = 50


@dataclass
class Webhook:
    tag: str
    settings: dict[str, Any]
    directory: Path
    configuration: str
    kubeconfig: Path

    def syncd(self, *, admission: bool = True) -> SyncdProcess:
        settings = {**self.settings, "admission": {**self.settings["admission"], "enabled": admission}}
        return SyncdProcess(settings, self.directory / uuid.uuid4().hex[:6], self.kubeconfig, {})


def _syncd_cli(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "syncd", *args, "--config", str(config)], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def webhook(stack: Stack, cluster: Cluster, tmp_path: Path) -> Iterator[Webhook]:
    """A syncd config serving `race-<tag>-*` (ServiceAccount default) and `other-<tag>-*` (another
    spec), a webhook at 127.0.0.1, and the configuration `syncd admission` prints, applied."""
    tag = uuid.uuid4().hex[:5]
    home = f"syncd-{tag}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=home)))
    path = f"webhook/{tag}"
    vault = hvac.Client(url=stack.vault.address, token=stack.vault.token)
    login = {"username": stack.registry.username, "password": stack.registry.password}
    vault.secrets.kv.v2.create_or_update_secret(path, secret=login)
    settings: dict[str, Any] = {
        "instance": f"hook-{tag}",
        "vault": vault_config(stack, tmp_path),
        "credentials": [{"name": "harness", "registry": stack.registry.host, "vault": {"kv": 2, "path": path}}],
        "secrets": [
            {
                "name": "regcred",
                "credentials": ["harness"],
                "namespaces": {"patterns": [f"race-{tag}-*"]},
                "service_accounts": ["default"],
            },
            {
                "name": "other-cred",
                "credentials": ["harness"],
                "namespaces": {"patterns": [f"other-{tag}-*"]},
                "service_accounts": ["*"],
            },
        ],
        "schedule": {"interval": "1h"},
        "admission": {
            "enabled": True,
            "address": f"127.0.0.1:{free_port()}",
            "namespace": home,
            "url": "",
            "configuration": f"syncd-{tag}",
        },
    }
    settings["admission"]["url"] = f"https://{settings['admission']['address']}/mutate"
    config = tmp_path / "syncd.yaml"
    config.write_text(yaml.safe_dump(settings))
    printed = list(yaml.safe_load_all(_syncd_cli(config, "admission")))
    assert [d["kind"] for d in printed] == ["MutatingWebhookConfiguration"]  # a URL: no Service
    admission = client.AdmissionregistrationV1Api(cluster.core.api_client)
    admission.create_mutating_webhook_configuration(printed[0])
    try:
        yield Webhook(tag, settings, tmp_path, f"syncd-{tag}", stack.kube.kubeconfig)
    finally:
        admission.delete_mutating_webhook_configuration(f"syncd-{tag}")


def ca_bundle(cluster: Cluster, name: str) -> bytes:
    admission = client.AdmissionregistrationV1Api(cluster.core.api_client)
    found: Any = admission.read_mutating_webhook_configuration(name, _preload_content=False)
    hooks = json.loads(found.data)["webhooks"]
    return base64.b64decode(hooks[0]["clientConfig"].get("caBundle") or "")


def deployment(name: str, image: str, pull_policy: str | None = None) -> client.V1Deployment:
    labels = {"app": name}
    container = client.V1Container(name="app", image=image, image_pull_policy=pull_policy)
    pod = client.V1PodSpec(containers=[container], termination_grace_period_seconds=0)
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=pod),
        ),
    )


def create_pairs(cluster: Cluster, prefix: str, image: str, count: int) -> list[str]:
    """`count` Namespace + Deployment pairs, each pair back to back, as `kubectl apply -f dir/` does."""
    apps = client.AppsV1Api(cluster.core.api_client)
    names = [f"{prefix}-{i}" for i in range(count)]
    for name in names:
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        apps.create_namespaced_deployment(name, deployment("app", image))
    return names


def pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    found = cluster.core.list_namespaced_pod(namespace)
    return list(cluster.core.api_client.sanitize_for_serialization(found)["items"])


def pull_names(pod: dict[str, Any]) -> list[str]:
    return [ref.get("name", "") for ref in pod["spec"].get("imagePullSecrets") or []]


def admitted(cluster: Cluster, namespaces: list[str], timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Each namespace's one Pod, once the ReplicaSet made it (its `default` ServiceAccount first)."""
    found: dict[str, dict[str, Any]] = {}

    def all_there() -> bool:
        for namespace in namespaces:
            if namespace not in found and (listed := pods(cluster, namespace)):
                found[namespace] = listed[0]
        return len(found) == len(namespaces)

    wait_until(all_there, timeout, f"a Pod in each of {len(namespaces)} namespaces", interval=0.5)
    return found


def running(cluster: Cluster, namespaces: list[str], timeout: float = 120) -> None:
    def all_running() -> bool:
        return all(any(p["status"].get("phase") == "Running" for p in pods(cluster, n)) for n in namespaces)

    wait_until(all_running, timeout, "every Pod Running", interval=1)


def delete_namespaces(cluster: Cluster, names: list[str]) -> None:
    for name in names:
        try:
            cluster.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def test_pods_created_with_their_namespace_race_syncd_without_the_webhook_and_never_with_it(
    cluster: Cluster,
    image: Image,
    webhook: Webhook,
) -> None:
    # The same daemon, admission off: the race as users meet it.
    without = webhook.syncd(admission=False).start()
    try:
        without.wait_ready()
        raced = create_pairs(cluster, f"race-{webhook.tag}-off", image.reference, RACED_PAIRS)
        missing = [n for n, pod in admitted(cluster, raced).items() if "regcred" not in pull_names(pod)]
        print(f"\nwithout the webhook: {len(missing)} of {RACED_PAIRS} Pods admitted without regcred")
    finally:
        without.stop_quietly()
    delete_namespaces(cluster, raced)

    daemon = webhook.syncd().start()
    try:
        daemon.wait_ready()
        wait_until(lambda: ca_bundle(cluster, webhook.configuration) != b"", 30, "syncd to set the caBundle")
        began = time.monotonic()
        served = create_pairs(cluster, f"race-{webhook.tag}-on", image.reference, PAIRS)
        found = admitted(cluster, served)
        lacking = sorted(n for n, pod in found.items() if "regcred" not in pull_names(pod))
        print(f"with the webhook: {len(lacking)} of {PAIRS} Pods admitted without regcred")
        assert lacking == []
        assert all(pull_names(pod) == ["regcred"] for pod in found.values())  # once, and nothing else
        running(cluster, served)
        print(f"with the webhook: {PAIRS} of {PAIRS} Running {time.monotonic() - began:.1f}s after the first create")
        # patched, or unchanged where syncd had linked the ServiceAccount first and the plugin copied it.
        answered = sum(daemon.metric("syncd_admission_requests_total", result=r) for r in ("patched", "unchanged"))
        assert answered >= PAIRS
        assert daemon.metric("syncd_admission_requests_total", result="patched") >= 1
        assert daemon.metric("syncd_admission_requests_total", result="error") == 0
    finally:
        daemon.stop_quietly()
    delete_namespaces(cluster, served)


def test_pods_keep_their_own_secrets_and_get_only_what_a_spec_serves_them(
    cluster: Cluster,
    image: Image,
    webhook: Webhook,
) -> None:
    daemon = webhook.syncd().start()
    names = [f"race-{webhook.tag}-own", f"plain-{webhook.tag}"]
    try:
        daemon.wait_ready()
        wait_until(lambda: ca_bundle(cluster, webhook.configuration) != b"", 30, "syncd to set the caBundle")
        for name in names:
            cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
            default_account(cluster, name)
        own = [client.V1LocalObjectReference(name=n) for n in ("mine-b", "mine-a", "other-cred")]
        selected = create_bare_pod(cluster, names[0], image.reference, own)
        # Its own three, in order; syncd's appended once. other-cred is another spec's, for other
        # namespaces: the webhook never adds it, and leaves the Pod's own entry alone.
        assert pull_names(selected) == ["mine-b", "mine-a", "other-cred", "regcred"]
        unselected = create_bare_pod(cluster, names[1], image.reference, None)
        assert pull_names(unselected) == []
    finally:
        daemon.stop_quietly()
    # syncd stopped, its configuration still there: Pods are admitted (failurePolicy Ignore).
    stopped = f"race-{webhook.tag}-down"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=stopped)))
    default_account(cluster, stopped)
    began = time.monotonic()
    pod = create_bare_pod(cluster, stopped, image.reference, None)
    took = time.monotonic() - began
    print(f"\nsyncd stopped: a Pod admitted in {took:.2f}s")
    assert pod["metadata"]["name"] == "app"
    assert took < 5
    delete_namespaces(cluster, [*names, stopped])


def default_account(cluster: Cluster, namespace: str) -> None:
    """The controller's `default` ServiceAccount, waited for: the ServiceAccount plugin needs it."""
    default_service_account(cluster.core, namespace)


def create_bare_pod(
    cluster: Cluster, namespace: str, image: str, pull: list[client.V1LocalObjectReference] | None
) -> dict[str, Any]:
    spec = client.V1PodSpec(
        containers=[client.V1Container(name="app", image=image)],
        image_pull_secrets=pull,
        termination_grace_period_seconds=0,
    )
    created = cluster.core.create_namespaced_pod(
        namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="app"), spec=spec)
    )
    return dict(cluster.core.api_client.sanitize_for_serialization(created))


def test_a_standby_replica_answers_too(cluster: Cluster, image: Image, webhook: Webhook) -> None:
    """Two replicas under leader election, each serving the webhook on its own port; the
    configuration points at the standby's. The leader writes (the Secret, the caBundle); the
    standby, which never syncs, serves the shared certificate and patches the Pod."""
    home = webhook.settings["admission"]["namespace"]
    election = {"enabled": True, "namespace": home, "name": f"lease-{webhook.tag}", "lease_duration": "5s"}
    leader = webhook.syncd()
    leader_settings = yaml.safe_load(leader.config_path.read_text())
    leader_settings["leader_election"] = election
    leader.config_path.write_text(yaml.safe_dump(leader_settings))
    leader.start()
    standby: SyncdProcess | None = None
    try:
        wait_until(lambda: leader.metric("syncd_leader") == 1, 30, "the first replica to lead")
        wait_until(lambda: ca_bundle(cluster, webhook.configuration) != b"", 30, "the leader to set the caBundle")
        address = f"127.0.0.1:{free_port()}"
        standby_settings = {
            **leader_settings,
            "admission": {**leader_settings["admission"], "address": address, "url": f"https://{address}/mutate"},
        }
        standby = SyncdProcess(standby_settings, webhook.directory / "standby", webhook.kubeconfig, {}).start()
        standby.wait_ready()
        assert standby.metric("syncd_leader") == 0
        admission = client.AdmissionregistrationV1Api(cluster.core.api_client)
        patch = [{"op": "replace", "path": "/webhooks/0/clientConfig/url", "value": f"https://{address}/mutate"}]
        admission.patch_mutating_webhook_configuration(webhook.configuration, patch)
        namespace = f"race-{webhook.tag}-standby"
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        default_account(cluster, namespace)

        def answered() -> bool:
            return standby is not None and standby.metric("syncd_admission_requests_total", result="patched") >= 1

        # A Pod naming a pull Secret of its own: the ServiceAccount plugin copies nothing then, so
        # regcred can only come from the webhook, here the standby.
        pod = create_bare_pod(cluster, namespace, image.reference, [client.V1LocalObjectReference(name="mine")])
        assert pull_names(pod) == ["mine", "regcred"]
        wait_until(answered, 10, "the standby's count of its answer")
        assert leader.metric("syncd_admission_requests_total", result="patched") == 0
    finally:
        leader.stop_quietly()
        if standby is not None:
            standby.stop_quietly()
    delete_namespaces(cluster, [f"race-{webhook.tag}-standby"])


# --- repair_pods ---------------------------------------------------------------------------------


def pull_waiting(pod: dict[str, Any]) -> str:
    """The kubelet's waiting reason of the Pod's container, "" when none."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return str(((statuses[0].get("state") or {}).get("waiting") or {}).get("reason") or "") if statuses else ""


def stuck_pod(cluster: Cluster, namespace: str, *, owned: bool = True, timeout: float = 90) -> dict[str, Any]:
    """The namespace's Pod with (or without: `owned`) a controller, once the kubelet reports its pull failing."""
    found: dict[str, Any] = {}

    def failing() -> bool:
        for pod in pods(cluster, namespace):
            if bool(pod["metadata"].get("ownerReferences")) == owned and pull_waiting(pod) in hollow.PULL_FAILED:
                found.update(pod)
                return True
        return False

    wait_until(failing, timeout, f"a Pod of {namespace} in ErrImagePull or ImagePullBackOff", interval=1)
    return found


def uids(cluster: Cluster, namespace: str) -> set[str]:
    return {p["metadata"]["uid"] for p in pods(cluster, namespace)}


def repaired_and_running(cluster: Cluster, namespace: str, stuck: dict[str, Any], timeout: float = 60) -> float:
    """Seconds until the Pod `stuck` was replaced by one that lists regcred and runs."""

    def replaced() -> bool:
        now = pods(cluster, namespace)
        return all(p["metadata"]["uid"] != stuck["metadata"]["uid"] for p in now) and any(
            p["status"].get("phase") == "Running" and "regcred" in pull_names(p) for p in now
        )

    return wait_until(replaced, timeout, f"the stuck Pod of {namespace} replaced by a Running one", interval=0.5)


def repair_events(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    found = cluster.core.list_namespaced_event(namespace, field_selector="reason=PodRepaired")
    return list(cluster.core.api_client.sanitize_for_serialization(found)["items"])


def as_service_account(stack: Stack, cluster: Cluster, settings: dict[str, Any], directory: Path) -> Path:
    """A kubeconfig of ServiceAccount `syncd` in the installation's namespace, bound by exactly the
    RBAC `syncd rbac` prints for `settings` (pods get/list and pods/eviction create for repair)."""
    home = settings["admission"]["namespace"]
    account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="syncd"))
    cluster.core.create_namespaced_service_account(home, account)
    docs = rbac.manifests(Config.model_validate(settings), namespace=home, service_account="syncd")
    applied = kubectl("apply", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=yaml.safe_dump_all(docs))
    assert applied.returncode == 0, applied.stderr
    token = service_account_token(cluster.core, home, "syncd", audiences=[])
    return token_kubeconfig(stack.kube, directory / "syncd-kubeconfig", token)


def test_pods_stuck_without_the_secret_are_evicted_for_their_controller_and_nothing_else(
    cluster: Cluster,
    image: Image,
    webhook: Webhook,
    stack: Stack,
) -> None:
    """syncd down (no webhook answers, no ServiceAccount linked): a Deployment's Pod and a bare Pod
    of a selected namespace, and a Deployment's Pod of an unselected one, all stuck in
    ImagePullBackOff. `once --dry-run` lists the Deployment's Pod alone and evicts nothing; the
    daemon with repair_pods (webhook off: the new Pod gets regcred from the ServiceAccount it
    linked) evicts it, its ReplicaSet's new Pod runs; the other two are never touched. Then
    `once` without --dry-run evicts another."""
    tag = webhook.tag
    selected, unselected, later = f"race-{tag}-stuck", f"plain-{tag}-stuck", f"race-{tag}-once"
    apps = client.AppsV1Api(cluster.core.api_client)
    for name in (selected, unselected):
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        default_account(cluster, name)
    apps.create_namespaced_deployment(selected, deployment("app", image.reference))
    apps.create_namespaced_deployment(unselected, deployment("app", image.reference))
    create_bare_pod(cluster, selected, image.reference, None)  # Pod `app`
    stuck = stuck_pod(cluster, selected)
    bare = stuck_pod(cluster, selected, owned=False)
    other = stuck_pod(cluster, unselected)
    untouched = {selected: bare["metadata"]["uid"], unselected: other["metadata"]["uid"]}
    settings = {
        **webhook.settings,
        "repair_pods": True,
        "admission": {**webhook.settings["admission"], "enabled": False},
    }
    config = webhook.directory / "repair.yaml"
    config.write_text(yaml.safe_dump(settings))
    kubeconfig = as_service_account(stack, cluster, settings, webhook.directory)

    listed = _syncd_cli(config, "once", "--dry-run", "--kubeconfig", str(kubeconfig))
    print(f"\nonce --dry-run:\n{listed}")
    lines = [line for line in listed.splitlines() if "would evict" in line]
    assert [line.split()[0] for line in lines] == [f"{selected}/{stuck['metadata']['name']}"]
    assert f"ReplicaSet/{stuck['metadata']['ownerReferences'][0]['name']}" in lines[0]
    assert image.reference in lines[0]
    assert stuck["metadata"]["uid"] in uids(cluster, selected)  # nothing evicted

    daemon = SyncdProcess(settings, webhook.directory / "repair", kubeconfig, {}).start()
    try:
        daemon.wait_ready()
        took = repaired_and_running(cluster, selected, stuck)
        print(f"repair_pods: the Deployment's Pod replaced and Running {took:.1f}s after syncd was ready")
        wait_until(
            lambda: daemon.metric("syncd_pods_repaired_total", secret="regcred", result="success") == 1, 10, "the count"
        )
        assert daemon.metric("syncd_pods_repaired_total", secret="regcred", result="failure") == 0
        [event] = repair_events(cluster, selected)
        assert event["involvedObject"]["kind"] == "ReplicaSet"
        assert event["involvedObject"]["name"] == stuck["metadata"]["ownerReferences"][0]["name"]
        assert stuck["metadata"]["name"] in event["message"]
        assert stack.registry.password not in event["message"]
        assert "evicted a Pod stuck without its pull Secret" in daemon.log()
        # The race while syncd runs (webhook off): the Pod, mostly admitted before syncd linked the
        # ServiceAccount, is found by the kubelet's pull-failure Event (the sweep is over).
        live = f"race-{tag}-live"
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=live)))
        apps.create_namespaced_deployment(live, deployment("app", image.reference, "Always"))  # the node has it
        first = admitted(cluster, [live])[live]
        lost = "regcred" not in pull_names(first)
        took = wait_until(lambda: any(p["status"].get("phase") == "Running" for p in pods(cluster, live)), 90, "live")
        print(f"repair_pods: a Pod that {'lost' if lost else 'won'} the race Running {took:.1f}s after admission")
        assert all("regcred" in pull_names(p) for p in pods(cluster, live) if p["status"].get("phase") == "Running")
        assert daemon.metric("syncd_pods_repaired_total", secret="regcred", result="success") == 1 + lost
    finally:
        daemon.stop_quietly()
    for namespace, uid in untouched.items():  # the bare Pod and the unselected one: still there
        assert uid in uids(cluster, namespace), namespace
    as_syncd = client.CoreV1Api(config_loader.new_client_from_config(config_file=str(kubeconfig)))
    with pytest.raises(ApiException) as refused:  # evictions only: the RBAC grants no delete
        as_syncd.delete_namespaced_pod("app", selected)
    assert refused.value.status == 403
    assert repair_events(cluster, unselected) == []

    # syncd down again: a new namespace's Pod is stuck; `once` evicts it.
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=later)))
    default_account(cluster, later)
    # `Always`: the node holds the image now (the repaired Pods pulled it), and IfNotPresent would not pull.
    apps.create_namespaced_deployment(later, deployment("app", image.reference, "Always"))
    stuck_later = stuck_pod(cluster, later)
    done = _syncd_cli(config, "once", "--kubeconfig", str(kubeconfig))
    print(f"once:\n{done}")
    assert f"{later}/{stuck_later['metadata']['name']}" in done
    assert "evicted" in done
    repaired_and_running(cluster, later, stuck_later)
    delete_namespaces(cluster, [selected, unselected, later, f"race-{tag}-live"])
