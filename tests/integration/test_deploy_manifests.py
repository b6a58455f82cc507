"""deploy/kustomize against a real apiserver: accepted as written, `restricted`, and least privilege.

The RBAC tests apply the base's ServiceAccount, roles and bindings for real (renamed into a
namespace and names of their own), then run syncd as that ServiceAccount with a TokenRequest
token: what syncd does must work, and what it does not do must be refused.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.accounts import service_account_token, token_kubeconfig
from harness.kubectl import kubectl
from harness.wait import wait_until
from syncd.cli.commands import main
from syncd.config import load_config, parse_config
from syncd.kube.leader import LeaderElector
from syncd.manifests import rbac
from tests.integration.daemon import SyncdProcess, has_secret, new_namespace
from tests.kube_objects import default_service_account, labels_of, lease_spec, pull_secret_names

pytestmark = pytest.mark.integration

KUSTOMIZE = Path(__file__).resolve().parents[2] / "deploy" / "kustomize"
VARIANTS = ["base", "overlays/ha"]
LABELS = {"app.kubernetes.io/name": "syncd", "app.kubernetes.io/part-of": "syncd"}
IMAGE = "ghcr.io/syncd/syncd:0.1.0"
CONFIG_PATH = "/etc/syncd/syncd.yaml"
VAULT_TOKEN_FILE = "/var/run/secrets/vault/token"
API_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
ALL_NAMESPACES = "*"


# --- rendering and kubectl ---------------------------------------------------------------------


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


# --- what the manifests say --------------------------------------------------------------------


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
    assert settings["leader_election"]["namespace"] == find(docs, "Role")["metadata"]["namespace"] == "syncd"
    assert settings["leader_election"]["enabled"] is (variant == "overlays/ha")
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


# --- Pod Security Standard `restricted` --------------------------------------------------------


Mutation = Callable[[dict[str, Any]], None]


def _at(spec: dict[str, Any], path: list[str | int]) -> Any:
    node: Any = spec
    for key in path:
        node = node[key]
    return node


def _set(path: list[str | int], value: Any) -> Mutation:
    """Set the pod spec's value at `path`; None deletes it."""

    def mutate(spec: dict[str, Any]) -> None:
        parent = _at(spec, path[:-1])
        if value is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value

    return mutate


def _append(path: list[str | int], value: Any) -> Mutation:
    return lambda spec: _at(spec, path).append(value)


VIOLATIONS: dict[str, list[Mutation]] = {
    "privilege escalation": [_set(["containers", 0, "securityContext", "allowPrivilegeEscalation"], True)],
    "capabilities kept": [_set(["containers", 0, "securityContext", "capabilities"], None)],
    "root": [_set(["securityContext", "runAsUser"], 0), _set(["containers", 0, "securityContext", "runAsUser"], 0)],
    "no seccomp": [
        _set(["securityContext", "seccompProfile"], None),
        _set(["containers", 0, "securityContext", "seccompProfile"], None),
    ],
    "hostPath": [_append(["volumes"], {"name": "host", "hostPath": {"path": "/tmp"}})],
}


@pytest.fixture(scope="module")
def restricted_namespace(kube_api: client.ApiClient) -> str:
    """A namespace enforcing the `restricted` Pod Security Standard (PodSecurity admission is on by default)."""
    core = client.CoreV1Api(kube_api)
    name = f"psa-{uuid.uuid4().hex[:8]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    core.create_namespaced_service_account(name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="syncd")))
    return name


