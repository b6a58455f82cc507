"""Namespace listing: all of them for names and globs, and the apiserver's answer to a selector."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from syncd.kube.client import read_or_none
from syncd.kube.lists import list_items
from syncd.selection import NamespaceInfo


def _info(item: dict[str, Any]) -> NamespaceInfo:
    metadata = item.get("metadata") or {}
    terminating = bool(metadata.get("deletionTimestamp")) or (item.get("status") or {}).get("phase") == "Terminating"
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    return NamespaceInfo(name=str(metadata.get("name")), terminating=terminating, labels=labels)


def list_namespaces(core: client.CoreV1Api, label_selector: str | None = None) -> list[NamespaceInfo]:
    what = f"listing namespaces matching {label_selector!r}" if label_selector else "listing namespaces"
    kwargs = {"label_selector": label_selector} if label_selector else {}
    return [_info(item) for item in list_items(core.list_namespace, what=what, **kwargs)]


def read_namespace(core: client.CoreV1Api, name: str) -> NamespaceInfo | None:
    item = read_or_none(lambda: core.read_namespace(name, _preload_content=False), what=f"reading namespace {name}")
    return _info(item) if item is not None else None


def info_from(item: dict[str, Any]) -> NamespaceInfo:
    """A namespace as a watch event carries it."""
    return _info(item)
