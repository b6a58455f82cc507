"""deploy/kustomize as written: every object accepted by the apiserver (server-side dry run, no
warnings), labelled and wired as the README documents, Vault's token separate from the API's, and
each overlay changing only what it is for."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Stack
from harness.kubectl import kubectl
from syncd.cli.commands import main
from syncd.config import parse_config
from tests.integration.kustomize.manifests import (
    API_TOKEN_FILE,
    CONFIG_PATH,
    IMAGE,
    LABELS,
    VARIANTS,
    VAULT_TOKEN_FILE,
    apply_for_real,
    container,
    dump,
    find,
    pod_spec,
    render,
    syncd_config,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_accepted_by_the_apiserver(stack: Stack, variant: str) -> None:
    docs = render(variant)
    # Namespaced objects need their namespace to exist, even in a dry run.
    apply_for_real(stack, [find(docs, "Namespace", "syncd")])
    result = kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        kubeconfig=stack.kube.kubeconfig,
        stdin=dump(docs),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings either (deprecated APIs, PodSecurity, unknown fields)
    assert len(result.stdout.split()) == len(docs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_is_labelled_and_the_pod_is_wired_as_documented(tmp_path: Path, variant: str) -> None:
    docs = render(variant)
    for doc in docs:
        assert LABELS.items() <= (doc["metadata"].get("labels") or {}).items(), doc["metadata"]["name"]
    deployment = find(docs, "Deployment", "syncd")
    assert deployment["spec"]["replicas"] == (2 if variant == "overlays/ha" else 1)
    assert LABELS.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    spec, main_container = pod_spec(docs), container(docs)
    assert spec["serviceAccountName"] == "syncd"
    assert spec["automountServiceAccountToken"] is True
    assert main_container["image"] == IMAGE
    assert main_container["args"] == ["run", "--config", CONFIG_PATH]
    assert {"name": "SYNCD_CONFIG", "value": CONFIG_PATH} in main_container["env"]
    assert main_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main_container["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}

    # The ConfigMap as a whole directory (a subPath mount never sees the kubelet's symlink swap).
    mounts = {m["name"]: m for m in main_container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["config"]["mountPath"] == "/etc/syncd"
    assert all("subPath" not in m and "subPathExpr" not in m for m in mounts.values())
    assert volumes["config"]["configMap"]["name"] == "syncd-config"
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert "emptyDir" in volumes["tmp"]

    service = find(docs, "Service", "syncd-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "protocol": "TCP", "targetPort": "metrics"}]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    # The config in the ConfigMap is valid, serves where the probes look, and elects in the Role's namespace.
    settings = syncd_config(docs)
    config_file = tmp_path / "syncd.yaml"
    config_file.write_text(find(docs, "ConfigMap", "syncd-config")["data"]["syncd.yaml"])
    assert main(["check-config", "--config", str(config_file)]) == 0
    assert settings["server"]["address"].endswith(":8080")
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in main_container["ports"]
    assert settings["leader_election"]["namespace"] == "syncd"
    assert settings["leader_election"]["enabled"] is (variant == "overlays/ha")
    # The Lease's Role exactly where leader election is on (syncd rbac prints it only then).
    leases = [d["metadata"]["namespace"] for d in docs if d["kind"] in ("Role", "RoleBinding") and "leases" in str(d)]
    assert leases == (["syncd"] if settings["leader_election"]["enabled"] else [])
    assert settings["vault"]["address"] == "https://vault.vault.svc:8200"
    assert settings["vault"]["auth"] == {
        "method": "kubernetes",
        "role": "syncd",
        "mount": "kubernetes",
        "token_file": VAULT_TOKEN_FILE,
    }
    assert "allow_http" not in settings["vault"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_vault_gets_a_projected_token_of_its_own_audience_never_the_api_token(variant: str) -> None:
    """syncd keeps its API token (automounted, for the apiserver); Vault gets the `vault` token."""
    docs = render(variant)
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    assert volumes["vault-token"]["projected"]["sources"] == [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 3600, "path": "token"}}
    ]
    assert mounts["vault-token"] == {"name": "vault-token", "mountPath": "/var/run/secrets/vault", "readOnly": True}
    token_file = syncd_config(docs)["vault"]["auth"]["token_file"]
    assert token_file == f"{mounts['vault-token']['mountPath']}/token" != API_TOKEN_FILE
    assert pod_spec(docs)["automountServiceAccountToken"] is True
    vault = parse_config(syncd_config(docs)).vault
    assert vault is not None
    assert not vault.auth.sends_api_token


def test_overlays_change_only_what_they_are_for() -> None:
    base = render("base")
    ha = render("overlays/ha")
    expected = syncd_config(base)
    expected["leader_election"]["enabled"] = True
    assert syncd_config(ha) == expected
    assert find(ha, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    assert find(base, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}  # one writer, even in a rollout
    assert find(ha, "PodDisruptionBudget", "syncd")["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "syncd"}},
    }
    [term] = pod_spec(ha)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
