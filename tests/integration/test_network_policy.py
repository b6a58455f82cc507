"""The NetworkPolicy of the Helm chart and the Kustomize base: rules that follow the config,
off-switches, and objects the real apiserver accepts (it validates NetworkPolicies: a bad CIDR
or an unknown field is refused).

The test apiserver enforces nothing about traffic (no CNI): what is checked is the object, the
ports it names and that it selects syncd's pods. Which connections a CNI then allows is the
NetworkPolicy API's semantics, explained in values.yaml (networkPolicy:).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import Stack
from harness.charts import helm
from harness.kubectl import kubectl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "deploy" / "helm" / "syncd"
KUSTOMIZE = REPO_ROOT / "deploy" / "kustomize"
RELEASE = "syncd"
INSTANCE_LABEL = "app.kubernetes.io/instance"
VARIANTS = ["base", "overlays/ha"]
Doc = dict[str, Any]

DNS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
APISERVER = [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]
POD_IDENTITY = {
    "ports": [{"port": 80, "protocol": "TCP"}],
    "to": [{"ipBlock": {"cidr": "169.254.170.23/32"}}, {"ipBlock": {"cidr": "fd00:ec2::23/128"}}],
}


def tcp(*ports: int) -> list[Doc]:
    return [{"port": port, "protocol": "TCP"} for port in ports]


def in_namespace(name: str) -> list[Doc]:
    return [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}]


# --- helm, kubectl, rendering ------------------------------------------------------------------


def helm_template(helm_home: Path, values: Doc, namespace: str = "syncd") -> subprocess.CompletedProcess[str]:
    """`helm template` with `values` as a values file (lists and nulls as given, unlike --set)."""
    values_file = helm_home / f"values-{uuid.uuid4().hex[:8]}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    return helm(helm_home, "template", RELEASE, str(CHART), "--namespace", namespace, "-f", str(values_file))


def render(helm_home: Path, values: Doc | None = None, namespace: str = "syncd") -> list[Doc]:
    result = helm_template(helm_home, values or {}, namespace)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def _kustomized(path: str) -> str:
    result = kubectl("kustomize", path)
    assert result.returncode == 0, result.stderr
    return result.stdout


def kustomize(variant: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(_kustomized(str(KUSTOMIZE / variant))) if doc]


def policies(docs: list[Doc]) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == "NetworkPolicy"]


def policy(docs: list[Doc]) -> Doc:
    [only] = policies(docs)
    return only


def spec_of(helm_home: Path, values: Doc | None = None) -> Doc:
    return dict(policy(render(helm_home, values))["spec"])


def egress_by_ports(spec: Doc) -> list[tuple[list[Doc], list[Doc] | None]]:
    return [(rule.get("ports", []), rule.get("to")) for rule in spec["egress"]]


def dump(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


# --- what the chart renders ----------------------------------------------------------------------


def test_default_policy_selects_syncds_pods_and_is_the_kustomize_bases(helm_home: Path) -> None:
    charted, based = render(helm_home), kustomize("base")
    chart_policy, base_policy = policy(charted), policy(based)
    assert chart_policy["metadata"]["name"] == base_policy["metadata"]["name"] == "syncd"
    assert chart_policy["metadata"]["namespace"] == base_policy["metadata"]["namespace"] == "syncd"
    for docs, found in ((charted, chart_policy), (based, base_policy)):
        pod_labels = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert found["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # The chart's selector adds the release (two releases must not select each other's pods).
    chart_spec = chart_policy["spec"]
    assert chart_spec["podSelector"]["matchLabels"].pop(INSTANCE_LABEL) == RELEASE
    assert chart_spec == base_policy["spec"]
    # Every overlay keeps the base's policy.
    for variant in VARIANTS:
        assert policy(kustomize(variant))["spec"] == base_policy["spec"], variant


def test_default_rules(helm_home: Path) -> None:
    spec = spec_of(helm_home)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": tcp(8080), "from": [{"namespaceSelector": {}}]}]
    assert egress_by_ports(spec) == [
        (DNS, None),  # any destination: NodeLocal DNSCache is matched by no pod selector
        (APISERVER, None),  # any destination: Cilium's ipBlocks match no cluster node
        (tcp(8200), in_namespace("vault")),  # config.vault.address https://vault.vault.svc:8200
        (tcp(443), None),  # registries, token services, cloud APIs
    ]


@pytest.mark.parametrize(
    ("values", "types"),
    [
        ({"networkPolicy": {"enabled": False}}, None),
        ({"networkPolicy": {"ingress": {"enabled": False}}}, ["Egress"]),
        ({"networkPolicy": {"egress": {"enabled": False}}}, ["Ingress"]),
        ({"networkPolicy": {"ingress": {"enabled": False}, "egress": {"enabled": False}}}, None),
    ],
    ids=["off", "egress-only", "ingress-only", "neither"],
)
def test_off_switches(helm_home: Path, values: Doc, types: list[str] | None) -> None:
    docs = render(helm_home, values)
    if types is None:
        assert policies(docs) == []
        # Nothing else changes.
        assert len(docs) == len(render(helm_home)) - 1
        return
    spec = policy(docs)["spec"]
    assert spec["policyTypes"] == types
    # A policy type left out is not restricted at all: its rules are not rendered either.
    assert ("ingress" in spec, "egress" in spec) == ("Ingress" in types, "Egress" in types)


@pytest.mark.parametrize(
    ("config", "ports"),
    [
        ({"server": {"address": "0.0.0.0:9090"}}, [9090]),
        ({"server": {"address": "127.0.0.1:8081"}, "admission": {"enabled": True}}, [8081, 8443]),
        ({"admission": {"enabled": True, "address": "0.0.0.0:9443"}}, [8080, 9443]),
        ({"admission": {"enabled": False, "address": "0.0.0.0:9443"}}, [8080]),
    ],
    ids=["metrics-port", "webhook-default-port", "webhook-port", "webhook-off"],
)
def test_ingress_ports_follow_the_config(helm_home: Path, config: Doc, ports: list[int]) -> None:
    docs = render(helm_home, {"config": config})
    spec = policy(docs)["spec"]
    assert [rule["ports"] for rule in spec["ingress"]] == [tcp(port) for port in ports]
    # The metrics rule names the port the container serves on.
    [container] = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == ports[0]
    assert spec["ingress"][0]["from"] == [{"namespaceSelector": {}}]
    if len(ports) > 1:
        assert "from" not in spec["ingress"][1]  # the apiserver: from anywhere unless narrowed


def test_ingress_sources_come_from_the_values(helm_home: Path) -> None:
    monitoring = in_namespace("monitoring")
    control_plane = [{"ipBlock": {"cidr": "172.16.0.0/28"}}]
    extra = {"from": [{"podSelector": {"matchLabels": {"app": "debug"}}}], "ports": tcp(9999)}
    spec = spec_of(
        helm_home,
        {
            "config": {"admission": {"enabled": True}},
            "networkPolicy": {
                "ingress": {"metrics": {"from": monitoring}, "admission": {"from": control_plane}},
                "extraIngress": [extra],
            },
        },
    )
    assert spec["ingress"] == [
        {"ports": tcp(8080), "from": monitoring},
        {"ports": tcp(8443), "from": control_plane},
        extra,
    ]
    # An empty list is the API's "from anywhere".
    assert "from" not in spec_of(helm_home, {"networkPolicy": {"ingress": {"metrics": {"from": []}}}})["ingress"][0]


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("https://vault.vault.svc:8200", (tcp(8200), in_namespace("vault"))),
        ("https://vault-active.secrets.svc.cluster.local", (tcp(443), in_namespace("secrets"))),
        ("https://openbao.bao.svc.corp.example:8201/", (tcp(8201), in_namespace("bao"))),
        ("https://vault.example.com:8200", (tcp(8200), None)),
        ("http://10.0.0.7", (tcp(80), None)),
        ("https://vault", (tcp(443), None)),
    ],
)
def test_the_vault_rule_follows_the_address(helm_home: Path, address: str, rule: tuple[list[Doc], Any]) -> None:
    assert egress_by_ports(spec_of(helm_home, {"config": {"vault": {"address": address}}}))[2] == rule


def test_the_vault_rule_from_the_values(helm_home: Path) -> None:
    outside = [{"ipBlock": {"cidr": "10.20.0.0/24"}}]
    values = {"networkPolicy": {"egress": {"vault": {"to": outside, "ports": tcp(8443)}}}}
    assert egress_by_ports(spec_of(helm_home, values))[2] == (tcp(8443), outside)
    # `to: []`: any destination, the port still from the address.
    assert egress_by_ports(spec_of(helm_home, {"networkPolicy": {"egress": {"vault": {"to": []}}}}))[2] == (
        tcp(8200),
        None,
    )
    # No Vault in the config (credentials from helpers): no Vault rule.
    helper_only = {
        "vault": None,
        "credentials": [{"name": "ecr", "registry": "1.dkr.ecr.eu-west-1.amazonaws.com", "helper": "ecr-login"}],
        "secrets": [{"name": "ecr-pull", "credentials": ["ecr"], "namespaces": {"names": ["a"]}}],
    }
    rules = egress_by_ports(spec_of(helm_home, {"config": helper_only}))
    assert rules == [(DNS, None), (APISERVER, None), (tcp(443), None), (POD_IDENTITY["ports"], POD_IDENTITY["to"])]
    # Vault from $VAULT_ADDR: the chart cannot know its port, and says so.
    refused = helm_template(helm_home, {"config": {"vault": {"address": None}}})
    assert refused.returncode != 0
    assert "config.vault has no address" in refused.stderr
    assert "networkPolicy.egress.vault.ports" in refused.stderr


def test_registry_ports_follow_the_credentials(helm_home: Path) -> None:
    credentials = [
        {"name": "harbor", "registry": "harbor.corp.example:5000", "vault": {"path": "harbor"}},
        {"name": "local", "registry": "http://registry.lab.example", "vault": {"path": "lab"}},
        {
            "name": "files",
            "docker_config": "/etc/docker/config.json",
            "registries": ["[fd00::5]:5001", "https://quay.example:8443/v2/", "ghcr.io"],
        },
    ]
    secrets = [{"name": "regcred", "credentials": ["harbor", "local", "files"], "namespaces": {"names": ["a"]}}]
    spec = spec_of(helm_home, {"config": {"credentials": credentials, "secrets": secrets}})
    assert egress_by_ports(spec)[3] == (tcp(80, 443, 5000, 5001, 8443), None)
    assert POD_IDENTITY not in spec["egress"]  # only with a docker-credential-ecr-login credential
    # Set in the values: as given.
    narrowed = {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": tcp(443)}
    rules = egress_by_ports(spec_of(helm_home, {"networkPolicy": {"egress": {"registries": narrowed}}}))
    assert rules[3] == (narrowed["ports"], narrowed["to"])


def test_egress_destinations_and_extra_rules_come_from_the_values(helm_home: Path) -> None:
    kube_dns = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    control_plane = [{"ipBlock": {"cidr": "10.0.0.10/32"}}, {"ipBlock": {"cidr": "10.0.0.11/32"}}]
    proxy = {"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}], "ports": tcp(3128)}
    spec = spec_of(
        helm_home,
        {
            "networkPolicy": {
                "egress": {"dns": {"to": kube_dns}, "apiserver": {"to": control_plane, "ports": tcp(6443)}},
                "extraEgress": [proxy],
            }
        },
    )
    assert egress_by_ports(spec) == [
        (DNS, kube_dns),
        (tcp(6443), control_plane),
        (tcp(8200), in_namespace("vault")),
        (tcp(443), None),
        (proxy["ports"], proxy["to"]),
    ]


def test_unknown_network_policy_values_are_refused(helm_home: Path) -> None:
    for values in (
        {"networkPolicy": {"egress": {"dns": {"cidrs": ["0.0.0.0/0"]}}}},
        {"networkPolicy": {"ingress": {"metrics": {"from": [{"ipBlock": {"except": ["10.0.0.0/8"]}}]}}}},
        {"networkPolicy": {"egress": {"apiserver": {"ports": [{"port": 443, "protocol": "HTTP"}]}}}},
    ):
        refused = helm_template(helm_home, values)
        assert refused.returncode != 0, values
        assert "networkPolicy" in refused.stderr


def test_helm_lint_is_clean_with_every_rule(helm_home: Path, tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(EVERY_RULE))
    result = helm(helm_home, "lint", "--strict", str(CHART), "-f", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


# --- the Kustomize base ------------------------------------------------------------------------


def _port_of(address: str) -> int:
    host_port = address.split("://", 1)[-1].split("/", 1)[0]
    _, sep, port = host_port.rpartition(":")
    return int(port) if sep and port.isdigit() else (80 if address.startswith("http://") else 443)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_kustomize_policy_names_the_ports_of_its_config(variant: str) -> None:
    docs = kustomize(variant)
    config = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["syncd.yaml"])
    spec = policy(docs)["spec"]
    assert spec["ingress"][0]["ports"] == tcp(_port_of(config["server"]["address"]))
    vault_host = config["vault"]["address"].split("://", 1)[1].split(":", 1)[0].split("/", 1)[0]
    assert vault_host.split(".")[2] == "svc"
    assert egress_by_ports(spec)[2] == (
        tcp(_port_of(config["vault"]["address"])),
        in_namespace(vault_host.split(".")[1]),
    )


def test_an_overlay_drops_the_policy_as_the_base_documents(tmp_path: Path) -> None:
    """The `$patch: delete` in networkpolicy.yaml's comment, pasted into an overlay, works."""
    comment = (KUSTOMIZE / "base" / "networkpolicy.yaml").read_text().split("#   patches:\n", 1)[1]
    pasted = []
    for line in comment.splitlines():
        if not line.startswith("#    "):
            break
        pasted.append(line.removeprefix("#"))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(KUSTOMIZE / "base", overlay)
    patches = textwrap.dedent("\n".join(pasted))
    (overlay / "kustomization.yaml").write_text(f"resources:\n  - {base}\npatches:\n{textwrap.indent(patches, '  ')}\n")
    docs = [doc for doc in yaml.safe_load_all(_kustomized(str(overlay))) if doc]
    assert policies(docs) == []
    assert sorted(d["kind"] for d in docs) == sorted(
        d["kind"] for d in kustomize("base") if d["kind"] != "NetworkPolicy"
    )


