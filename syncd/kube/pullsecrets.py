"""What the kubelet reads for a Pod's pulls: a ServiceAccount's imagePullSecrets and those Secrets."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kubernetes import client

from syncd.core.values import INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SPEC_LABEL
from syncd.kube.client import read_or_none
from syncd.registry.kubelet import PullSecret


def pull_secret_names(core: client.CoreV1Api, namespace: str, service_account: str) -> list[str] | None:
    """The names in imagePullSecrets, in order; None when the ServiceAccount does not exist."""
    item = read_or_none(
        lambda: core.read_namespaced_service_account(service_account, namespace, _preload_content=False),
        what=f"reading ServiceAccount {namespace}/{service_account}",
    )
    if item is None:
        return None
    return [str(e.get("name")) for e in item.get("imagePullSecrets") or [] if isinstance(e, dict)]


def pull_secret(
    core: client.CoreV1Api, namespace: str, name: str, instance: str
) -> tuple[PullSecret, str | None] | None:
    """The Secret as the kubelet sees it, and the spec it was written for when it is this instance's."""
    item = read_or_none(
        lambda: core.read_namespaced_secret(name, namespace, _preload_content=False),
        what=f"reading Secret {namespace}/{name}",
    )
    if item is None:
        return None
    labels = (item.get("metadata") or {}).get("labels") or {}
    ours = labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(INSTANCE_LABEL) == instance
    data = {key: _decoded(value) for key, value in (item.get("data") or {}).items()}
    return PullSecret(name, item.get("type"), data), (labels.get(SPEC_LABEL) if ours else None)


def _decoded(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return b""  # the apiserver only stores valid base64; an empty value is what the kubelet skips
