"""`pull_failures: true`: the daemon counts the kubelet's pull-failure Events for its own Secrets.

The hollow node's real pulls are counted in test_hollow_node.py (a refused login, a missing
Secret; a missing tag and a host that does not answer, not counted). Here the kubelet's own code
writes the Events (harness/kubelet_events.py: its image manager over a runtime that fails, its
event recorder) with what that node cannot produce: another runtime's error text (here
containers/image's, CRI-O's library, as skopeo prints the harness registry's refusal: the hollow
node's image service is ours, not containerd or CRI-O), one Event repeated 3 times within a second
(`count`: the node's back-off, 10 s then 20 s, takes half a minute to pull a third time), and a
Pod's second container whose image no key of syncd's serves (another registry, which the node
would have to reach).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.accounts import service_account_token, token_kubeconfig
from harness.kubectl import kubectl
from harness.kubelet_events import FailedPull, MissingSecrets, write_events
from harness.oci import Skopeo
from harness.syncd_process import Start, SyncdProcess, vault_config
from harness.wait import wait_until
from syncd.config import Config, parse_config
from syncd.manifests import rbac
from tests.integration.kustomize.manifests import apply_for_real

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
FAILURES = "syncd_image_pull_failures_total"
UNREACHABLE = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": failed to resolve reference '
    '"{image}": failed to do request: Head "https://{host}/v2/team/app/manifests/v1": dial tcp: connect: '
    "connection refused"
)


def refused_login(stack: Stack, tmp_path: Path, image: str) -> str:
    """The image client's error for a wrong password, as the container runtime would pass it on."""
    done = Skopeo(tmp_path / "skopeo").run(
        "inspect", "--tls-verify=false", "--creds", f"{stack.registry.username}:wrong", f"docker://{image}"
    )
    assert done.returncode != 0, done.stdout
    found = re.search(r'msg="(.*)"', done.stderr)
    assert found, done.stderr
    return "rpc error: code = Unknown desc = " + found.group(1).replace('\\"', '"')


def pod(core_v1: client.CoreV1Api, namespace: str, image: str) -> None:
    containers = [client.V1Container(name="app", image=image), client.V1Container(name="other", image="quay.io/o/x:1")]
    spec = client.V1PodSpec(containers=containers, image_pull_secrets=[client.V1LocalObjectReference(name="regcred")])
    core_v1.create_namespaced_pod(namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="web"), spec=spec))


def cluster_rbac(config: Config, namespace: str) -> list[dict[str, Any]]:
    """`syncd rbac`'s ClusterRole and its binding (the Lease Role is for leader election, off here)."""
    docs = rbac.manifests(config, namespace=namespace, service_account="syncd")
    return [doc for doc in docs if doc["kind"].startswith("Cluster")]


def counted(daemon: SyncdProcess, registry: str, reason: str) -> float:
    return daemon.metric(FAILURES, secret="regcred", registry=registry, reason=reason)


def test_the_leader_counts_refused_logins_and_missing_pull_secrets_of_its_secrets_only(
    stack: Stack,
    vault_client: hvac.Client,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    start_syncd: Start,
) -> None:
    host = stack.registry.host
    image = f"{host}/team/app:v1"
    path = f"pulls/{uuid.uuid4().hex[:8]}"
    vault_client.secrets.kv.v2.create_or_update_secret(
        path, secret={"username": stack.registry.username, "password": stack.registry.password}
    )
    selected, other = make_namespaces(f"{prefix}-pulls", f"{prefix}-elsewhere")
    for namespace in (selected, other):
        pod(core_v1, namespace, image)
    config: dict[str, Any] = {
        "pull_failures": True,
        "vault": vault_config(stack, tmp_path),
        "credentials": [{"name": "harness", "registry": f"http://{host}/v2/", "vault": {"kv": 2, "path": path}}],
        "secrets": [{"name": "regcred", "credentials": ["harness"], "namespaces": {"names": [selected]}}],
        "schedule": {"interval": "1h"},
    }
    daemon = start_syncd(config)
    daemon.wait_ready()
    # Every series exists at 0 before the first failure, so that increase() sees it.
    series = f'{FAILURES}{{reason="auth_failed",registry="{host}",secret="regcred"}} 0.0'
    assert series in daemon.metrics()
    refused = refused_login(stack, tmp_path, image)
    kubeconfig = stack.kube.kubeconfig

    # Not ours: a namespace the spec does not select, an image no key of ours serves, a pull
    # that failed for another reason, a missing Secret of another name.
    write_events(kubeconfig, other, "web", [FailedPull("app", refused), MissingSecrets(["regcred"])])
    unreachable = UNREACHABLE.format(image=image, host=host)
    write_events(
        kubeconfig,
        selected,
        "web",
        [FailedPull("other", refused), FailedPull("app", unreachable), MissingSecrets(["by-hand"])],
    )
    # Ours, written after those: the same refused pull three times (one Event, count 3), and the
    # Secret missing twice.
    write_events(
        kubeconfig, selected, "web", [FailedPull("app", refused, times=3), MissingSecrets(["by-hand", "regcred"], 2)]
    )
    wait_until(lambda: counted(daemon, host, "auth_failed") >= 3, 30, "3 refused logins counted")
    wait_until(lambda: counted(daemon, "", "secret_unavailable") >= 2, 30, "2 missing Secrets counted")
    # Each watch delivers in order, so the Events written first have been seen (and ignored).
    assert counted(daemon, host, "auth_failed") == 3
    assert counted(daemon, "", "secret_unavailable") == 2
    samples = [line for line in daemon.metrics().splitlines() if line.startswith(FAILURES)]
    assert all('secret="regcred"' in line for line in samples), samples
    assert all(selected not in line and "web" not in line for line in samples), samples  # no namespace, no Pod

    log = daemon.log()
    assert "image pulls failed" in log
    for text in (log, daemon.metrics()):
        assert stack.registry.password not in text


