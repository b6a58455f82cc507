"""Namespace listing: all of them for names and globs, and the apiserver's answer to a selector."""

from __future__ import annotations

from sys import intern
from typing import Any

from kubernetes import client

from syncd.core.values import NamespaceInfo
from syncd.kube.lists import list_items


def _info(item: dict[str, Any]) -> NamespaceInfo:
    metadata = item.get("metadata") or {}
    terminating = bool(metadata.get("deletionTimestamp")) or (item.get("status") or {}).get("phase") == "Terminating"
    labels = {intern(str(k)): intern(str(v)) for k, v in (metadata.get("labels") or {}).items()}
    return NamespaceInfo(name=intern(str(metadata.get("name"))), terminating=terminating, labels=labels)


def list_namespaces(core: client.CoreV1Api, label_selector: str | None = None) -> list[NamespaceInfo]:
    what = f"listing namespaces matching {label_selector!r}" if label_selector else "listing namespaces"
    kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
    return [_info(item) for item in list_items(core.list_namespace, what=what, **kwargs)]


def read_namespace(core: client.CoreV1Api, name: str) -> NamespaceInfo | None:
    """One namespace, by a LIST with a field selector: syncd's RBAC grants list/watch on
    namespaces, not get, and needs nothing more for this."""
    found = list_items(core.list_namespace, what=f"reading namespace {name}", field_selector=f"metadata.name={name}")
    return next((_info(item) for item in found), None)


def info_from(item: dict[str, Any]) -> NamespaceInfo:
    """A namespace as a watch event carries it."""
    return _info(item)
