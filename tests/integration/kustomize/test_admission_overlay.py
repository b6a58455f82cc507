"""deploy/kustomize/overlays/admission: the base with the webhook on, held to what `syncd admission`
and `syncd rbac` print for the overlay's config, and accepted by the apiserver as written."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from harness import Stack
from harness.kubectl import kubectl
from syncd.config import load_config
from syncd.manifests import rbac, webhook
from tests.integration.kustomize.manifests import KUSTOMIZE, apply_for_real, find

pytestmark = pytest.mark.integration
OVERLAY = KUSTOMIZE / "overlays" / "admission"


def rendered() -> list[dict[str, Any]]:
    result = kubectl("kustomize", str(OVERLAY))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _bare(doc: dict[str, Any]) -> dict[str, Any]:
    """Without the labels kustomize adds."""
    return {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "labels"}}


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_the_generated_files_are_current() -> None:
    assert webhook.main(["--kustomize", str(OVERLAY), "--check"]) == 0


def test_webhook_rbac_and_policy_are_what_the_commands_print_for_the_overlays_config() -> None:
    config = load_config(OVERLAY / "syncd.yaml")
    assert config.admission.enabled
    docs = {_key(d): _bare(d) for d in rendered()}
    printed = webhook.manifests(config) + rbac.manifests(config, namespace="syncd", service_account="syncd")
    for doc in printed:
        assert docs[_key(doc)] == doc, f"{_key(doc)} differs from the commands' output"
    settings = yaml.safe_load(docs[("ConfigMap", "syncd-config")]["data"]["syncd.yaml"])
    assert settings["admission"]["enabled"] is True
    pod = docs[("Deployment", "syncd")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "webhook", "containerPort": 8443, "protocol": "TCP"} in pod["ports"]
    ingress = docs[("NetworkPolicy", "syncd")]["spec"]["ingress"]
    assert [rule["ports"][0]["port"] for rule in ingress] == [8080, 8443]


def test_every_manifest_is_accepted_by_the_apiserver(stack: Stack) -> None:
    docs = rendered()
    # Namespaced objects need their namespace to exist, even in a dry run.
    apply_for_real(stack, [find(docs, "Namespace", "syncd")])
    result = kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        kubeconfig=stack.kube.kubeconfig,
        stdin=yaml.safe_dump_all(docs),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings either
    assert len(result.stdout.split()) == len(docs)
