"""The admission webhook's two objects, each by name: its TLS Secret and its MutatingWebhookConfiguration.

The Secret (kubernetes.io/tls, in syncd's namespace) is read, created when absent and replaced
with its resourceVersion, so two replicas renewing at once cannot both win; the configuration is
read and its `caBundle`s patched (a JSON patch that tests each webhook's name first). syncd
never creates a webhook configuration: `syncd admission` prints it, the installer applies it.
"""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client

from syncd.core.values import INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from syncd.kube.client import call, read_or_none, send_json

TLS_TYPE = "kubernetes.io/tls"
_JSON_PATCH = "application/json-patch+json"


class WebhookObjects:
    def __init__(self, api: client.ApiClient, *, instance: str) -> None:
        self.core = client.CoreV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.instance = instance

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str] | None:
        """The Secret's data (decoded) and resourceVersion; None when it does not exist."""
        found = read_or_none(
            lambda: self.core.read_namespaced_secret(name, namespace, _preload_content=False),
            what=f"reading Secret {namespace}/{name}",
        )
        if found is None:
            return None
        data = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
        return data, str(found["metadata"].get("resourceVersion", ""))

    def create_secret(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        """KubeError with status 409 when another replica created it first."""
        send_json(
            self.core.api_client,
            "POST",
            "/api/v1/namespaces/{namespace}/secrets",
            self._secret(name, data, None),
            what=f"creating Secret {namespace}/{name}",
            namespace=namespace,
        )

    def replace_secret(self, namespace: str, name: str, data: dict[str, bytes], resource_version: str) -> None:
        """KubeError with status 409 when it changed since `resource_version` was read."""
        send_json(
            self.core.api_client,
            "PUT",
            "/api/v1/namespaces/{namespace}/secrets/{name}",
            self._secret(name, data, resource_version),
            what=f"replacing Secret {namespace}/{name}",
            namespace=namespace,
            name=name,
        )

    def _secret(self, name: str, data: dict[str, bytes], resource_version: str | None) -> dict[str, Any]:
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, INSTANCE_LABEL: self.instance}
        metadata: dict[str, Any] = {"name": name, "labels": labels}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": TLS_TYPE, "data": encoded}

    def ca_bundles(self, name: str) -> list[tuple[str, bytes]] | None:
        """(webhook name, caBundle) of each webhook of the configuration; None when it does not exist."""
        found = read_or_none(
            lambda: self.admission.read_mutating_webhook_configuration(name, _preload_content=False),
            what=f"reading MutatingWebhookConfiguration {name}",
        )
        if found is None:
            return None
        hooks = found.get("webhooks") or []
        return [(h["name"], base64.b64decode((h.get("clientConfig") or {}).get("caBundle") or "")) for h in hooks]

    def set_ca_bundle(self, name: str, webhooks: list[str], bundle: bytes) -> None:
        """Every listed webhook (by position, each checked by name) gets `bundle`."""
        encoded = base64.b64encode(bundle).decode()
        patch: list[dict[str, Any]] = []
        for index, webhook in enumerate(webhooks):
            patch.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook})
            patch.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": encoded})
        call(
            lambda: self.admission.patch_mutating_webhook_configuration(
                name, patch, _content_type=_JSON_PATCH, _preload_content=False
            ),
            what=f"patching the caBundle of MutatingWebhookConfiguration {name}",
        )
