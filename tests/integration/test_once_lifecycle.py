"""Rotation, a dead Vault, conflicts, adoption and pruning, against the real servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from harness.kube_objects import (
    default_service_account,
    labels_of,
    name_of,
    pull_secret_names,
    resource_version,
    secret_data,
)
from harness.vault import Vault
from tests.integration.conftest import RunSyncd, WriteConfig, auths, dockerconfig_of, plan_rows, secrets_named

pytestmark = pytest.mark.integration


def _config(vault: Vault, token_file: Path, path: str, prefix: str, **spec: Any) -> dict[str, Any]:
    token_file.write_text(vault.token)
    return {
        "vault": {
            "address": vault.address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": path}}],
        "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"patterns": [f"{prefix}-*"]}, **spec}],
    }


def test_rotation_updates_every_namespace_and_a_dead_vault_changes_nothing(
    private_vault: Vault,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    vault = hvac.Client(url=private_vault.address, token=private_vault.token)
    vault.secrets.kv.v2.create_or_update_secret("robot", secret={"username": "robot", "password": "before-1"})
    namespaces = make_namespaces(*(f"{prefix}-{i}" for i in range(5)))
    config = write_config(_config(private_vault, tmp_path / "token", "robot", prefix))
    assert run_syncd("once", config=config).code == 0

    vault.secrets.kv.v2.create_or_update_secret("robot", secret={"username": "robot", "password": "after-2"})
    rotated = run_syncd("once", config=config)
    assert rotated.code == 0, rotated.err
    assert "5 updated" in rotated.out
    for namespace in namespaces:
        assert auths(dockerconfig_of(core_v1, namespace, "regcred"))["ghcr.io"]["password"] == "after-2"

    before = {
        ns: (dockerconfig_of(core_v1, ns, "regcred"), resource_version(s))
        for ns, s in secrets_named(core_v1, "regcred", prefix).items()
    }
    private_vault.stop()
    dead = run_syncd("once", config=config)
    assert dead.code == 1
    assert "credential 'robot': cannot connect to Vault" in dead.out
    error_lines = [line for line in dead.err.splitlines() if '"level": "error"' in line]
    assert len(error_lines) == 1
    assert "credential 'robot'" in error_lines[0]
    after = {
        ns: (dockerconfig_of(core_v1, ns, "regcred"), resource_version(s))
        for ns, s in secrets_named(core_v1, "regcred", prefix).items()
    }
    assert after == before


def test_foreign_secret_is_a_conflict_until_adopted(
    private_vault: Vault,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    hvac.Client(url=private_vault.address, token=private_vault.token).secrets.kv.v2.create_or_update_secret(
        "robot", secret={"username": "robot", "password": "mine-1"}
    )
    ours, theirs = make_namespaces(f"{prefix}-ours", f"{prefix}-theirs")
    foreign = client.V1Secret(
        metadata=client.V1ObjectMeta(name="regcred", labels={"owner": "someone-else"}),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": "eyJhdXRocyI6e319"},  # {"auths":{}}
    )
    core_v1.create_namespaced_secret(theirs, foreign)
    skip = write_config(_config(private_vault, tmp_path / "token", "robot", prefix))

    preview = run_syncd("once", "--dry-run", "--output", "json", config=skip)
    assert preview.code == 1
    assert plan_rows(preview.out) == {("regcred", ours, "create"), ("regcred", theirs, "conflict")}
    run = run_syncd("once", config=skip)
    assert run.code == 1
    assert f"{theirs}: conflict" in run.out
    untouched = core_v1.read_namespaced_secret("regcred", theirs)
    assert secret_data(untouched)[".dockerconfigjson"] == "eyJhdXRocyI6e319"
    assert "app.kubernetes.io/managed-by" not in labels_of(untouched)
    assert auths(dockerconfig_of(core_v1, ours, "regcred"))["ghcr.io"]["password"] == "mine-1"
    assert _event_reasons(core_v1, theirs) == {"Conflict"}
    assert _event_reasons(core_v1, ours) == {"Synced"}
    warning = core_v1.list_namespaced_event(theirs).items[0]
    assert warning.type == "Warning"
    assert warning.involved_object.kind == "Secret"
    assert warning.involved_object.name == "regcred"

    adopt = write_config(_config(private_vault, tmp_path / "token", "robot", prefix, on_conflict="adopt"))
    adopted = run_syncd("once", config=adopt)
    assert adopted.code == 0, adopted.out
    taken = core_v1.read_namespaced_secret("regcred", theirs)
    assert labels_of(taken)["app.kubernetes.io/managed-by"] == "syncd"
    assert labels_of(taken)["owner"] == "someone-else"  # a merge: what others set stays
    assert auths(dockerconfig_of(core_v1, theirs, "regcred"))["ghcr.io"]["password"] == "mine-1"


def test_prune_removes_only_the_managed_secret_and_its_service_account_reference(
    private_vault: Vault,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    hvac.Client(url=private_vault.address, token=private_vault.token).secrets.kv.v2.create_or_update_secret(
        "robot", secret={"username": "robot", "password": f"p-{uuid.uuid4().hex[:6]}"}
    )
    keep, drop = make_namespaces(f"{prefix}-keep", f"{prefix}-drop")
    for namespace in (keep, drop):
        default_service_account(core_v1, namespace, ["other"])
        core_v1.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="unrelated")))
    spec = {"service_accounts": ["default"], "prune": True}
    both = write_config(_config(private_vault, tmp_path / "token", "robot", prefix, **spec))
    assert run_syncd("once", config=both).code == 0
    for namespace in (keep, drop):
        refs = pull_secret_names(core_v1.read_namespaced_service_account("default", namespace))
        assert refs == ["other", "regcred"]
    assert run_syncd("once", config=both).code == 0  # idempotent: still one reference each
    assert pull_secret_names(core_v1.read_namespaced_service_account("default", keep)) == [
        "other",
        "regcred",
    ]

    only_keep = _config(private_vault, tmp_path / "token", "robot", prefix, **spec)
    only_keep["secrets"][0]["namespaces"] = {"names": [keep]}
    pruned = run_syncd("once", config=write_config(only_keep))
    assert pruned.code == 0, pruned.out
    assert set(secrets_named(core_v1, "regcred", prefix)) == {keep}
    assert pull_secret_names(core_v1.read_namespaced_service_account("default", drop)) == ["other"]
    assert name_of(core_v1.read_namespaced_secret("unrelated", drop)) == "unrelated"


def _event_reasons(core_v1: client.CoreV1Api, namespace: str) -> set[str | None]:
    return {event.reason for event in core_v1.list_namespaced_event(namespace).items}
