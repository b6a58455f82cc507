"""Typed reads of the kubernetes client's models, whose every field is Optional.

What the apiserver returns always has metadata (and a Secret syncd wrote always has data): each
helper asserts what the test relies on, so that a missing part fails by name instead of as a
TypeError on None, and mypy --strict sees plain types.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Protocol

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness.wait import wait_until
from syncd.manifests import crd


class HasMetadata(Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


def meta(obj: HasMetadata) -> client.V1ObjectMeta:
    assert obj.metadata is not None, f"{type(obj).__name__} without metadata"
    return obj.metadata


def name_of(obj: HasMetadata) -> str:
    name = meta(obj).name
    assert name is not None, f"{type(obj).__name__} without a name"
    return name


def namespace_of(obj: HasMetadata) -> str:
    namespace = meta(obj).namespace
    assert namespace is not None, f"{type(obj).__name__} {meta(obj).name} without a namespace"
    return namespace


def resource_version(obj: HasMetadata) -> str:
    version = meta(obj).resource_version
    assert version is not None, f"{type(obj).__name__} {meta(obj).name} without a resourceVersion"
    return version


def labels_of(obj: HasMetadata) -> dict[str, str]:
    """The object's labels ({} when it has none)."""
    return dict(meta(obj).labels or {})


def annotations_of(obj: HasMetadata) -> dict[str, str]:
    """The object's annotations ({} when it has none)."""
    return dict(meta(obj).annotations or {})


def secret_data(secret: client.V1Secret) -> dict[str, str]:
    """A Secret's data as the apiserver returns it: base64 text by key."""
    assert secret.data is not None, f"Secret {meta(secret).name} without data"
    return {key: value.decode() if isinstance(value, bytes) else value for key, value in secret.data.items()}


def pull_secret_names(account: client.V1ServiceAccount) -> list[str]:
    """The names in a ServiceAccount's imagePullSecrets, in order."""
    names = [ref.name for ref in account.image_pull_secrets or []]
    assert None not in names, f"ServiceAccount {meta(account).name} has an imagePullSecrets entry without a name"
    return [name for name in names if name is not None]


def lease_spec(lease: client.V1Lease) -> client.V1LeaseSpec:
    assert lease.spec is not None, f"Lease {meta(lease).name} without a spec"
    return lease.spec


def issued_token(answer: client.AuthenticationV1TokenRequest) -> str:
    """The token of a TokenRequest the apiserver answered."""
    assert answer.status is not None, "TokenRequest answered without a status"
    assert answer.status.token, "TokenRequest answered without a token"
    return answer.status.token


def default_service_account(
    core: client.CoreV1Api, namespace: str, pull_secrets: Sequence[str] = (), timeout: float = 120
) -> client.V1ServiceAccount:
    """The `default` ServiceAccount kube-controller-manager makes in every new namespace, waited
    for; with `pull_secrets` (names) as its imagePullSecrets when given, as a user would set them."""
    accounts: list[client.V1ServiceAccount] = []

    def made() -> bool:
        try:
            accounts.append(core.read_namespaced_service_account("default", namespace))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return False
        return True

    wait_until(made, timeout, f"the controller's default ServiceAccount in {namespace}", interval=0.05)
    account = accounts[-1]
    if not pull_secrets:
        return account
    body = {"imagePullSecrets": [{"name": name} for name in pull_secrets]}
    return core.patch_namespaced_service_account("default", namespace, body)


def install_pullsync_crd(kubectl: str, kubeconfig: str, timeout: float = 60.0) -> None:
    """The PullSecretSync CRD, applied as a platform engineer applies the Kustomize base (so that a
    later `kubectl apply` of the manifests finds it applied, not created); waits until served."""
    document = yaml.safe_dump(crd.definition())
    applied = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-"],
        input=document,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    name = f"crd/{crd.PLURAL}.{crd.GROUP}"
    waited = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Established", name, f"--timeout={timeout:.0f}s"],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
        check=False,
    )
    assert waited.returncode == 0, waited.stderr
