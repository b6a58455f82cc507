"""imagePullSecrets on ServiceAccounts: append syncd's Secret, never replace what is there.

ServiceAccounts belong to others, so syncd records on each one the entries it added
(annotation `syncd.io/added-pull-secrets`, `instance/secret` pairs) and only ever removes an
entry it recorded; an entry someone else put there stays, even when it names syncd's Secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from sys import intern
from typing import Any

from kubernetes import client

from syncd.core.errors import KubeError
from syncd.core.values import ADDED_PULL_SECRETS_ANNOTATION, ServiceAccountRef, added_entry, parse_added
from syncd.kube.client import MERGE_PATCH, read_or_none, send_json
from syncd.kube.lists import list_items

MAX_CONFLICT_RETRIES = 3


def _added(item: dict[str, Any]) -> tuple[str, ...]:
    annotations = (item.get("metadata") or {}).get("annotations") or {}
    return parse_added(annotations.get(ADDED_PULL_SECRETS_ANNOTATION))


def ref_from(item: dict[str, Any]) -> ServiceAccountRef:
    """A ServiceAccount as a LIST item or a watch event carries it."""
    metadata = item.get("metadata") or {}
    entries = item.get("imagePullSecrets") or []
    names = tuple(intern(str(entry.get("name"))) for entry in entries if isinstance(entry, dict))
    return ServiceAccountRef(
        namespace=intern(str(metadata.get("namespace"))),
        name=intern(str(metadata.get("name"))),
        pull_secrets=names,
        added=tuple(intern(entry) for entry in _added(item)),
        resource_version=str(metadata.get("resourceVersion")),
    )


def list_named(
    core: client.CoreV1Api, names: Iterable[str] | None, namespace: str | None = None
) -> list[ServiceAccountRef]:
    """ServiceAccounts of the given names (None: all), cluster-wide or in one namespace.

    One LIST per name with the field selector `metadata.name=<name>`, which RBAC grants by
    `resourceNames`; a config with `"*"` needs (and lists) every ServiceAccount.
    """
    if names is None:
        return [ref_from(item) for item in _list(core, namespace)]
    return [ref_from(item) for name in names for item in _list(core, namespace, name)]


def _list(core: client.CoreV1Api, namespace: str | None, name: str | None = None) -> Iterable[dict[str, Any]]:
    selector: dict[str, Any] = {"field_selector": f"metadata.name={name}"} if name else {}
    named = f" named {name!r}" if name else ""
    if namespace is None:
        return list_items(
            core.list_service_account_for_all_namespaces, what=f"listing ServiceAccounts{named}", **selector
        )
    return list_items(
        lambda **kw: core.list_namespaced_service_account(namespace, **kw),
        what=f"listing ServiceAccounts{named} in {namespace}",
        **selector,
    )


def _read(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    return read_or_none(
        lambda: core.read_namespaced_service_account(name, namespace, _preload_content=False),
        what=f"reading ServiceAccount {namespace}/{name}",
    )


def _patch(core: client.CoreV1Api, item: dict[str, Any], pull_secrets: list[dict[str, Any]], added: list[str]) -> None:
    metadata = item["metadata"]
    # A JSON merge patch replaces the whole list; the resourceVersion makes it fail (409)
    # instead of dropping an entry someone added since we read it. null removes the annotation.
    record = ",".join(added) or None
    patch = {
        "metadata": {
            "resourceVersion": metadata["resourceVersion"],
            "annotations": {ADDED_PULL_SECRETS_ANNOTATION: record},
        },
        "imagePullSecrets": pull_secrets,
    }
    send_json(
        core.api_client,
        "PATCH",
        "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
        patch,
        content_type=MERGE_PATCH,
        namespace=metadata["namespace"],
        name=metadata["name"],
        what=f"patching ServiceAccount {metadata['namespace']}/{metadata['name']}",
    )


def _wanted(
    item: dict[str, Any], entry: str, secret: str, *, add: bool
) -> tuple[list[dict[str, Any]], list[str]] | None:
    """The new (imagePullSecrets, record) for one edit, or None when there is nothing to do.

    Adding where the entry exists already records nothing (it is not syncd's); removing
    happens only where syncd recorded the entry."""
    current = [e for e in item.get("imagePullSecrets") or [] if isinstance(e, dict)]
    added = list(_added(item))
    present = any(e.get("name") == secret for e in current)
    if add:
        return None if present else ([*current, {"name": secret}], [*added, entry])
    if entry not in added:
        return None
    return [e for e in current if e.get("name") != secret], [a for a in added if a != entry]


def _item_of(known: ServiceAccountRef) -> dict[str, Any]:
    """A ServiceAccount as a list or watch showed it, in the shape `_wanted` and `_patch` read.
    imagePullSecrets entries carry a name only (LocalObjectReference), so nothing is lost."""
    return {
        "metadata": {
            "name": known.name,
            "namespace": known.namespace,
            "resourceVersion": known.resource_version,
            "annotations": {ADDED_PULL_SECRETS_ANNOTATION: ",".join(known.added)},
        },
        "imagePullSecrets": [{"name": name} for name in known.pull_secrets],
    }


def _edit_known(core: client.CoreV1Api, known: ServiceAccountRef, secret: str, instance: str, *, add: bool) -> bool:
    """One PATCH, no GET, from the version a LIST or watch showed: conditioned on its
    resourceVersion, so a change since then makes it a 409 and the caller reads afresh."""
    item = _item_of(known)
    wanted = _wanted(item, added_entry(instance, secret), secret, add=add)
    if wanted is None:
        return False
    _patch(core, item, *wanted)
    return True


def _edit(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    secret: str,
    instance: str,
    *,
    add: bool,
    known: ServiceAccountRef | None = None,
) -> bool:
    """Add or remove `secret` in one ServiceAccount, re-reading on 409. True when it changed."""
    if known is not None and known.resource_version:
        try:
            return _edit_known(core, known, secret, instance, add=add)
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise
    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        item = _read(core, namespace, name)
        wanted = _wanted(item, added_entry(instance, secret), secret, add=add) if item is not None else None
        if item is None or wanted is None:
            return False
        try:
            _patch(core, item, *wanted)
        except KubeError as exc:
            if exc.status == 409 and attempt < MAX_CONFLICT_RETRIES:
                continue
            raise
        return True
    return False


def add_pull_secret(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    secret: str,
    instance: str,
    *,
    known: ServiceAccountRef | None = None,
) -> bool:
    return _edit(core, namespace, name, secret, instance, add=True, known=known)


def remove_pull_secret(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    secret: str,
    instance: str,
    *,
    known: ServiceAccountRef | None = None,
) -> bool:
    return _edit(core, namespace, name, secret, instance, add=False, known=known)
