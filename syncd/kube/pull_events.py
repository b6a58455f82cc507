"""Watches of the kubelet's image-pull failure Events (`pull_failures: true`).

Two field-selected watches of core/v1 Events in every namespace, one per kubelet reason, written
by the kubelet itself (`source=kubelet`): the apiserver filters, so syncd never receives the
cluster's other Events. Each is parsed once, here, into a typed KubeletEvent. Unlike the other
watches these keep no store: only Events that happen while syncd watches count, so a (re)list
only learns where to watch from.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kubernetes import client

from syncd.core.watch_events import KUBELET_REASONS, Change, KubeletEvent, WatchEvent
from syncd.kube.client import call
from syncd.kube.watches import EventHandler, WatchLoop

KUBELET_SOURCE = "kubelet"  # pkg/kubelet/server/server.go: ComponentKubelet, the recorder's source


def kubelet_event(change: Change, item: dict[str, Any]) -> WatchEvent:
    metadata = item.get("metadata") or {}
    involved = item.get("involvedObject") or {}
    return KubeletEvent(
        change=change,
        uid=str(metadata.get("uid") or ""),
        namespace=str(metadata.get("namespace") or ""),
        reason=str(item.get("reason") or ""),
        message=str(item.get("message") or ""),
        count=max(1, int(item.get("count") or 1)),
        pod=str(involved.get("name") or ""),
        pod_uid=str(involved.get("uid") or ""),
    )


class EventWatchLoop(WatchLoop):
    def _list(self) -> str:
        """The resourceVersion of a one-item page: the watch then delivers every later change."""
        response = call(
            lambda: self.list_call(limit=1, _preload_content=False, **self.selector), what=f"listing {self.kind}"
        )
        self.listed_at = time.monotonic()
        return str((json.loads(response.data).get("metadata") or {}).get("resourceVersion") or "")


def pull_failure_loops(
    api: client.ApiClient, on_event: EventHandler, reasons: tuple[str, ...] = KUBELET_REASONS
) -> dict[str, EventWatchLoop]:
    """One loop per reason: both for `pull_failures`; `repair_pods` alone needs only `Failed`."""
    core = client.CoreV1Api(api)
    loops = [
        EventWatchLoop(
            f"events/{reason}",
            core.list_event_for_all_namespaces,
            kubelet_event,
            on_event,
            on_relist=lambda: None,  # nothing to resync: only new occurrences count
            field_selector=f"reason={reason},source={KUBELET_SOURCE},involvedObject.kind=Pod",
        )
        for reason in reasons
    ]
    return {loop.kind: loop for loop in loops}
