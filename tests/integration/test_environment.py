"""Smoke tests: each server of the harness (harness/) is the real thing and behaves as syncd expects."""

from __future__ import annotations

import base64
import json
import uuid

import hvac
import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.accounts import service_account_token
from harness.kube_objects import default_service_account, meta, secret_data
from harness.wait import wait_until

pytestmark = pytest.mark.integration


def _dockerconfig_secret(name: str, payload: bytes) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(payload).decode()},
    )


def test_dockerconfigjson_secret_round_trips(core_v1: client.CoreV1Api, namespace: str) -> None:
    payload = json.dumps({"auths": {"r.example": {"username": "u", "password": "p", "auth": "dTpw"}}}).encode()
    core_v1.create_namespaced_secret(namespace, _dockerconfig_secret("regcred", payload))
    stored = core_v1.read_namespaced_secret("regcred", namespace)
    assert stored.type == "kubernetes.io/dockerconfigjson"
    assert base64.b64decode(secret_data(stored)[".dockerconfigjson"]) == payload


def test_apiserver_rejects_dockerconfigjson_that_is_not_json(core_v1: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as rejected:
        core_v1.create_namespaced_secret(namespace, _dockerconfig_secret("broken", b"{not json"))
    assert rejected.value.status == 422
    assert ".dockerconfigjson" in (rejected.value.body or "")
    with pytest.raises(ApiException) as missing:
        core_v1.read_namespaced_secret("broken", namespace)
    assert missing.value.status == 404


def test_kv2_write_then_read(vault_client: hvac.Client) -> None:
    path = f"smoke/{uuid.uuid4().hex}"
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={"username": "u", "password": "p1"})
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={"username": "u", "password": "p2"})
    latest = vault_client.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"username": "u", "password": "p2"}
    assert latest["data"]["metadata"]["version"] == 2


def test_approle_login(stack: Stack, vault_client: hvac.Client) -> None:
    mount = f"approle-{uuid.uuid4().hex[:8]}"
    vault_client.sys.enable_auth_method("approle", path=mount)
    vault_client.auth.approle.create_or_update_approle("syncd", token_policies=["default"], mount_point=mount)
    role_id = vault_client.auth.approle.read_role_id("syncd", mount_point=mount)["data"]["role_id"]
    secret_id = vault_client.auth.approle.generate_secret_id("syncd", mount_point=mount)["data"]["secret_id"]
    app = hvac.Client(url=stack.vault.address)
    app.auth.approle.login(role_id, secret_id, mount_point=mount)
    assert app.is_authenticated()
    assert app.token != stack.vault.token


def test_kubernetes_auth_login_with_tokenrequest_token(
    stack: Stack,
    kube_api: client.ApiClient,
    core_v1: client.CoreV1Api,
    vault_client: hvac.Client,
    namespace: str,
) -> None:
    for name in ("vault-reviewer", "syncd"):
        core_v1.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )
    client.RbacAuthorizationV1Api(kube_api).create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"{namespace}-vault-reviewer"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="vault-reviewer", namespace=namespace)],
        )
    )
    mount = f"kubernetes-{uuid.uuid4().hex[:8]}"
    vault_client.sys.enable_auth_method("kubernetes", path=mount)
    vault_client.auth.kubernetes.configure(
        kubernetes_host=stack.kube.url,
        kubernetes_ca_cert=stack.kube.pki.ca_cert.read_text(),  # type: ignore[union-attr]
        token_reviewer_jwt=service_account_token(
            core_v1, namespace, "vault-reviewer", audiences=[], expiration_seconds=600
        ),
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    vault_client.auth.kubernetes.create_role(
        "syncd",
        bound_service_account_names=["syncd"],
        bound_service_account_namespaces=[namespace],
        policies=["default"],
        mount_point=mount,
    )
    app = hvac.Client(url=stack.vault.address)
    login = app.auth.kubernetes.login(
        "syncd",
        service_account_token(core_v1, namespace, "syncd", audiences=[], expiration_seconds=600),
        mount_point=mount,
    )
    assert login["auth"]["metadata"]["service_account_namespace"] == namespace
    assert app.is_authenticated()
    # OpenBao asked our apiserver (TokenReview): a token of another ServiceAccount is refused.
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=stack.vault.address).auth.kubernetes.login(
            "syncd",
            service_account_token(core_v1, namespace, "vault-reviewer", audiences=[], expiration_seconds=600),
            mount_point=mount,
        )


def test_docker_credential_pass_returns_what_was_stored(stack: Stack) -> None:
    server = f"registry-{uuid.uuid4().hex[:6]}.example:5000"
    stack.helper.store(server, "robot$ci", "helper-secret-9b1d")
    assert stack.helper.get(server) == {"ServerURL": server, "Username": "robot$ci", "Secret": "helper-secret-9b1d"}


def test_registry_accepts_right_credential_and_rejects_wrong_one(stack: Stack) -> None:
    url = f"http://{stack.registry.host}/v2/"
    assert requests.get(url, auth=(stack.registry.username, stack.registry.password), timeout=5).status_code == 200
    assert requests.get(url, auth=(stack.registry.username, "wrong"), timeout=5).status_code == 401
    assert requests.get(url, timeout=5).status_code == 401


def test_the_controllers_give_a_new_namespace_its_default_service_account_and_delete_it_for_real(
    core_v1: client.CoreV1Api,
) -> None:
    """kube-controller-manager runs: a namespace gets `default` (and `kube-root-ca.crt`) by itself,
    and a deleted one is emptied and gone within a minute, as in a real cluster."""
    name = f"env-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    assert default_service_account(core_v1, name).metadata is not None
    core_v1.create_namespaced_secret(name, _dockerconfig_secret("regcred", b'{"auths":{}}'))
    core_v1.delete_namespace(name)
    wait_until(
        lambda: name not in {meta(n).name for n in core_v1.list_namespace().items},
        60,
        f"namespace {name} to be gone within a minute of its deletion",
        interval=0.2,
    )


def test_a_pod_is_admitted_with_its_service_accounts_pull_secrets(core_v1: client.CoreV1Api, namespace: str) -> None:
    """The ServiceAccount admission plugin is on: a Pod gets its account's imagePullSecrets, once."""
    default_service_account(core_v1, namespace, ["regcred"])
    container = client.V1Container(name="app", image="registry.example/app:1")
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="app"), spec=client.V1PodSpec(containers=[container]))
    created = core_v1.create_namespaced_pod(namespace, pod)
    assert created.spec is not None
    assert [ref.name for ref in created.spec.image_pull_secrets or []] == ["regcred"]
