"""deploy/helm/syncd: lint-clean, accepted by a real apiserver, and the same resources as deploy/kustomize.

helm itself is built from the Go module proxy by scripts/helm-binary.sh (or taken from $HELM).
ServiceMonitor and PrometheusRule need the Prometheus Operator's CRDs, which the test apiserver
does not have: the dry runs leave them off, and a separate test renders them on and checks what
they select, scrape and alert on.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.charts import (
    CHART,
    RELEASE,
    REPO_ROOT,
    Doc,
    find,
    helm,
    kustomize,
    render,
    syncd_config,
)
from harness.kubectl import kubectl
from syncd.cli.commands import main
from syncd.config import parse_config
from syncd.manifests import admission_policy as policy
from syncd.manifests import rbac

# The first test may build helm (about 3 minutes, longer with a cold Go module cache):
# `make helm` (scripts/helm-binary.sh) ahead of pytest avoids that.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
VAULT_TOKEN_FILE = "/var/run/secrets/vault/token"
INSTANCE_LABEL = "app.kubernetes.io/instance"
# The kustomize variant each set of chart values stands for.
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "overlays/ha": ["replicaCount=2"],
}
MONITORING = ["serviceMonitor.enabled=true", "prometheusRule.enabled=true"]


# --- helm, kubectl, rendering ------------------------------------------------------------------


def dump(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def kinds(docs: list[Doc]) -> list[str]:
    return sorted(doc["kind"] for doc in docs)


# --- lint and a real apiserver -----------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [[], ["replicaCount=2"], ["vaultToken.enabled=false", *MONITORING], ["admission.enabled=true"]]
)
def test_helm_lint_is_clean(helm_home: Path, values: list[str]) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    result = helm(helm_home, "lint", "--strict", str(CHART), *sets)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = [line for line in result.stdout.splitlines() if line.startswith("[")]
    # The one suggestion left: there is no project icon to point at.
    assert findings == ["[INFO] Chart.yaml: icon is recommended"], result.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.fixture
def release_namespace(stack: Stack) -> str:
    """A namespace labelled as deploy/kustomize labels syncd's: `restricted` enforced, warned and audited."""
    name = f"helm-{uuid.uuid4().hex[:8]}"
    levels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": levels}}
    result = kubectl("apply", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=dump([namespace]))
    assert result.returncode == 0, result.stderr
    return name


@pytest.mark.parametrize(
    "values",
    [[], ["replicaCount=2"], ["vaultToken.enabled=false"], ["admission.enabled=true"]],
    ids=["default", "ha", "no-vault-token", "admission"],
)
def test_every_rendered_manifest_is_accepted_by_the_apiserver(
    stack: Stack, helm_home: Path, release_namespace: str, values: list[str]
) -> None:
    docs = render(helm_home, *values, namespace=release_namespace)
    assert "Namespace" not in kinds(docs), "the release namespace is not the chart's"
    assert {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]} == {release_namespace}
    result = kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        kubeconfig=stack.kube.kubeconfig,
        stdin=dump(docs),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings either (PodSecurity `restricted`, deprecated APIs, unknown fields)
    assert len(result.stdout.split()) == len(docs)