def _dry_run_pod(kube_api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "syncd-psa", "labels": LABELS}, "spec": spec}
    # The rendered manifest itself, not the client model of it: the client sends a dict unchanged.
    client.CoreV1Api(kube_api).create_namespaced_pod(namespace, pod, dry_run="All", _preload_content=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", VARIANTS)
def test_pod_template_passes_the_restricted_pod_security_standard(
    kube_api: client.ApiClient, restricted_namespace: str, variant: str
) -> None:
    spec = pod_spec(render(variant))
    _dry_run_pod(kube_api, restricted_namespace, spec)  # raises ApiException (403) if refused

    # The check can fail: the same pod loosened in any one way is refused there.
    for violation, mutations in VIOLATIONS.items():
        loosened = copy.deepcopy(spec)
        for mutate in mutations:
            mutate(loosened)
        with pytest.raises(ApiException) as refused:
            _dry_run_pod(kube_api, restricted_namespace, loosened)
        assert refused.value.status == 403, violation
        assert "violates PodSecurity" in str(refused.value.body), violation


# --- RBAC: enough, and no more ------------------------------------------------------------------


@dataclass
class Identity:
    """The base's ServiceAccount, roles and bindings, applied under names of their own."""

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


@pytest.fixture(scope="module")
def identity(stack: Stack, kube_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    suffix = f"-{uuid.uuid4().hex[:8]}"
    namespace = f"syncd{suffix}"
    docs = renamed(render("base"), namespace, suffix)
    assert [d["kind"] for d in docs].count("ClusterRole") == 1
    apply_for_real(stack, docs)
    token = service_account_token(client.CoreV1Api(kube_api), namespace, "syncd", audiences=[])
    kubeconfig = token_kubeconfig(stack.kube, tmp_path_factory.mktemp("identity") / "kubeconfig", token)
    try:
        yield Identity(namespace, suffix, kubeconfig, token)
    finally:
        # Cluster-scoped, so they outlive the namespace; the last one is made by the `vault_auth` fixture.
        for kind, name in [
            ("clusterrolebinding", f"syncd{suffix}"),
            ("clusterrole", f"syncd{suffix}"),
            ("clusterrolebinding", f"vault-reviewer{suffix}"),
        ]:
            kubectl("delete", "--ignore-not-found", kind, name, kubeconfig=stack.kube.kubeconfig)


EXACT_GRANTS = {
    # (kind, apiGroup, resource, verb, resourceName or "" for any): everything the base grants, so
    # that any addition fails here. Secrets and ServiceAccounts only by the names its config uses.
    *(("ClusterRole", "", "namespaces", verb, "") for verb in ("list", "watch")),
    ("ClusterRole", "", "secrets", "create", ""),
    *(("ClusterRole", "", "secrets", verb, "regcred") for verb in ("list", "watch", "get", "patch", "delete")),
    *(("ClusterRole", "", "serviceaccounts", verb, "default") for verb in ("list", "watch", "get", "patch")),
    ("ClusterRole", "", "events", "create", ""),
    ("Role", "coordination.k8s.io", "leases", "create", ""),  # RBAC cannot limit create by name
    *(("Role", "coordination.k8s.io", "leases", verb, "syncd") for verb in ("get", "patch")),
}


def test_the_roles_grant_exactly_what_syncd_uses() -> None:
    docs = render("base")
    granted = set()
    for role in (find(docs, "ClusterRole", "syncd"), find(docs, "Role", "syncd-leader-election")):
        for rule in role["rules"]:
            assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, rule  # no nonResourceURLs
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for name in rule.get("resourceNames", [""]):
                        granted |= {(role["kind"], group, resource, verb, name) for verb in rule["verbs"]}
    assert granted == EXACT_GRANTS
    assert find(docs, "Role")["metadata"]["namespace"] == "syncd"
    for binding in (find(docs, "ClusterRoleBinding", "syncd"), find(docs, "RoleBinding", "syncd-leader-election")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "syncd", "namespace": "syncd"}]


def can_i(identity: Identity, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i`, asked by the ServiceAccount itself (a SelfSubjectAccessReview with its token)."""
    where = [] if namespace is None else ["--all-namespaces"] if namespace == ALL_NAMESPACES else ["-n", namespace]
    result = kubectl("auth", "can-i", verb, resource, *where, kubeconfig=identity.kubeconfig)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def test_rbac_grants_what_syncd_uses(identity: Identity, namespace: str) -> None:
    """`namespace` stands for any namespace syncd writes to; identity.namespace is its own."""
    needed = [
        ("list", "namespaces", None),
        ("watch", "namespaces", None),
        ("list", "secrets/regcred", ALL_NAMESPACES),
        ("watch", "secrets/regcred", ALL_NAMESPACES),
        ("create", "secrets", namespace),
        *((verb, "secrets/regcred", namespace) for verb in ("get", "patch", "delete")),
        ("list", "serviceaccounts/default", ALL_NAMESPACES),
        ("watch", "serviceaccounts/default", ALL_NAMESPACES),
        ("get", "serviceaccounts/default", namespace),
        ("patch", "serviceaccounts/default", namespace),
        ("create", "events", namespace),
        ("create", "leases.coordination.k8s.io", identity.namespace),
        *((verb, "leases.coordination.k8s.io/syncd", identity.namespace) for verb in ("get", "patch")),
    ]
    refused = [check for check in needed if not can_i(identity, *check)]
    assert refused == []


def test_rbac_refuses_what_syncd_does_not_use(identity: Identity, namespace: str) -> None:
    not_needed = [
        # No Secret but its own by name: not in its namespace, not in another, not cluster-wide.
        *(
            (verb, "secrets", where)
            for verb in ("get", "list", "watch")
            for where in secret_places(identity, namespace)
        ),
        *(
            (verb, "secrets/other", where)
            for verb in ("get", "list", "watch")
            for where in secret_places(identity, namespace)
        ),
        *((verb, "secrets/other", namespace) for verb in ("patch", "delete")),
        ("patch", "secrets", namespace),
        ("delete", "secrets", namespace),
        ("get", "serviceaccounts/builder", namespace),
        ("list", "serviceaccounts", ALL_NAMESPACES),
        ("get", "namespaces", None),
        ("create", "namespaces", None),
        ("patch", "namespaces", None),
        ("delete", "namespaces", None),
        ("update", "secrets", namespace),  # every write is a merge patch
        ("deletecollection", "secrets", namespace),
        ("create", "serviceaccounts", namespace),
        ("update", "serviceaccounts", namespace),
        ("delete", "serviceaccounts", ALL_NAMESPACES),
        ("create", "serviceaccounts/token", namespace),
        ("patch", "events", namespace),
        ("delete", "events", namespace),
        ("list", "events", ALL_NAMESPACES),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
        ("create", "rolebindings.rbac.authorization.k8s.io", identity.namespace),
        ("bind", "clusterroles.rbac.authorization.k8s.io", None),
        ("escalate", "clusterroles.rbac.authorization.k8s.io", None),
        ("get", "pods", namespace),
        ("create", "pods", identity.namespace),
        ("get", "configmaps", identity.namespace),
        ("update", "configmaps", identity.namespace),  # its own config
        ("create", "tokenreviews.authentication.k8s.io", None),
        ("impersonate", "users", None),
        # Leases only in its own namespace, and only get/create/patch there.
        *((verb, "leases.coordination.k8s.io", namespace) for verb in ("get", "create", "patch")),
        ("patch", "leases.coordination.k8s.io", "kube-system"),
        *((verb, "leases.coordination.k8s.io", identity.namespace) for verb in ("list", "watch", "update", "delete")),
        *((verb, "leases.coordination.k8s.io/other", identity.namespace) for verb in ("get", "patch")),
        ("*", "*", ALL_NAMESPACES),
    ]
    allowed = [check for check in not_needed if can_i(identity, *check)]
    assert allowed == []


def secret_places(identity: Identity, namespace: str) -> list[str]:
    """Its own namespace, a namespace it writes to, and cluster-wide."""
    return [identity.namespace, namespace, ALL_NAMESPACES]


def test_real_calls_outside_the_role_are_forbidden(
    identity: Identity, namespace: str, core_v1: client.CoreV1Api
) -> None:
    """Every call below is listed in docs/reliability.md (Security)."""
    api = config.new_client_from_config(config_file=str(identity.kubeconfig))
    core = client.CoreV1Api(api)
    other = client.V1Secret(metadata=client.V1ObjectMeta(name="team-token"), string_data={"token": "not-for-syncd"})
    for where in (namespace, identity.namespace):
        core_v1.create_namespaced_secret(where, other)
    by_name = "metadata.name=team-token"
    calls: dict[str, Callable[[], object]] = {
        "create namespace": lambda: core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=f"x{identity.suffix}"))
        ),
        "list pods": lambda: core.list_namespaced_pod(namespace),
        "read configmap": lambda: core.read_namespaced_config_map("syncd-config", identity.namespace),
        "lease elsewhere": lambda: client.CoordinationV1Api(api).read_namespaced_lease("syncd", namespace),
        "get another Secret": lambda: core.read_namespaced_secret("team-token", namespace),
        "get another Secret in its own namespace": lambda: core.read_namespaced_secret(
            "team-token", identity.namespace
        ),
        "list Secrets in a namespace": lambda: core.list_namespaced_secret(namespace),
        "list Secrets in its own namespace": lambda: core.list_namespaced_secret(identity.namespace),
        "list Secrets cluster-wide": core.list_secret_for_all_namespaces,
        "list Secrets by label": lambda: core.list_secret_for_all_namespaces(
            label_selector="app.kubernetes.io/managed-by=syncd"
        ),
        "list another Secret by name": lambda: core.list_secret_for_all_namespaces(field_selector=by_name),
        "list another Secret by name in a namespace": lambda: core.list_namespaced_secret(
            namespace, field_selector=by_name
        ),
        "watch Secrets cluster-wide": lambda: core.list_secret_for_all_namespaces(watch=True, timeout_seconds=1),
        "watch Secrets in a namespace": lambda: core.list_namespaced_secret(namespace, watch=True, timeout_seconds=1),
        "watch another Secret by name": lambda: core.list_secret_for_all_namespaces(
            watch=True, timeout_seconds=1, field_selector=by_name
        ),
        "list ServiceAccounts cluster-wide": core.list_service_account_for_all_namespaces,
        "patch another Secret": lambda: core.patch_namespaced_secret("team-token", namespace, {"data": {}}),
        "delete another Secret": lambda: core.delete_namespaced_secret("team-token", namespace),
    }
    for what, call in calls.items():
        with pytest.raises(ApiException) as forbidden:
            call()
        assert forbidden.value.status == 403, what
    # ...while the same client can do what syncd does (the 403s above are not a broken login).
    assert core.list_namespace(limit=1).items
    mine = "metadata.name=regcred"
    core.list_secret_for_all_namespaces(field_selector=mine)
    core.list_namespaced_secret(namespace, field_selector=mine)
    # Unread, the answer is the raw urllib3 response (the client's annotations know only the parsed list).
    watch = core.list_secret_for_all_namespaces(
        watch=True, timeout_seconds=1, _preload_content=False, field_selector=mine
    )
    watch.release_conn()  # type: ignore[attr-defined]
    core.list_service_account_for_all_namespaces(field_selector="metadata.name=default")


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_base_rbac_is_what_syncd_rbac_prints_for_each_variants_config(variant: str) -> None:
    """deploy/kustomize/base/rbac.yaml is generated; every overlay's config must need no more."""
    config_file = KUSTOMIZE / variant / "syncd.yaml"
    expected = rbac.manifests(load_config(config_file), namespace="syncd", service_account="syncd")
    committed = [d for d in yaml.safe_load_all((KUSTOMIZE / "base" / "rbac.yaml").read_text()) if d]
    assert committed == expected, "regenerate: syncd rbac --config deploy/kustomize/base/syncd.yaml > rbac.yaml"


def test_a_spec_the_rbac_does_not_grant_fails_alone_and_names_the_fix(
    stack: Stack,
    core_v1: client.CoreV1Api,
    identity: Identity,
    vault_auth: VaultAuth,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"g{uuid.uuid4().hex[:6]}"
    new_namespace(core_v1, target, {})
    specs = [
        {"name": name, "credentials": ["robot"], "namespaces": {"names": [target]}} for name in ("regcred", "unlisted")
    ]
    settings = {
        "instance": f"grant-{target}",
        "vault": vault_auth.config(stack),
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": vault_auth.path}}],
        "secrets": specs,
    }
    config_file = tmp_path / "syncd.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    code = main(["once", "--config", str(config_file), "--kubeconfig", str(identity.kubeconfig)])
    out = capsys.readouterr().out
    assert code == 1
    assert "regcred: success (1 created)" in out
    assert "unlisted: failure" in out
    assert "listing Secrets named 'unlisted' in all namespaces: HTTP 403 Forbidden" in out
    assert "syncd rbac --config" in out
    assert has_secret(core_v1, target)


@dataclass
class VaultAuth:
    """OpenBao's Kubernetes auth set up as the README's Vault setup says (role with audience=vault)."""

    mount: str
    path: str
    token_file: Path

    def config(self, stack: Stack) -> dict[str, Any]:
        auth = {"method": "kubernetes", "role": "syncd", "mount": self.mount, "token_file": str(self.token_file)}
        return {"address": stack.vault.address, "allow_http": True, "auth": auth}


@pytest.fixture(scope="module")
def vault_auth(
    stack: Stack, kube_api: client.ApiClient, identity: Identity, tmp_path_factory: pytest.TempPathFactory
) -> VaultAuth:
    core = client.CoreV1Api(kube_api)
    root = hvac.Client(url=stack.vault.address, token=stack.vault.token)
    path = f"deploy/{identity.suffix[1:]}"
    root.secrets.kv.v2.create_or_update_secret(path, secret={"username": "robot", "password": "deploy-1"})
    # The reviewer: a ServiceAccount bound to system:auth-delegator, as README step 1 binds Vault's.
    reviewer = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="vault-reviewer"))
    core.create_namespaced_service_account(identity.namespace, reviewer)
    client.RbacAuthorizationV1Api(kube_api).create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"vault-reviewer{identity.suffix}"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="vault-reviewer", namespace=identity.namespace)],
        )
    )
    mount = f"kubernetes{identity.suffix}"
    root.sys.enable_auth_method("kubernetes", path=mount)
    assert stack.kube.pki is not None
    root.auth.kubernetes.configure(
        kubernetes_host=stack.kube.url,
        kubernetes_ca_cert=stack.kube.pki.ca_cert.read_text(),
        token_reviewer_jwt=service_account_token(core, identity.namespace, "vault-reviewer", audiences=[]),
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    policy = f"syncd{identity.suffix}"
    root.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{\n  capabilities = ["read"]\n}}\n')
    root.auth.kubernetes.create_role(
        "syncd",
        bound_service_account_names=["syncd"],
        bound_service_account_namespaces=[identity.namespace],
        policies=[policy],
        audience="vault",
        ttl="1h",
        mount_point=mount,
    )
    # What the kubelet projects into the pod as the base says: a token of ServiceAccount syncd for its audience.
    projected = {v["name"]: v for v in pod_spec(render("base"))["volumes"]}["vault-token"]["projected"]
    [audience] = [source["serviceAccountToken"]["audience"] for source in projected["sources"]]
    token_file = tmp_path_factory.mktemp("vault-token") / "token"
    token_file.write_text(service_account_token(core, identity.namespace, "syncd", audiences=[audience]))
    return VaultAuth(mount, path, token_file)


def test_the_vault_token_and_the_api_token_are_not_interchangeable(
    stack: Stack, identity: Identity, vault_auth: VaultAuth
) -> None:
    login = hvac.Client(url=stack.vault.address).auth.kubernetes.login(
        "syncd", vault_auth.token_file.read_text(), mount_point=vault_auth.mount
    )
    assert login["auth"]["metadata"]["service_account_namespace"] == identity.namespace
    # syncd's Kubernetes API token is refused by the role (audience=vault)...
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=stack.vault.address).auth.kubernetes.login(
            "syncd", identity.api_token, mount_point=vault_auth.mount
        )
    # ...and the token for Vault is refused by the Kubernetes API.
    vault_kubeconfig = token_kubeconfig(
        stack.kube, identity.kubeconfig.with_name("vault-audience"), vault_auth.token_file.read_text()
    )
    denied = kubectl("get", "--raw", "/api", kubeconfig=vault_kubeconfig)
    assert denied.returncode != 0
    assert "Unauthorized" in denied.stderr


def _event_reasons(core: client.CoreV1Api, namespace: str) -> set[str | None]:
    return {event.reason for event in core.list_namespaced_event(namespace).items}


def _pull_secrets(core: client.CoreV1Api, namespace: str) -> list[str]:
    return pull_secret_names(core.read_namespaced_service_account("default", namespace))


def test_syncd_once_as_the_service_account_writes_prunes_and_records_events(
    stack: Stack,
    core_v1: client.CoreV1Api,
    identity: Identity,
    vault_auth: VaultAuth,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Create, prune with the reference syncd added, Events; then update, conflict, adopt and a
    retired spec, all with only the base RBAC (generated by `syncd rbac`)."""
    prefix = f"d{uuid.uuid4().hex[:6]}"
    instance = f"deploy-{prefix}"
    namespaces = [f"{prefix}-{i}" for i in range(3)]
    for name in namespaces:
        new_namespace(core_v1, name, {})
        default_service_account(core_v1, name, ["other"])

    def once(selection: dict[str, Any] | None, *, expect: int = 0, on_conflict: str = "skip", **top: Any) -> str:
        spec = {
            "name": "regcred",
            "credentials": ["robot"],
            "namespaces": selection,
            "service_accounts": ["default"],
            "on_conflict": on_conflict,
        }
        settings = {
            "instance": instance,
            "vault": vault_auth.config(stack),
            "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": vault_auth.path}}],
            "secrets": [spec] if selection else [{**spec, "name": "unused", "namespaces": {"names": ["none"]}}],
            **top,
        }
        config_file = tmp_path / f"syncd-{uuid.uuid4().hex[:6]}.yaml"
        config_file.write_text(yaml.safe_dump(settings))
        code = main(["once", "--config", str(config_file), "--kubeconfig", str(identity.kubeconfig)])
        captured = capsys.readouterr()
        assert code == expect, captured.out + captured.err
        assert selection is None or "HTTP 403" not in captured.out + captured.err
        return captured.out

    once({"patterns": [f"{prefix}-*"]})
    for name in namespaces:
        assert has_secret(core_v1, name)
        assert labels_of(core_v1.read_namespaced_secret("regcred", name))["app.kubernetes.io/managed-by"] == "syncd"
        assert _pull_secrets(core_v1, name) == ["other", "regcred"]
        assert _event_reasons(core_v1, name) == {"Synced"}  # Event failures are swallowed: this proves the grant

    kept, dropped = namespaces[:2], namespaces[2]
    once({"names": kept})
    assert not has_secret(core_v1, dropped)
    assert _pull_secrets(core_v1, dropped) == ["other"]
    for name in kept:
        assert has_secret(core_v1, name)
        assert _pull_secrets(core_v1, name) == ["other", "regcred"]

    # A foreign Secret of that name is a conflict (read by name), then adopted.
    foreign = f"{prefix}-foreign"
    new_namespace(core_v1, foreign, {})
    core_v1.create_namespaced_secret(foreign, client.V1Secret(metadata=client.V1ObjectMeta(name="regcred")))
    assert f"{foreign}: conflict" in once({"names": [*kept, foreign]}, expect=1)
    adopted = once({"names": [*kept, foreign]}, on_conflict="adopt")
    assert "1 adopted" in adopted
    # A rotation updates every namespace.
    hvac.Client(url=stack.vault.address, token=stack.vault.token).secrets.kv.v2.create_or_update_secret(
        vault_auth.path, secret={"username": "robot", "password": f"rotated-{prefix}"}
    )
    assert "3 updated" in once({"names": [*kept, foreign]})
    # Retired: every Secret of this instance deleted and its reference taken back.
    # (A config needs one spec: a placeholder the RBAC does not grant, so that run fails alone.)
    retired = once(None, expect=1, retired_secrets=["regcred"])
    # Three references: `foreign` has its controller-made `default` ServiceAccount too.
    assert "(removed specs): success (3 pruned, 3 unlinked)" in retired
    for name in kept:
        assert not has_secret(core_v1, name)
        assert _pull_secrets(core_v1, name) == ["other"]


def test_leader_election_works_as_the_service_account_in_its_namespace(
    kube_api: client.ApiClient, identity: Identity, namespace: str
) -> None:
    as_syncd = config.new_client_from_config(config_file=str(identity.kubeconfig))
    leases = client.CoordinationV1Api(kube_api)
    name = "syncd"  # the only Lease the Role grants by name (leader_election.name)
    elector = LeaderElector(
        as_syncd,
        namespace=identity.namespace,
        name=name,
        identity="deploy-test_1",
        lease_duration=dt.timedelta(seconds=3),
    )
    elector.start()
    try:
        assert elector.wait_for_leadership(15), "the ServiceAccount could not take the Lease in its namespace"
        assert lease_spec(leases.read_namespaced_lease(name, identity.namespace)).holder_identity == "deploy-test_1"
    finally:
        elector.stop(release=True)
    assert lease_spec(leases.read_namespaced_lease(name, identity.namespace)).holder_identity is None

    # The same elector pointed at another namespace never leads: the Role stops at its own namespace.
    elsewhere = LeaderElector(
        as_syncd, namespace=namespace, name=name, identity="deploy-test_2", lease_duration=dt.timedelta(seconds=3)
    )
    elsewhere.start()
    try:
        assert not elsewhere.wait_for_leadership(3)
    finally:
        elsewhere.stop(release=False)
    with pytest.raises(ApiException) as missing:
        leases.read_namespaced_lease(name, namespace)
    assert missing.value.status == 404


def test_syncd_run_as_the_service_account_leads_watches_and_releases(
    stack: Stack,
    kube_api: client.ApiClient,
    core_v1: client.CoreV1Api,
    identity: Identity,
    vault_auth: VaultAuth,
    tmp_path: Path,
) -> None:
    prefix = f"r{uuid.uuid4().hex[:6]}"
    lease = "syncd"  # the only Lease the Role grants by name (leader_election.name)
    settings: dict[str, Any] = {
        "instance": f"run-{prefix}",
        "vault": vault_auth.config(stack),
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": vault_auth.path}}],
        "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"selector": f"pull={prefix}"}}],
        "schedule": {"interval": "1h"},
        "leader_election": {"enabled": True, "namespace": identity.namespace, "name": lease, "lease_duration": "3s"},
    }
    new_namespace(core_v1, f"{prefix}-first", {"pull": prefix})
    daemon = SyncdProcess(settings, tmp_path / "daemon", identity.kubeconfig, {})
    daemon.start()
    try:
        wait_until(lambda: daemon.metric("syncd_leader") == 1, 20, "syncd to take the Lease as the ServiceAccount")
        daemon.wait_ready()
        wait_until(lambda: has_secret(core_v1, f"{prefix}-first"), 20, "the first sync")
        # A namespace labelled later is seen by the namespace watch (the schedule is an hour away).
        new_namespace(core_v1, f"{prefix}-later", {"pull": prefix})
        wait_until(lambda: has_secret(core_v1, f"{prefix}-later"), 20, "the watch-triggered sync")
        holder = lease_spec(
            client.CoordinationV1Api(kube_api).read_namespaced_lease(lease, identity.namespace)
        ).holder_identity
        assert holder
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    log = daemon.log()
    # Nothing was refused on the way: no watch restarted, no Event dropped, no call answered 403.
    refused = [
        line for line in log.splitlines() if re.search(r"watch of \S+ failed|could not record event|HTTP 403", line)
    ]
    assert refused == [], "\n".join(refused[:5])
    released = client.CoordinationV1Api(kube_api).read_namespaced_lease(lease, identity.namespace)
    assert lease_spec(released).holder_identity is None


def test_syncd_run_as_the_service_account_reloads_repairs_and_outlives_an_ungranted_spec(
    stack: Stack,
    core_v1: client.CoreV1Api,
    identity: Identity,
    vault_auth: VaultAuth,
    tmp_path: Path,
) -> None:
    prefix = f"w{uuid.uuid4().hex[:6]}"
    spec = {"name": "regcred", "credentials": ["robot"], "service_accounts": ["default"]}
    settings: dict[str, Any] = {
        "instance": f"run-{prefix}",
        "vault": vault_auth.config(stack),
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": vault_auth.path}}],
        "secrets": [{**spec, "namespaces": {"selector": f"pull={prefix}"}}],
        "schedule": {"interval": "1h"},
    }
    first, second = f"{prefix}-first", f"{prefix}-second"
    new_namespace(core_v1, first, {"pull": prefix})
    new_namespace(core_v1, second, {"other": prefix})
    default_service_account(core_v1, second)
    daemon = SyncdProcess(settings, tmp_path / "daemon", identity.kubeconfig, {})
    daemon.start()
    try:
        daemon.wait_ready()
        wait_until(lambda: has_secret(core_v1, first), 20, "the first sync")
        # A Secret deleted by hand comes back from the name-scoped watch, not the hourly schedule.
        core_v1.delete_namespaced_secret("regcred", first)
        wait_until(lambda: has_secret(core_v1, first), 20, "the watch-triggered repair")

        # Hot reload: a selector change moves the Secret; a spec the RBAC does not grant fails alone.
        settings["secrets"] = [
            {**spec, "namespaces": {"selector": f"other={prefix}"}},
            {**spec, "name": "unlisted", "namespaces": {"selector": f"other={prefix}"}},
        ]
        daemon.config_path.write_text(yaml.safe_dump({**settings, "server": {"address": f"127.0.0.1:{daemon.port}"}}))
        wait_until(lambda: has_secret(core_v1, second), 20, "the reloaded selector's namespace")
        wait_until(lambda: not has_secret(core_v1, first), 20, "the deselected namespace pruned")
        wait_until(lambda: _pull_secrets(core_v1, second) == ["regcred"], 20, "the reference in the new namespace")
        wait_until(
            lambda: daemon.metric("syncd_sync_runs_total", secret="unlisted", result="failure") >= 1,
            20,
            "the ungranted spec counted as a failure",
        )
        assert daemon.metric("syncd_config_reloads_total", result="success") == 1
        assert daemon.get("/healthz").status_code == 200  # no crash loop
        core_v1.delete_namespaced_secret("regcred", second)
        wait_until(lambda: has_secret(core_v1, second), 20, "a repair after the reload (its watch survived)")
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    log = daemon.log()
    assert "listing Secrets named 'unlisted' in all namespaces: HTTP 403 Forbidden" in log
    assert "syncd rbac --config" in log
    assert "Secrets named 'regcred'" not in log  # the granted spec was never refused
