"""`syncd rbac`: the Lease's Role and binding follow leader election (issue 23).

Without leader election syncd never touches the Lease, and its namespace need not exist: a Role
printed there made `kubectl apply` of the whole output fail.
"""

from __future__ import annotations

from typing import Any

import yaml

from syncd.config import Config, parse_config
from syncd.manifests import rbac


def config(**leader_election: Any) -> Config:
    return parse_config(
        {
            "credentials": [{"name": "robot", "registries": ["ghcr.io"], "docker_config": "/cfg.json"}],
            "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"names": ["a"]}}],
            "leader_election": leader_election,
        }
    )


def namespaced(docs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"].startswith("Role")
    ]


def test_without_leader_election_no_role_or_binding_is_printed() -> None:
    for settings in ({}, {"enabled": False, "namespace": "nowhere"}):
        docs = rbac.manifests(config(**settings), namespace="syncd", service_account="syncd")
        assert namespaced(docs) == []
        assert [d["kind"] for d in docs][:2] == ["ClusterRole", "ClusterRoleBinding"]
        text = rbac.render_yaml(config(**settings), config_path="c.yaml", namespace="syncd", service_account="syncd")
        assert "coordination.k8s.io" not in text


def test_with_leader_election_the_lease_role_is_in_its_namespace_by_name() -> None:
    settings = config(enabled=True, namespace="elect", name="my-lease")
    docs = rbac.manifests(settings, namespace="syncd", service_account="robot")
    assert namespaced(docs) == [
        ("Role", "elect", "robot-leader-election"),
        ("RoleBinding", "elect", "robot-leader-election"),
    ]
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["my-lease"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "robot-leader-election",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "robot", "namespace": "syncd"}]
    text = rbac.render_yaml(settings, config_path="c.yaml", namespace="syncd", service_account="robot")
    assert "&id" not in text  # no YAML anchors: each rule spelled out
    assert [d for d in yaml.safe_load_all(text) if d] == docs