def test_pod_is_admitted_where_restricted_is_enforced(
    stack: Stack, kube_api: client.ApiClient, helm_home: Path, release_namespace: str
) -> None:
    # A Deployment is only warned about; a Pod is refused, so this is the enforcing check.
    core = client.CoreV1Api(kube_api)
    docs = render(helm_home, namespace=release_namespace)
    spec = find(docs, "Deployment")["spec"]  # with the Vault token
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "syncd-psa"}, "spec": spec["template"]["spec"]}
    # The ServiceAccount admission plugin admits a Pod only once its ServiceAccount exists.
    applied = kubectl("apply", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=dump([find(docs, "ServiceAccount")]))
    assert applied.returncode == 0, applied.stderr
    # The rendered manifest itself, not the client model of it: the client sends a dict unchanged.
    core.create_namespaced_pod(release_namespace, pod, dry_run="All", _preload_content=False)  # type: ignore[arg-type]
    loosened = copy.deepcopy(pod)
    loosened["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(release_namespace, loosened, dry_run="All", _preload_content=False)  # type: ignore[arg-type]
    assert refused.value.status == 403
    assert "violates PodSecurity" in str(refused.value.body)


def test_install_dry_run_against_the_cluster_prints_the_notes(
    stack: Stack, helm_home: Path, release_namespace: str
) -> None:
    result = helm(
        helm_home, "install", RELEASE, str(CHART), "--namespace", release_namespace, "--dry-run=server",
        "--kubeconfig", str(stack.kube.kubeconfig), "--set", "replicaCount=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"installed as syncd in namespace {release_namespace}" in notes
    assert f"leader election on: only the holder of Lease {release_namespace}/syncd writes" in notes
    assert f"kubectl label namespace {release_namespace} pod-security.kubernetes.io/enforce=restricted" in notes
    assert f"must bind ServiceAccount\nsyncd in namespace {release_namespace}, with audience=vault." in notes


# --- the same resources as deploy/kustomize ----------------------------------------------------


def _without_instance_label(node: Any) -> Any:
    """The chart's selectors add app.kubernetes.io/instance (two releases must not select each other's pods)."""
    if isinstance(node, dict):
        return {key: _without_instance_label(value) for key, value in node.items() if key != INSTANCE_LABEL}
    if isinstance(node, list):
        return [_without_instance_label(value) for value in node]
    return node


def _comparable(doc: Doc) -> Doc:
    """What must match: everything but metadata (labels differ by design) and list order of volumes."""
    doc = copy.deepcopy(doc)
    doc.pop("metadata")
    if doc["kind"] == "ConfigMap":
        doc["data"] = {key: yaml.safe_load(text) for key, text in doc["data"].items()}
    if doc["kind"] == "Deployment":
        doc["spec"]["template"].pop("metadata")
        pod = doc["spec"]["template"]["spec"]
        pod["volumes"].sort(key=lambda volume: volume["name"])
        for container in pod["containers"]:
            container["volumeMounts"].sort(key=lambda mount: mount["name"])
    return dict(_without_instance_label(doc))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_chart_renders_what_kustomize_renders(helm_home: Path, variant: str) -> None:
    """Release `syncd` in namespace `syncd`: the kustomize variant's objects, field for field."""
    kustomized = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(variant) if d["kind"] != "Namespace"}
    charted = {(d["kind"], d["metadata"]["name"]): d for d in render(helm_home, *VARIANTS[variant], crds=True)}
    assert sorted(charted) == sorted(kustomized)
    for key, expected in kustomized.items():
        if key[0] == "CustomResourceDefinition":  # crds/ is copied as is, never templated: no release labels
            assert charted[key]["spec"] == expected["spec"], key
            continue
        assert _comparable(charted[key]) == _comparable(expected), f"{key} differs from deploy/kustomize/{variant}"
        assert charted[key]["metadata"].get("namespace") == expected["metadata"].get("namespace")
        # kustomize's labels are all there (the chart adds helm's own and the instance).
        labels = charted[key]["metadata"]["labels"]
        assert expected["metadata"]["labels"].items() <= labels.items(), key
        assert labels[INSTANCE_LABEL] == RELEASE
    deployment = charted[("Deployment", "syncd")]
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "syncd", INSTANCE_LABEL: RELEASE}
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert charted[("Service", "syncd-metrics")]["spec"]["selector"].items() <= template_labels.items()


def test_rbac_rules_are_those_of_the_kustomize_base(helm_home: Path) -> None:
    # Covered field for field above; spelled out, because RBAC is what a reviewer checks first.
    base, chart = kustomize("base"), render(helm_home)
    assert find(chart, "ClusterRole")["rules"] == find(base, "ClusterRole")["rules"]
    # The Lease's Role with leader election on only, as syncd rbac prints it.
    assert [d for d in chart if d["kind"] in ("Role", "RoleBinding")] == []
    elected = render(helm_home, "replicaCount=2")
    assert find(elected, "Role")["rules"] == find(kustomize("overlays/ha"), "Role")["rules"]
    rules = find(chart, "ClusterRole")["rules"]
    secrets = [rule for rule in rules if rule["resources"] == ["secrets"]]
    assert secrets == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["regcred"],
            "verbs": ["get", "list", "watch", "patch", "delete"],
        },
    ]