def test_without_pull_failures_there_is_no_pull_failure_series(
    stack: Stack, tmp_path: Path, start_syncd: Start, vault_path: str, make_namespaces: Callable[..., list[str]]
) -> None:
    (namespace,) = make_namespaces("pulls-off")
    config: dict[str, Any] = {
        "vault": vault_config(stack, tmp_path),
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": vault_path}}],
        "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"names": [namespace]}}],
    }
    daemon = start_syncd(config)
    daemon.wait_ready()
    samples = [line for line in daemon.metrics().splitlines() if not line.startswith("#")]
    assert not [line for line in samples if line.startswith(FAILURES)]
    assert any(line.startswith("syncd_sync_runs_total") for line in samples)


def test_as_a_service_account_the_events_watch_needs_exactly_what_syncd_rbac_adds(
    stack: Stack,
    vault_client: hvac.Client,
    core_v1: client.CoreV1Api,
    prefix: str,
    instance: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
) -> None:
    """RBAC generated for the config without the key refuses the watch (and says so in the log);
    `syncd rbac` for the config with it grants it, and the count follows, with no restart."""
    host = stack.registry.host
    path = f"pulls/{uuid.uuid4().hex[:8]}"
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={"username": "robot", "password": "p-1"})
    home, selected = make_namespaces(f"{prefix}-home", f"{prefix}-rbac")
    pod(core_v1, selected, f"{host}/team/app:v1")
    core_v1.create_namespaced_service_account(home, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="syncd")))
    settings: dict[str, Any] = {
        "instance": instance,
        "pull_failures": True,
        "vault": vault_config(stack, tmp_path),
        "credentials": [{"name": "harness", "registry": host, "vault": {"kv": 2, "path": path}}],
        "secrets": [{"name": "regcred", "credentials": ["harness"], "namespaces": {"names": [selected]}}],
        "schedule": {"interval": "1h"},
    }
    on = parse_config(settings)
    off = on.model_copy(update={"pull_failures": False})
    apply_for_real(stack, cluster_rbac(off, home))
    token = service_account_token(core_v1, home, "syncd", audiences=[])
    daemon = SyncdProcess(
        settings, tmp_path / "daemon", token_kubeconfig(stack.kube, tmp_path / "kubeconfig", token), {}
    )
    try:
        daemon.start()
        daemon.wait_ready()
        wait_until(lambda: "watch of events/Failed failed" in daemon.log(), 30, "the refused events watch to be logged")
        assert "403" in daemon.log()
        apply_for_real(stack, cluster_rbac(on, home))
        refused = FailedPull("app", refused_login(stack, tmp_path, f"{host}/team/app:v1"))

        def counted_after_writing() -> bool:
            """The watch retries with a back-off of at most 10 s: write until one is counted."""
            write_events(stack.kube.kubeconfig, selected, "web", [refused])
            return counted(daemon, host, "auth_failed") > 0

        wait_until(counted_after_writing, 60, "a refused login counted as the ServiceAccount", interval=3)
    finally:
        daemon.stop_quietly()
        name = rbac.role_name("syncd", instance)
        for kind in ("clusterrolebinding", "clusterrole"):
            kubectl("delete", "--ignore-not-found", kind, name, kubeconfig=stack.kube.kubeconfig)