# --- a real apiserver --------------------------------------------------------------------------

# Every rule the chart can render, with every field spelled out (the apiserver would default an
# omitted protocol, and the read-back below compares what was stored).
EVERY_RULE: Doc = {
    "config": {
        "server": {"address": "0.0.0.0:9090"},
        "admission": {"enabled": True, "address": "0.0.0.0:9443"},
        "vault": {"address": "https://vault-active.secrets.svc.cluster.local:8200"},
        "credentials": [
            {"name": "harbor", "registry": "harbor.corp.example:5000", "vault": {"path": "harbor"}},
            {"name": "ecr", "registry": "1.dkr.ecr.eu-west-1.amazonaws.com", "helper": "ecr-login"},
        ],
        "secrets": [{"name": "regcred", "credentials": ["harbor", "ecr"], "namespaces": {"names": ["a"]}}],
    },
    "networkPolicy": {
        "ingress": {
            "metrics": {"from": in_namespace("monitoring")},
            "admission": {"from": [{"ipBlock": {"cidr": "172.16.0.0/28"}}]},
        },
        "egress": {
            "apiserver": {"to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}]},
            "registries": {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12"]}}],
            },
        },
        "extraIngress": [{"from": [{"podSelector": {"matchLabels": {"app": "debug"}}}], "ports": tcp(9999)}],
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}], "ports": [{"port": 3128, "protocol": "TCP"}]}],
    },
}


