"""Logins other than the admin certificate: ServiceAccount tokens and kubeconfigs that use them.

Tests run syncd as a ServiceAccount (with exactly the RBAC it ships, or as cluster-admin outside
`system:masters`, which the apiserver exempts from max-in-flight limits and API Priority and
Fairness); the soak gives each replica one, so that the audit log says which replica wrote.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from kubernetes import client

from harness.kube import Kube


def service_account_token(
    core: client.CoreV1Api, namespace: str, name: str, audiences: list[str], expiration_seconds: int = 3600
) -> str:
    """A TokenRequest token of ServiceAccount `namespace/name` for `audiences` ([]: the apiserver's)."""
    spec = client.V1TokenRequestSpec(audiences=audiences, expiration_seconds=expiration_seconds)
    request = client.AuthenticationV1TokenRequest(spec=spec)
    answer = core.create_namespaced_service_account_token(name, namespace, request)
    if answer.status is None or not answer.status.token:
        raise AssertionError("TokenRequest answered without a token")
    return str(answer.status.token)


def token_kubeconfig(kube: Kube, path: Path, token: str, *, user: str = "syncd", server: str | None = None) -> Path:
    """A kubeconfig at `path` logging in to `kube` with `token`.

    `server` replaces the apiserver's URL (a proxy in front of it); plain HTTP gets no CA.
    """
    assert kube.pki is not None
    cluster: dict[str, str] = {"server": server or kube.url}
    if cluster["server"].startswith("https"):
        cluster["certificate-authority-data"] = base64.b64encode(kube.pki.ca_cert.read_bytes()).decode()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "harness", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "harness", "context": {"cluster": "harness", "user": user}}],
        "current-context": "harness",
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def cluster_admin_kubeconfig(
    kube: Kube, api: client.ApiClient, namespace: str, name: str, path: Path, *, server: str | None = None
) -> Path:
    """ServiceAccount `namespace/name` (the namespace must exist) bound to cluster-admin by a
    ClusterRoleBinding `namespace-name`, and a kubeconfig at `path` with a day-long token of it."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=f"{namespace}-{name}"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)],
    )
    client.RbacAuthorizationV1Api(api).create_cluster_role_binding(binding)
    token = service_account_token(core, namespace, name, audiences=[], expiration_seconds=86400)
    return token_kubeconfig(kube, path, token, user=name, server=server)
