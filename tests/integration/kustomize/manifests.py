"""deploy/kustomize rendered (`kubectl kustomize`), read, and applied under names of its own.

Shared by the kustomize tests: the RBAC, Vault-audience and ServiceAccount tests apply the base's
ServiceAccount, roles and bindings for real (renamed into a namespace and names of their own, see
`renamed`), then log in as that ServiceAccount with a TokenRequest token.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import Stack
from harness.kubectl import kubectl

KUSTOMIZE = Path(__file__).resolve().parents[3] / "deploy" / "kustomize"
VARIANTS = ["base", "overlays/ha"]
LABELS = {"app.kubernetes.io/name": "syncd", "app.kubernetes.io/part-of": "syncd"}
IMAGE = "ghcr.io/syncd/syncd:0.1.0"
CONFIG_PATH = "/etc/syncd/syncd.yaml"
VAULT_TOKEN_FILE = "/var/run/secrets/vault/token"
API_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
ALL_NAMESPACES = "*"


# --- rendering -------------------------------------------------------------------------------


@functools.cache
def _rendered(variant: str) -> str:
    result = kubectl("kustomize", str(KUSTOMIZE / variant))
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(variant: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` output as objects: a fresh copy each time, so callers may edit it."""
    return [doc for doc in yaml.safe_load_all(_rendered(variant)) if doc]


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def syncd_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(yaml.safe_load(find(docs, "ConfigMap", "syncd-config")["data"]["syncd.yaml"]))


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(find(docs, "Deployment", "syncd")["spec"]["template"]["spec"])


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [only] = pod_spec(docs)["containers"]
    return dict(only)


def apply_for_real(stack: Stack, docs: list[dict[str, Any]]) -> None:
    result = kubectl("apply", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=dump(docs))
    assert result.returncode == 0, result.stderr


@dataclass
class Identity:
    """The ServiceAccount, roles and bindings of overlays/ha (the base's, and the Lease's Role),
    applied under names of their own."""

    namespace: str
    suffix: str
    kubeconfig: Path
    api_token: str


def renamed(docs: list[dict[str, Any]], namespace: str, suffix: str) -> list[dict[str, Any]]:
    """Namespace `syncd` becomes `namespace`; cluster-scoped names get `suffix`, so tests never collide."""
    out = []
    for doc in copy.deepcopy(docs):
        if doc["kind"] not in RBAC_KINDS:
            continue
        metadata = doc["metadata"]
        if doc["kind"] == "Namespace":
            metadata["name"] = namespace
        if metadata.get("namespace") == "syncd":
            metadata["namespace"] = namespace
        if doc["kind"].startswith("Cluster"):
            metadata["name"] += suffix
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            doc["roleRef"]["name"] += suffix
        for subject in doc.get("subjects", []):
            if subject.get("namespace") == "syncd":
                subject["namespace"] = namespace
        out.append(doc)
    text = yaml.safe_dump_all(out)
    assert "namespace: syncd\n" not in text, "a reference to namespace syncd was missed"
    assert [d["roleRef"]["name"] for d in out if d["kind"] == "ClusterRoleBinding"] == [f"syncd{suffix}"]
    return out


@dataclass
class VaultAuth:
    """OpenBao's Kubernetes auth set up as the README's Vault setup says (role with audience=vault)."""

    mount: str
    path: str
    token_file: Path

    def config(self, stack: Stack) -> dict[str, Any]:
        auth = {"method": "kubernetes", "role": "syncd", "mount": self.mount, "token_file": str(self.token_file)}
        return {"address": stack.vault.address, "allow_http": True, "auth": auth}
