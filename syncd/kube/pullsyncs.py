"""PullSecretSync objects (syncd/manifests/crd.py): created once, then written through /status only.

Every call names its object: RBAC grants `get`, `patch` of the status and `delete` by name, and
`create` (which cannot be name-scoped). The one LIST, at the leader's start, finds the objects of
specs no longer in the config, by the instance label.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client

from syncd.core.errors import KubeError
from syncd.core.values import INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from syncd.kube.client import MERGE_PATCH, call, json_body, read_or_none, send, send_json

GROUP, VERSION, PLURAL, KIND = "syncd.io", "v1alpha1", "pullsecretsyncs", "PullSecretSync"
_PATH = f"/apis/{GROUP}/{VERSION}/{PLURAL}"


class CrdMissing(KubeError):
    """The cluster does not serve PullSecretSync: the CRD is not installed."""


def _missing(exc: KubeError) -> bool:
    # 404 on the collection (no such resource) and not on one object: only the collection calls map it.
    return exc.status == 404


class PullSyncObjects:
    def __init__(self, api: client.ApiClient, instance: str) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.instance = instance

    def read(self, name: str) -> dict[str, Any] | None:
        return read_or_none(
            lambda: self.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name, _preload_content=False),
            what=f"reading PullSecretSync {name}",
        )

    def create(self, name: str, secret: str) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": name,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, INSTANCE_LABEL: self.instance},
            },
            "spec": {"instance": self.instance, "secret": secret},
        }
        try:
            response = call(
                lambda: self.custom.create_cluster_custom_object(
                    GROUP, VERSION, PLURAL, cast(Any, body), _preload_content=False
                ),
                what=f"creating PullSecretSync {name}",
            )
        except KubeError as exc:
            if _missing(exc):
                raise CrdMissing(f"PullSecretSync is not served (is the CRD installed?): {exc}", status=404) from exc
            raise
        return json_body(response)

    def patch_status(self, name: str, patch: dict[str, Any]) -> None:
        send_json(
            self.api,
            "PATCH",
            _PATH + "/{name}/status",
            {"status": patch},
            what=f"writing the status of PullSecretSync {name}",
            content_type=MERGE_PATCH,
            name=name,
        )

    def delete(self, name: str) -> None:
        try:
            send(
                lambda: self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name, _preload_content=False),
                what=f"deleting PullSecretSync {name}",
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    def names(self) -> list[str]:
        """This instance's objects (one LIST, by label)."""
        return sorted(str(item["metadata"]["name"]) for item in self.objects())

    def objects(self, *, every_instance: bool = False) -> list[dict[str, Any]]:
        """This instance's objects, or every installation's (`syncd status --from-cluster`)."""
        selector = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
        if not every_instance:
            selector += f",{INSTANCE_LABEL}={self.instance}"
        try:
            response = call(
                lambda: self.custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, label_selector=selector, _preload_content=False
                ),
                what="listing PullSecretSyncs",
            )
        except KubeError as exc:
            if _missing(exc):
                raise CrdMissing(f"PullSecretSync is not served (is the CRD installed?): {exc}", status=404) from exc
            raise
        return list(json_body(response).get("items", []))