@pytest.fixture
def release_namespace(stack: Stack) -> str:
    name = f"netpol-{uuid.uuid4().hex[:8]}"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    result = kubectl("apply", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=dump([namespace]))
    assert result.returncode == 0, result.stderr
    return name


def dry_run(stack: Stack, docs: list[Doc]) -> subprocess.CompletedProcess[str]:
    return kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        kubeconfig=stack.kube.kubeconfig,
        stdin=dump(docs),
    )  # fmt: skip


@pytest.mark.parametrize(
    "values",
    [
        {},
        EVERY_RULE,
        {"networkPolicy": {"ingress": {"enabled": False}}},
        {"networkPolicy": {"egress": {"enabled": False}}},
    ],
    ids=["default", "every-rule", "egress-only", "ingress-only"],
)
def test_the_apiserver_accepts_the_charts_policy(
    stack: Stack, helm_home: Path, release_namespace: str, values: Doc
) -> None:
    docs = policies(render(helm_home, values, namespace=release_namespace))
    result = dry_run(stack, docs)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings either
    assert result.stdout.split() == ["networkpolicy.networking.k8s.io/syncd"]


def test_the_apiserver_accepts_the_kustomize_policy(stack: Stack) -> None:
    docs = kustomize("base")
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    created = kubectl("apply", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=dump([namespace]))
    assert created.returncode == 0, created.stderr
    result = dry_run(stack, policies(docs))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.split() == ["networkpolicy.networking.k8s.io/syncd"]