def _specs(*service_accounts: list[str]) -> str:
    base = {"credentials": ["ghcr"], "namespaces": {"names": ["a"]}}
    specs = [{**base, "name": f"pull-{i}", "service_accounts": sa} for i, sa in enumerate(service_accounts)]
    return "json:config.secrets=" + json.dumps(specs)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [_specs(["default"], ["*"])],
        [_specs([], []), 'json:config.retired_secrets=["old-regcred", "old-a"]'],
        [
            _specs(["default"], []),
            'json:config.retired_secrets=["old-a", {"name": "old-b", "service_accounts": ["builder"]}]',
        ],
        [_specs(["default", "builder"], ["default"]), "config.instance=platform"],
        ["config.pull_failures=true"],
        ["config.repair_pods=true"],
        ["config.repair_pods=true", "config.pull_failures=true"],
    ],
    ids=[
        "default",
        "every-account",
        "retired-no-accounts",
        "retired-with-accounts",
        "two-specs",
        "pull-failures",
        "repair-pods",
        "repair-and-pull-failures",
    ],
)
def test_the_cluster_role_is_what_syncd_rbac_prints_for_the_release_config(helm_home: Path, values: list[str]) -> None:
    docs = render(helm_home, *values)
    config = parse_config(syncd_config(docs))
    assert find(docs, "ClusterRole")["rules"] == rbac.cluster_rules(config)


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [[], ["replicaCount=3"], ["vaultToken.enabled=false"], ["config.server.address=127.0.0.1:9090"]]
)
def test_config_map_holds_a_valid_config_wired_to_the_pod(helm_home: Path, tmp_path: Path, values: list[str]) -> None:
    docs = render(helm_home, *values, namespace="platform")
    config_file = tmp_path / "syncd.yaml"
    config_file.write_text(find(docs, "ConfigMap")["data"]["syncd.yaml"])
    assert main(["check-config", "--config", str(config_file)]) == 0
    settings = syncd_config(docs)
    replicas = find(docs, "Deployment")["spec"]["replicas"]
    # The Lease lives where the chart's Role grants it (with leader election on): the release namespace.
    assert settings["leader_election"]["namespace"] == "platform"
    assert settings["leader_election"]["enabled"] is (replicas > 1)
    roles = [d["metadata"]["namespace"] for d in docs if d["kind"] in ("Role", "RoleBinding")]
    assert roles == (["platform", "platform"] if replicas > 1 else [])
    [container] = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    port = int(settings["server"]["address"].rsplit(":", 1)[1])
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    token_file = settings["vault"]["auth"].get("token_file")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    if "vaultToken.enabled=false" in values:
        assert token_file is None  # the pod's API token: syncd warns at start
        assert "vault-token" not in mounts
    else:
        assert token_file == f"{mounts['vault-token']}/token" == VAULT_TOKEN_FILE


def _vault_token(docs: list[Doc]) -> tuple[dict[str, Any] | None, str | None]:
    """The projected Vault token's serviceAccountToken source (None when not mounted), and token_file."""
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    [container] = pod["containers"]
    mounted = "vault-token" in {mount["name"] for mount in container["volumeMounts"]}
    assert mounted == ("vault-token" in volumes)
    source = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"] if mounted else None
    return source, syncd_config(docs)["vault"]["auth"].get("token_file")


@pytest.mark.parametrize(
    ("values", "mounted", "token_file"),
    [
        ([], True, VAULT_TOKEN_FILE),  # method kubernetes: on by default
        (["vaultToken.enabled=true"], True, VAULT_TOKEN_FILE),
        (["vaultToken.enabled=false"], False, None),
        (["config.vault.auth.token_file=/etc/vault/jwt"], True, "/etc/vault/jwt"),  # an explicit one stays
        (["config.vault.auth.method=token"], False, None),
        # The token method's token_file is a Vault token: the mounted JWT is never it.
        (["config.vault.auth.method=token", "vaultToken.enabled=true"], True, None),
        (["config.vault.auth.method=jwt", "vaultToken.enabled=true"], True, VAULT_TOKEN_FILE),
    ],
    ids=["default", "enabled", "disabled", "own-token-file", "token-method", "token-method-enabled", "jwt-enabled"],
)
def test_the_vault_token_follows_the_auth_method(
    helm_home: Path, values: list[str], mounted: bool, token_file: str | None
) -> None:
    source, configured = _vault_token(render(helm_home, *values))
    assert configured == token_file
    if mounted:
        assert source == {"audience": "vault", "expirationSeconds": 3600, "path": "token"}
    else:
        assert source is None


