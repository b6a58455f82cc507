"""imagePullSecrets on ServiceAccounts: append our Secret, never replace what is there."""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client

from syncd.errors import KubeError
from syncd.kube.client import read_or_none, send
from syncd.kube.lists import list_items
from syncd.model import ServiceAccountRef

MAX_CONFLICT_RETRIES = 3


def _ref(item: dict[str, Any]) -> ServiceAccountRef:
    metadata = item.get("metadata") or {}
    names = tuple(str(entry.get("name")) for entry in item.get("imagePullSecrets") or [] if isinstance(entry, dict))
    return ServiceAccountRef(
        namespace=str(metadata.get("namespace")), name=str(metadata.get("name")), pull_secrets=names
    )


def list_all(core: client.CoreV1Api, namespace: str | None = None) -> list[ServiceAccountRef]:
    """ServiceAccounts with their pull secrets: one paginated LIST per sync (cluster-wide), or of one
    namespace for a watch-triggered sync of that namespace."""
    if namespace is None:
        items = list_items(core.list_service_account_for_all_namespaces, what="listing ServiceAccounts")
    else:
        items = list_items(
            lambda **kw: core.list_namespaced_service_account(namespace, **kw),
            what=f"listing ServiceAccounts in {namespace}",
        )
    return [_ref(item) for item in items]


def _read(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    return read_or_none(
        lambda: core.read_namespaced_service_account(name, namespace, _preload_content=False),
        what=f"reading ServiceAccount {namespace}/{name}",
    )


def _patch(core: client.CoreV1Api, item: dict[str, Any], pull_secrets: list[dict[str, Any]]) -> None:
    metadata = item["metadata"]
    # A JSON merge patch replaces the whole list; the resourceVersion makes it fail (409)
    # instead of dropping an entry someone added since we read it.
    patch = {"metadata": {"resourceVersion": metadata["resourceVersion"]}, "imagePullSecrets": pull_secrets}
    send(
        lambda: core.patch_namespaced_service_account(
            metadata["name"],
            metadata["namespace"],
            cast(Any, patch),
            _content_type="application/merge-patch+json",
            _preload_content=False,
        ),
        what=f"patching ServiceAccount {metadata['namespace']}/{metadata['name']}",
    )


def _edit(core: client.CoreV1Api, namespace: str, name: str, secret: str, *, add: bool) -> bool:
    """Add or remove `secret` in one ServiceAccount, re-reading on 409. True when it changed."""
    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        item = _read(core, namespace, name)
        if item is None:
            return False
        current = [e for e in item.get("imagePullSecrets") or [] if isinstance(e, dict)]
        present = any(e.get("name") == secret for e in current)
        if present == add:
            return False
        wanted = [*current, {"name": secret}] if add else [e for e in current if e.get("name") != secret]
        try:
            _patch(core, item, wanted)
        except KubeError as exc:
            if exc.status == 409 and attempt < MAX_CONFLICT_RETRIES:
                continue
            raise
        return True
    return False


def add_pull_secret(core: client.CoreV1Api, namespace: str, name: str, secret: str) -> bool:
    return _edit(core, namespace, name, secret, add=True)


def remove_pull_secret(core: client.CoreV1Api, namespace: str, name: str, secret: str) -> bool:
    return _edit(core, namespace, name, secret, add=False)