def test_the_apiserver_stores_every_rule_as_rendered(stack: Stack, helm_home: Path, release_namespace: str) -> None:
    rendered = policy(render(helm_home, EVERY_RULE, namespace=release_namespace))
    created = kubectl("create", "-f", "-", kubeconfig=stack.kube.kubeconfig, stdin=dump([rendered]))
    assert created.returncode == 0, created.stderr
    got = kubectl(
        "get", "-n", release_namespace, "networkpolicy", "syncd", "-o", "json", kubeconfig=stack.kube.kubeconfig
    )
    assert got.returncode == 0, got.stderr
    spec = json.loads(got.stdout)["spec"]
    assert spec == rendered["spec"]
    assert [rule["ports"] for rule in spec["ingress"]] == [tcp(9090), tcp(9443), tcp(9999)]
    assert egress_by_ports(spec)[2] == (tcp(8200), in_namespace("secrets"))
    assert egress_by_ports(spec)[3][0] == tcp(443, 5000)
    assert POD_IDENTITY in spec["egress"]


def test_the_apiserver_refuses_a_policy_it_could_not_enforce(
    stack: Stack, helm_home: Path, release_namespace: str
) -> None:
    """The dry runs above are real validation: a CIDR the schema lets through is refused there."""
    values = {"networkPolicy": {"egress": {"apiserver": {"to": [{"ipBlock": {"cidr": "10.0.0.300/32"}}]}}}}
    result = dry_run(stack, policies(render(helm_home, values, namespace=release_namespace)))
    assert result.returncode != 0
    assert "spec.egress[1].to[0].ipBlock.cidr" in result.stderr