def test_the_vault_token_audience_and_lifetime_are_values(helm_home: Path) -> None:
    source, _ = _vault_token(render(helm_home, "vaultToken.audience=vault-prod", "vaultToken.expirationSeconds=600"))
    assert source == {"audience": "vault-prod", "expirationSeconds": 600, "path": "token"}


def test_leader_election_follows_the_replica_count_and_refuses_two_writers(helm_home: Path) -> None:
    one = render(helm_home)
    assert syncd_config(one)["leader_election"]["enabled"] is False
    assert find(one, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert "PodDisruptionBudget" not in kinds(one)

    # Asked for with one replica: on (a standby can be added later), and rollouts may overlap.
    elected = render(helm_home, "leaderElection.enabled=true")
    assert syncd_config(elected)["leader_election"]["enabled"] is True
    assert find(elected, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"

    three = render(helm_home, "replicaCount=3")
    assert syncd_config(three)["leader_election"]["enabled"] is True
    assert find(three, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert "PodDisruptionBudget" not in kinds(render(helm_home, "replicaCount=3", "podDisruptionBudget.enabled=false"))

    refused = helm(
        helm_home, "template", RELEASE, str(CHART), "--set", "replicaCount=2", "--set", "leaderElection.enabled=false"
    )
    assert refused.returncode != 0
    assert "replicaCount > 1 needs leaderElection.enabled" in refused.stderr


def test_unknown_values_are_refused(helm_home: Path) -> None:
    typo = helm(helm_home, "template", RELEASE, str(CHART), "--set", "replicas=2")
    assert typo.returncode != 0
    assert "additional properties 'replicas' not allowed" in typo.stderr


def test_only_a_change_read_at_start_rolls_the_pods(helm_home: Path) -> None:
    def checksum(*values: str) -> str:
        annotations = find(render(helm_home, *values), "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/restart-config"])

    default = checksum()
    assert checksum("config.schedule.interval=10m") == default  # syncd reloads it by itself
    assert checksum("config.server.address=0.0.0.0:9090") != default
    assert checksum("config.leader_election.lease_duration=30s") != default


def test_image_and_service_account_values(helm_home: Path) -> None:
    digest = "sha256:" + "0" * 64
    docs = render(
        helm_home,
        f"image.digest={digest}",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/syncd",
        "logLevel=debug",
    )
    [container] = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/syncd/syncd@{digest}"
    assert container["args"] == ["run", "--config", "/etc/syncd/syncd.yaml", "--log-level", "debug"]
    annotations = find(docs, "ServiceAccount")["metadata"]["annotations"]
    assert annotations == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/syncd"}

    existing = render(helm_home, "serviceAccount.create=false", "serviceAccount.name=registry-sync", "replicaCount=2")
    assert "ServiceAccount" not in kinds(existing)
    assert find(existing, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "registry-sync"
    for binding in ("ClusterRoleBinding", "RoleBinding"):
        assert [s["name"] for s in find(existing, binding)["subjects"]] == ["registry-sync"]


# --- Prometheus Operator resources (rendered only: no CRDs in the test apiserver) --------------


@pytest.fixture(scope="module")
def monitored(helm_home: Path) -> list[Doc]:
    return render(helm_home, *MONITORING, "serviceMonitor.labels.release=kube-prometheus-stack", namespace="monitoring")


def test_monitoring_adds_exactly_a_service_monitor_and_a_prometheus_rule(helm_home: Path, monitored: list[Doc]) -> None:
    plain = render(helm_home, namespace="monitoring")
    assert kinds(monitored) == sorted([*kinds(plain), "PrometheusRule", "ServiceMonitor"])
    for doc in monitored:
        if doc["kind"] in ("PrometheusRule", "ServiceMonitor"):
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert doc["metadata"]["namespace"] == "monitoring"


def test_service_monitor_scrapes_the_metrics_service(monitored: list[Doc]) -> None:
    monitor, service = find(monitored, "ServiceMonitor"), find(monitored, "Service")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "syncd", INSTANCE_LABEL: RELEASE}}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [port["name"] for port in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    # `job` is the Service's app.kubernetes.io/name: what the alert rules match (job=~".*syncd.*").
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "syncd"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The same scrape as deploy/prometheus/servicemonitor.yaml (which selects by name only, in `syncd`).
    plain = yaml.safe_load((PROMETHEUS / "servicemonitor.yaml").read_text())
    plain["spec"]["namespaceSelector"] = {"matchNames": ["monitoring"]}
    assert _without_instance_label(monitor["spec"]) == plain["spec"]


def test_prometheus_rule_is_the_rules_file(monitored: list[Doc]) -> None:
    copied, source = CHART / "files" / "syncd.rules.yaml", PROMETHEUS / "rules" / "syncd.rules.yaml"
    assert copied.read_bytes() == source.read_bytes(), f"the chart's copy is stale: cp {source} {copied}"
    rule = find(monitored, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(source.read_text())
    assert rule["spec"] == yaml.safe_load((PROMETHEUS / "prometheusrule.yaml").read_text())["spec"]
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}
    assert {"SyncdSyncFailing", "SyncdNoRecentSuccess", "SyncdCredentialExpiringSoon"} <= alerts


@pytest.mark.parametrize(
    "values",
    [
        [],
        [_specs(["default"], ["*"]), "config.instance=platform"],
        [_specs([], []), 'json:config.retired_secrets=["old-regcred", "old-a"]'],
        [
            "json:config.secrets="
            + json.dumps(
                [
                    {
                        "name": "a",
                        "credentials": ["ghcr"],
                        "namespaces": {"names": ["kube-system"], "exclude": ["tmp-*", "x?y-*", "tmp-*"]},
                        "on_conflict": "adopt",
                    },
                    {"name": "b", "credentials": ["ghcr"], "namespaces": {"patterns": ["*"]}},
                ]
            )
        ],
    ],
    ids=["default", "instance", "retired", "excludes-and-adopt"],
)
def test_the_admission_policy_is_what_syncd_rbac_prints_for_the_release_config(
    helm_home: Path, values: list[str]
) -> None:
    docs = render(helm_home, *values, namespace="platform")
    config = parse_config(syncd_config(docs))
    account = find(docs, "ServiceAccount")["metadata"]["name"]
    expected = policy.manifests(
        config, role="r", granted=rbac.secret_names(config), namespace="platform", service_account=account
    )
    role = find(docs, "ClusterRole")["metadata"]["name"]
    rendered = [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    for doc in expected:
        doc["metadata"]["name"] = doc["metadata"]["name"].replace("r-", f"{role}-", 1)
        if "policyName" in doc["spec"]:
            doc["spec"]["policyName"] = doc["metadata"]["name"]
    # Helm orders its output by kind: compare by kind and name.
    assert sorted((d["kind"], d["metadata"]["name"], json.dumps(d["spec"])) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"], json.dumps(d["spec"])) for d in expected
    )


def test_the_admission_policy_can_be_left_out(helm_home: Path) -> None:
    kinds = {d["kind"] for d in render(helm_home, "rbac.admissionPolicy=false")}
    assert "ValidatingAdmissionPolicy" not in kinds
    assert "ClusterRole" in kinds


def test_metrics_auth_binds_the_auth_delegator_role_as_syncd_rbac_does(helm_home: Path) -> None:
    docs = render(helm_home, "config.server.metrics_auth=kubernetes", namespace="platform")
    config = parse_config(syncd_config(docs))
    account = find(docs, "ServiceAccount")["metadata"]["name"]
    [expected] = [
        d
        for d in rbac.manifests(config, namespace="platform", service_account=account)
        if d["metadata"]["name"].endswith("-auth-delegator")
    ]
    [rendered] = [
        d for d in docs if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "system:auth-delegator"
    ]
    assert (rendered["roleRef"], rendered["subjects"]) == (expected["roleRef"], expected["subjects"])
    plain = render(helm_home, namespace="platform")
    assert not [
        d for d in plain if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "system:auth-delegator"
    ]
