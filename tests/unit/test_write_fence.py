"""The write fence: a replica that lost its lease sends no more writes, mid-run or on a 429 retry.

Found by the soak (soak/, issue 13): during a burst of 429s the leader's lease lapsed while one
of its ServiceAccount patches waited out a Retry-After, and the patch went out 0.24 s after the
lapse (the apiserver's audit log attributed it). The lease was checked once per run only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness.process import free_port
from syncd.core.errors import KubeError
from syncd.kube.client import WriteFence, call, load_api_client, send_json


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A cluster nobody listens at: a request that is sent fails as "cannot reach"."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


def core(kubeconfig: Path, fence: WriteFence) -> client.CoreV1Api:
    api = load_api_client(kubeconfig=str(kubeconfig), context=None, pool_size=1, fence=fence)
    api.configuration.retries = False
    return client.CoreV1Api(api)


def create(api: client.CoreV1Api) -> object:
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="regcred"))
    return api.create_namespaced_secret("team", secret, _request_timeout=1)


def test_a_closed_fence_refuses_writes_before_sending_and_lets_reads_through(kubeconfig: Path) -> None:
    fence = WriteFence()
    api = core(kubeconfig, fence)
    with pytest.raises(KubeError, match="cannot reach"):  # open: the write is sent (and finds nobody)
        call(lambda: create(api), what="creating Secret team/regcred")
    fence.allowed = lambda: False
    with pytest.raises(KubeError) as refused:
        call(lambda: create(api), what="creating Secret team/regcred")
    assert str(refused.value) == "creating Secret team/regcred: not sent: this replica no longer holds the leader lease"
    with pytest.raises(KubeError, match="cannot reach"):  # reads are never fenced
        call(lambda: api.read_namespaced_secret("regcred", "team", _request_timeout=1), what="reading")


def test_a_write_retried_after_a_429_asks_the_fence_again(kubeconfig: Path) -> None:
    fence = WriteFence()
    api = core(kubeconfig, fence)
    attempts: list[int] = []

    def throttled_then_sent() -> object:
        attempts.append(1)
        if len(attempts) == 1:
            raise ApiException(status=429, reason="Too Many Requests")
        return create(api)

    def lease_lapses_meanwhile(_seconds: float) -> None:
        fence.allowed = lambda: False

    with pytest.raises(KubeError, match="no longer holds the leader lease"):
        call(throttled_then_sent, what="creating Secret team/regcred", sleep=lease_lapses_meanwhile)
    assert len(attempts) == 2


def test_the_lean_write_path_asks_the_fence_too(kubeconfig: Path) -> None:
    """Secret creates and updates and ServiceAccount patches go out by send_json, not the generated methods."""
    fence = WriteFence()
    api = core(kubeconfig, fence).api_client
    body = {"metadata": {"name": "regcred"}}

    def create() -> None:
        send_json(api, "POST", "/api/v1/namespaces/{namespace}/secrets", body, namespace="team", what="creating Secret")

    with pytest.raises(KubeError, match="cannot reach"):
        create()
    fence.allowed = lambda: False
    with pytest.raises(KubeError, match="not sent: this replica no longer holds the leader lease"):
        create()
