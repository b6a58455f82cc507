"""The hot writes (Secret create and update, ServiceAccount patch) against the real apiserver.

They are sent by syncd.kube.client.send_json, not by the generated CoreV1Api methods (which
validate every body into a pydantic model and back: issue 14). These tests check what the
apiserver stores from them and how they fail: a stale resourceVersion is a 409 the callers
act on, a refused write says status and reason only. They run as syncd's own client
(load_api_client, fenced); the same path as a ServiceAccount with a bearer token and the
generated RBAC is covered by kustomize/test_syncd_as_service_account, and under 429s by test_faults_ratelimit.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable

import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import (
    annotations_of,
    default_service_account,
    labels_of,
    pull_secret_names,
    resource_version,
    secret_data,
)
from syncd.core.errors import KubeError
from syncd.core.values import DesiredSecret, RegistryCredential
from syncd.kube import secrets, serviceaccounts
from syncd.kube.client import WriteFence, load_api_client
from syncd.registry.dockerconfig import render

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
INSTANCE = "writes"


def desired(password: str) -> DesiredSecret:
    rendered = render([RegistryCredential("ghcr.io", "robot", password)])
    return DesiredSecret(
        name="regcred",
        content=rendered.content,
        content_hash=rendered.content_hash,
        credentials=("robot",),
        labels={"team": "a"},
        annotations={"note": "kept"},
        instance=INSTANCE,
    )


@pytest.fixture
def writer(stack: Stack) -> client.CoreV1Api:
    """syncd's own client, as `syncd once` builds it."""
    api = load_api_client(kubeconfig=str(stack.kube.kubeconfig), context=None, pool_size=4, fence=WriteFence())
    return client.CoreV1Api(api)


@pytest.fixture
def one_namespace(make_namespaces: Callable[..., list[str]]) -> str:
    return make_namespaces(f"w{uuid.uuid4().hex[:8]}")[0]


def test_a_created_secret_is_stored_whole(
    core_v1: client.CoreV1Api, writer: client.CoreV1Api, one_namespace: str
) -> None:
    want = desired("first-1")
    secrets.create(writer, one_namespace, want, NOW)
    stored = core_v1.read_namespaced_secret("regcred", one_namespace)
    assert stored.type == "kubernetes.io/dockerconfigjson"
    assert base64.b64decode(secret_data(stored)[".dockerconfigjson"]) == want.content
    assert labels_of(stored) == {
        "team": "a",
        "app.kubernetes.io/managed-by": "syncd",
        "syncd.io/secret": "regcred",
        "syncd.io/instance": INSTANCE,
    }
    assert annotations_of(stored) == {
        "note": "kept",
        "syncd.io/content-hash": want.content_hash,
        "syncd.io/credentials": "robot",
        "syncd.io/synced-at": "2026-01-02T03:04:05Z",
        "syncd.io/prune": "true",
    }
    with pytest.raises(KubeError) as again:  # already there: the 409 KubeCluster.create resolves
        secrets.create(writer, one_namespace, want, NOW)
    assert again.value.status == 409


def test_an_update_merges_and_a_stale_version_is_a_409(
    core_v1: client.CoreV1Api, writer: client.CoreV1Api, one_namespace: str
) -> None:
    secrets.create(writer, one_namespace, desired("first-1"), NOW)
    planned_from = resource_version(core_v1.read_namespaced_secret("regcred", one_namespace))
    theirs = {"metadata": {"labels": {"owner": "someone"}}, "data": {"extra": base64.b64encode(b"x").decode()}}
    core_v1.patch_namespaced_secret("regcred", one_namespace, theirs)  # someone writes in between
    rotated = desired("second-2")
    with pytest.raises(KubeError) as stale:
        secrets.update(writer, one_namespace, rotated, NOW, planned_from)
    assert stale.value.status == 409
    secrets.update(
        writer, one_namespace, rotated, NOW, resource_version(core_v1.read_namespaced_secret("regcred", one_namespace))
    )
    stored = core_v1.read_namespaced_secret("regcred", one_namespace)
    assert base64.b64decode(secret_data(stored)[".dockerconfigjson"]) == rotated.content
    assert annotations_of(stored)["syncd.io/content-hash"] == rotated.content_hash
    assert labels_of(stored)["owner"] == "someone"  # a merge: what others put there stays
    assert secret_data(stored)["extra"] == base64.b64encode(b"x").decode()


def test_a_service_account_patch_appends_and_a_stale_version_is_a_409(
    core_v1: client.CoreV1Api, writer: client.CoreV1Api, one_namespace: str
) -> None:
    default_service_account(core_v1, one_namespace, ["other"])
    [listed] = serviceaccounts.list_named(writer, ["default"], one_namespace)
    assert serviceaccounts.add_pull_secret(writer, one_namespace, "default", "regcred", INSTANCE, known=listed)
    stored = core_v1.read_namespaced_service_account("default", one_namespace)
    assert pull_secret_names(stored) == ["other", "regcred"]
    assert annotations_of(stored)["syncd.io/added-pull-secrets"] == f"{INSTANCE}/regcred"
    # `listed` is stale now: a patch from it is refused (409) instead of dropping the entry
    # added since, and add_pull_secret's fallback reads afresh and finds nothing to do.
    with pytest.raises(KubeError) as stale:
        serviceaccounts._edit_known(writer, listed, "regcred", INSTANCE, add=True)
    assert stale.value.status == 409
    assert not serviceaccounts.add_pull_secret(writer, one_namespace, "default", "regcred", INSTANCE, known=listed)
    assert pull_secret_names(core_v1.read_namespaced_service_account("default", one_namespace)) == ["other", "regcred"]
    [fresh] = serviceaccounts.list_named(writer, ["default"], one_namespace)
    assert serviceaccounts.remove_pull_secret(writer, one_namespace, "default", "regcred", INSTANCE, known=fresh)
    stored = core_v1.read_namespaced_service_account("default", one_namespace)
    assert pull_secret_names(stored) == ["other"]
    assert "syncd.io/added-pull-secrets" not in annotations_of(stored)


def test_a_refused_write_says_status_and_reason_only(writer: client.CoreV1Api) -> None:
    nowhere = f"absent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(KubeError) as refused:
        secrets.create(writer, nowhere, desired("never-shown-3"), NOW)
    assert refused.value.status == 404
    assert str(refused.value) == f"creating Secret {nowhere}/regcred: HTTP 404 Not Found"
    assert refused.value.__cause__ is None  # `from None`: no chained library exception carrying the body
    assert refused.value.__suppress_context__
