"""Pods for `repair_pods`: the Pending ones, one by name, and their eviction (syncd.engine.repair decides).

Why no Pod watch: a watch of every Pod would hold every Pod of the cluster in memory (at 50,000
namespaces, hundreds of thousands) and receive the busiest stream the apiserver has (every status
change of every Pod) to find the few that cannot pull. syncd learns of those from the kubelet's
own pull-failure Events instead, field-selected at the apiserver (syncd.kube.pull_events), and
reads only the Pod an Event names. A sweep (`pending_pods`) finds the Pods stuck before syncd
started: one paged LIST of `status.phase=Pending` Pods, every namespace, each page decided and
dropped before the next is read, so memory holds one page, never the cluster's Pods.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, cast

from kubernetes import client

from syncd.core.values import ObservedPod, PodOwner
from syncd.kube.client import call, json_body, read_or_none, send

PULL_FAILING = ("ErrImagePull", "ImagePullBackOff")  # the kubelet's waiting reasons for a failed pull
PENDING_PAGE = 500  # Pods per page of the sweep: a Pod's JSON is a few KB, a page a few MB at most
PENDING_SELECTOR = "status.phase=Pending"


def _owner(metadata: dict[str, Any]) -> PodOwner | None:
    for ref in metadata.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return PodOwner(
                str(ref.get("apiVersion") or ""),
                str(ref.get("kind") or ""),
                str(ref.get("name") or ""),
                str(ref.get("uid") or ""),
            )
    return None


def _failing_images(spec: dict[str, Any], status: dict[str, Any]) -> tuple[str, ...]:
    """Spec images (not the status's, which may be resolved) of containers waiting on a failed pull."""
    images = {
        str(c.get("name")): str(c.get("image") or "")
        for key in ("initContainers", "containers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    }
    failing = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for state in status.get(key) or []:
            waiting = ((state or {}).get("state") or {}).get("waiting") or {}
            image = images.get(str(state.get("name")))
            if waiting.get("reason") in PULL_FAILING and image:
                failing.append(image)
    return tuple(dict.fromkeys(failing))


def pod_from(item: dict[str, Any]) -> ObservedPod:
    metadata, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    return ObservedPod(
        namespace=sys.intern(str(metadata.get("namespace") or "")),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        resource_version=str(metadata.get("resourceVersion") or ""),
        service_account=str(account),
        phase=str(status.get("phase") or ""),
        terminating=metadata.get("deletionTimestamp") is not None,
        pull_secrets=tuple(str(ref.get("name")) for ref in spec.get("imagePullSecrets") or [] if isinstance(ref, dict)),
        controller=_owner(metadata),
        failing_images=_failing_images(spec, status),
        labels=dict(metadata.get("labels") or {}),
    )


class KubePods:
    """syncd.engine.repair's Pods port on the Kubernetes API."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def pending_pods(self) -> Iterator[ObservedPod]:
        token: str | None = None
        while True:
            extra = {"_continue": token} if token else {}
            response = call(
                lambda extra=extra: self.core.list_pod_for_all_namespaces(  # type: ignore[misc]
                    field_selector=PENDING_SELECTOR, limit=PENDING_PAGE, _preload_content=False, **extra
                ),
                what="listing Pending Pods",
            )
            body = json_body(response)
            yield from (pod_from(item) for item in body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return

    def read_pod(self, namespace: str, name: str) -> ObservedPod | None:
        found = read_or_none(
            lambda: self.core.read_namespaced_pod(name, namespace, _preload_content=False),
            what=f"reading Pod {namespace}/{name}",
        )
        return None if found is None else pod_from(found)

    def evict(self, pod: ObservedPod) -> None:
        """policy/v1 Eviction of exactly the Pod decided on: a Pod replaced (another uid) or changed
        since (another resourceVersion) is refused by the apiserver (409), never evicted blind."""
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
            "deleteOptions": {"preconditions": {"uid": pod.uid, "resourceVersion": pod.resource_version}},
        }
        send(
            lambda: self.core.create_namespaced_pod_eviction(
                pod.name,
                pod.namespace,
                cast(Any, body),
                _preload_content=False,
            ),
            what=f"evicting Pod {pod.namespace}/{pod.name}",
        )
