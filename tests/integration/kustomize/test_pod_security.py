"""The Deployment's Pod template passes the `restricted` Pod Security Standard on the real apiserver,
and the same Pod loosened in any one way is refused there."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.kustomize.manifests import LABELS, VARIANTS, pod_spec, render

pytestmark = pytest.mark.integration


Mutation = Callable[[dict[str, Any]], None]


def _at(spec: dict[str, Any], path: list[str | int]) -> Any:
    node: Any = spec
    for key in path:
        node = node[key]
    return node


def _set(path: list[str | int], value: Any) -> Mutation:
    """Set the pod spec's value at `path`; None deletes it."""

    def mutate(spec: dict[str, Any]) -> None:
        parent = _at(spec, path[:-1])
        if value is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value

    return mutate


def _append(path: list[str | int], value: Any) -> Mutation:
    return lambda spec: _at(spec, path).append(value)


VIOLATIONS: dict[str, list[Mutation]] = {
    "privilege escalation": [_set(["containers", 0, "securityContext", "allowPrivilegeEscalation"], True)],
    "capabilities kept": [_set(["containers", 0, "securityContext", "capabilities"], None)],
    "root": [_set(["securityContext", "runAsUser"], 0), _set(["containers", 0, "securityContext", "runAsUser"], 0)],
    "no seccomp": [
        _set(["securityContext", "seccompProfile"], None),
        _set(["containers", 0, "securityContext", "seccompProfile"], None),
    ],
    "hostPath": [_append(["volumes"], {"name": "host", "hostPath": {"path": "/tmp"}})],
}


@pytest.fixture(scope="module")
def restricted_namespace(kube_api: client.ApiClient) -> str:
    """A namespace enforcing the `restricted` Pod Security Standard (PodSecurity admission is on by default)."""
    core = client.CoreV1Api(kube_api)
    name = f"psa-{uuid.uuid4().hex[:8]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    core.create_namespaced_service_account(name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="syncd")))
    return name


def _dry_run_pod(kube_api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "syncd-psa", "labels": LABELS}, "spec": spec}
    # The rendered manifest itself, not the client model of it: the client sends a dict unchanged.
    client.CoreV1Api(kube_api).create_namespaced_pod(namespace, pod, dry_run="All", _preload_content=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", VARIANTS)
def test_pod_template_passes_the_restricted_pod_security_standard(
    kube_api: client.ApiClient, restricted_namespace: str, variant: str
) -> None:
    spec = pod_spec(render(variant))
    _dry_run_pod(kube_api, restricted_namespace, spec)  # raises ApiException (403) if refused

    # The check can fail: the same pod loosened in any one way is refused there.
    for violation, mutations in VIOLATIONS.items():
        loosened = copy.deepcopy(spec)
        for mutate in mutations:
            mutate(loosened)
        with pytest.raises(ApiException) as refused:
            _dry_run_pod(kube_api, restricted_namespace, loosened)
        assert refused.value.status == 403, violation
        assert "violates PodSecurity" in str(refused.value.body), violation
