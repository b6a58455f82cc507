"""Managed Secrets: read (only by a spec's name), create, update, delete, with ownership checks.

Every read names the Secret: a LIST carries the field selector `metadata.name=<spec>` (and the
managed-by label selector), a GET its name, so RBAC can grant Secrets by `resourceNames` and
syncd never sees another Secret. Who may be updated or deleted is decided in syncd.engine.plan.
"""

from __future__ import annotations

import base64
import datetime as dt
from sys import intern
from typing import Any

from kubernetes import client

from syncd.core.values import (
    CREDENTIALS_ANNOTATION,
    DATA_KEY,
    HASH_ANNOTATION,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MANAGED_SELECTOR,
    PRUNE_ANNOTATION,
    SECRET_TYPE,
    SPEC_LABEL,
    SYNCED_AT_ANNOTATION,
    DesiredSecret,
    ExistingSecret,
)
from syncd.kube.client import MERGE_PATCH, read_or_none, send, send_json
from syncd.kube.lists import list_items
from syncd.registry.dockerconfig import content_hash, registries_of


def _shared(value: object) -> str | None:
    """Strings that repeat across thousands of Secrets (names, hashes) held once: the watch store."""
    return intern(value) if isinstance(value, str) else None


def existing_from(item: dict[str, Any]) -> ExistingSecret:
    """What we need to know of a Secret; its data is hashed and its registry names read, no more."""
    metadata = item.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    encoded = (item.get("data") or {}).get(DATA_KEY)
    content = base64.b64decode(encoded) if isinstance(encoded, str) else None
    return ExistingSecret(
        namespace=intern(str(metadata.get("namespace"))),
        name=intern(str(metadata.get("name"))),
        resource_version=str(metadata.get("resourceVersion")),
        managed=labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE,
        spec=_shared(labels.get(SPEC_LABEL)),
        annotated_hash=_shared(annotations.get(HASH_ANNOTATION)),
        data_hash=_shared(content_hash(content)) if content is not None else None,
        secret_type=_shared(item.get("type")),
        synced_at=_shared(annotations.get(SYNCED_AT_ANNOTATION)),
        credentials=_shared(annotations.get(CREDENTIALS_ANNOTATION)),
        registries=tuple(intern(r) for r in registries_of(content)) if content is not None else (),
        prune=annotations.get(PRUNE_ANNOTATION) == "true",
        instance=_shared(labels.get(INSTANCE_LABEL)),
    )


def name_selector(name: str) -> str:
    """The field selector RBAC accepts for a LIST or WATCH limited by `resourceNames`."""
    return f"metadata.name={name}"


def list_managed(core: client.CoreV1Api, spec: str) -> list[ExistingSecret]:
    """The syncd-labelled Secrets named `spec`, of any instance, in every namespace: one LIST."""
    items = list_items(
        core.list_secret_for_all_namespaces,
        what=f"listing Secrets named {spec!r} in all namespaces",
        field_selector=name_selector(spec),
        label_selector=f"{MANAGED_SELECTOR},{SPEC_LABEL}={spec}",
    )
    return [existing_from(item) for item in items]


def read(core: client.CoreV1Api, namespace: str, name: str) -> ExistingSecret | None:
    """One Secret by name, managed or not; None when absent."""
    item = read_or_none(
        lambda: core.read_namespaced_secret(name, namespace, _preload_content=False),
        what=f"reading Secret {namespace}/{name}",
    )
    return existing_from(item) if item is not None else None


def _ours(desired: DesiredSecret, now: dt.datetime) -> dict[str, Any]:
    """Our labels and annotations; user-set ones of the spec first, so ours always win."""
    return {
        "labels": {
            **desired.labels,
            MANAGED_BY_LABEL: MANAGED_BY_VALUE,
            SPEC_LABEL: desired.name,
            INSTANCE_LABEL: desired.instance,
        },
        "annotations": {
            **desired.annotations,
            HASH_ANNOTATION: desired.content_hash,
            CREDENTIALS_ANNOTATION: ",".join(desired.credentials),
            SYNCED_AT_ANNOTATION: now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            PRUNE_ANNOTATION: "true" if desired.prune else "false",
        },
    }


def _data(desired: DesiredSecret) -> dict[str, str]:
    return {DATA_KEY: base64.b64encode(desired.content).decode("ascii")}


def create(core: client.CoreV1Api, namespace: str, desired: DesiredSecret, now: dt.datetime) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": desired.name, "namespace": namespace, **_ours(desired, now)},
        "type": SECRET_TYPE,
        "data": _data(desired),
    }
    send_json(
        core.api_client,
        "POST",
        "/api/v1/namespaces/{namespace}/secrets",
        secret,
        namespace=namespace,
        what=f"creating Secret {namespace}/{desired.name}",
    )


def update(
    core: client.CoreV1Api, namespace: str, desired: DesiredSecret, now: dt.datetime, resource_version: str
) -> None:
    """A merge patch carrying the resourceVersion we planned from: a concurrent writer makes it a 409.

    A merge patch (not a PUT) keeps what others put on the object: their labels, annotations,
    owner references and extra data keys.
    """
    patch = {"metadata": {"resourceVersion": resource_version, **_ours(desired, now)}, "data": _data(desired)}
    send_json(
        core.api_client,
        "PATCH",
        "/api/v1/namespaces/{namespace}/secrets/{name}",
        patch,
        content_type=MERGE_PATCH,
        namespace=namespace,
        name=desired.name,
        what=f"updating Secret {namespace}/{desired.name}",
    )


def delete(core: client.CoreV1Api, namespace: str, name: str, resource_version: str) -> None:
    """Delete only the version we saw as ours (precondition), so a takeover in between is never deleted."""
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=resource_version))
    send(
        lambda: core.delete_namespaced_secret(name, namespace, body=options, _preload_content=False),
        what=f"deleting Secret {namespace}/{name}",
    )
