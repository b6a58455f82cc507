"""The base's ServiceAccount applied for real (`identity`) and OpenBao's Kubernetes auth for it
(`vault_auth`): once per test module that uses them, under names of that module's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.accounts import service_account_token, token_kubeconfig
from harness.kubectl import kubectl
from tests.integration.kustomize.manifests import Identity, VaultAuth, apply_for_real, pod_spec, renamed, render


@pytest.fixture(scope="module")
def identity(stack: Stack, kube_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    suffix = f"-{uuid.uuid4().hex[:8]}"
    namespace = f"syncd{suffix}"
    docs = renamed(render("overlays/ha"), namespace, suffix)
    assert [d["kind"] for d in docs].count("ClusterRole") == 1
    apply_for_real(stack, docs)
    token = service_account_token(client.CoreV1Api(kube_api), namespace, "syncd", audiences=[])
    kubeconfig = token_kubeconfig(stack.kube, tmp_path_factory.mktemp("identity") / "kubeconfig", token)
    try:
        yield Identity(namespace, suffix, kubeconfig, token)
    finally:
        # Cluster-scoped, so they outlive the namespace; the last one is made by the `vault_auth` fixture.
        for kind, name in [
            ("clusterrolebinding", f"syncd{suffix}"),
            ("clusterrole", f"syncd{suffix}"),
            ("clusterrolebinding", f"vault-reviewer{suffix}"),
        ]:
            kubectl("delete", "--ignore-not-found", kind, name, kubeconfig=stack.kube.kubeconfig)


@pytest.fixture(scope="module")
def vault_auth(
    stack: Stack, kube_api: client.ApiClient, identity: Identity, tmp_path_factory: pytest.TempPathFactory
) -> VaultAuth:
    core = client.CoreV1Api(kube_api)
    root = hvac.Client(url=stack.vault.address, token=stack.vault.token)
    path = f"deploy/{identity.suffix[1:]}"
    root.secrets.kv.v2.create_or_update_secret(path, secret={"username": "robot", "password": "deploy-1"})
    # The reviewer: a ServiceAccount bound to system:auth-delegator, as README step 1 binds Vault's.
    reviewer = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="vault-reviewer"))
    core.create_namespaced_service_account(identity.namespace, reviewer)
    client.RbacAuthorizationV1Api(kube_api).create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"vault-reviewer{identity.suffix}"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="vault-reviewer", namespace=identity.namespace)],
        )
    )
    mount = f"kubernetes{identity.suffix}"
    root.sys.enable_auth_method("kubernetes", path=mount)
    assert stack.kube.pki is not None
    root.auth.kubernetes.configure(
        kubernetes_host=stack.kube.url,
        kubernetes_ca_cert=stack.kube.pki.ca_cert.read_text(),
        token_reviewer_jwt=service_account_token(core, identity.namespace, "vault-reviewer", audiences=[]),
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    policy = f"syncd{identity.suffix}"
    root.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{\n  capabilities = ["read"]\n}}\n')
    root.auth.kubernetes.create_role(
        "syncd",
        bound_service_account_names=["syncd"],
        bound_service_account_namespaces=[identity.namespace],
        policies=[policy],
        audience="vault",
        ttl="1h",
        mount_point=mount,
    )
    # What the kubelet projects into the pod as the base says: a token of ServiceAccount syncd for its audience.
    projected = {v["name"]: v for v in pod_spec(render("base"))["volumes"]}["vault-token"]["projected"]
    [audience] = [source["serviceAccountToken"]["audience"] for source in projected["sources"]]
    token_file = tmp_path_factory.mktemp("vault-token") / "token"
    token_file.write_text(service_account_token(core, identity.namespace, "syncd", audiences=[audience]))
    return VaultAuth(mount, path, token_file)
