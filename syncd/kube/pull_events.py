"""Watches of the kubelet's image-pull failure Events (`pull_failures: true`).

Two field-selected watches of core/v1 Events in every namespace, one per kubelet reason, written
by the kubelet itself (`source=kubelet`): the apiserver filters, so syncd never receives the
cluster's other Events. Each is parsed once, here, into a typed KubeletEvent.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from syncd.kube.watches import EventHandler, WatchLoop
from syncd.pull_failures import KUBELET_REASONS
from syncd.watch_events import Change, KubeletEvent, WatchEvent

KUBELET_SOURCE = "kubelet"  # pkg/kubelet/server/server.go: ComponentKubelet, the recorder's source


def kubelet_event(change: Change, item: dict[str, Any]) -> WatchEvent:
    metadata = item.get("metadata") or {}
    return KubeletEvent(
        change=change,
        uid=str(metadata.get("uid") or ""),
        namespace=str(metadata.get("namespace") or ""),
        reason=str(item.get("reason") or ""),
        message=str(item.get("message") or ""),
        count=max(1, int(item.get("count") or 1)),
    )


def pull_failure_loops(api: client.ApiClient, on_event: EventHandler) -> dict[str, WatchLoop]:
    core = client.CoreV1Api(api)
    loops = [
        WatchLoop(
            f"events/{reason}",
            core.list_event_for_all_namespaces,
            kubelet_event,
            on_event,
            on_relist=lambda: None,  # nothing to resync: only new occurrences count
            field_selector=f"reason={reason},source={KUBELET_SOURCE},involvedObject.kind=Pod",
        )
        for reason in KUBELET_REASONS
    ]
    return {loop.kind: loop for loop in loops}
