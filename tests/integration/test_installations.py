"""Several installations in one cluster (issue 10): each touches only what carries its identity.

Every test gives its installations instance names of their own, so that no other test's `once`
(which prunes its own instance's Secrets in namespaces it no longer selects) can reach them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import annotations_of, default_service_account, labels_of, pull_secret_names, resource_version
from harness.syncd_process import Start, base_config, has_secret
from harness.wait import wait_until
from syncd.core.values import ADDED_PULL_SECRETS_ANNOTATION, INSTANCE_LABEL
from tests.integration.conftest import RunSyncd, WriteConfig, plan_rows

pytestmark = pytest.mark.integration


def _instance(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def _config(path: str, instance: str | None, *specs: dict[str, Any], **top: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "vault": {},
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": path}}],
        "secrets": [{"credentials": ["robot"], "service_accounts": ["default"], **spec} for spec in specs],
        **top,
    }
    if instance is not None:
        config["instance"] = instance
    return config


def _with_default_account(core_v1: client.CoreV1Api, *namespaces: str, refs: tuple[str, ...] = ()) -> None:
    for namespace in namespaces:
        default_service_account(core_v1, namespace, refs)


def _refs(core_v1: client.CoreV1Api, namespace: str, account: str = "default") -> list[str]:
    return pull_secret_names(core_v1.read_namespaced_service_account(account, namespace))


def _versions(core_v1: client.CoreV1Api, *where: tuple[str, str]) -> dict[tuple[str, str], str]:
    return {(ns, name): resource_version(core_v1.read_namespaced_secret(name, ns)) for ns, name in where}


@pytest.mark.parametrize("named", [True, False], ids=["two-instances", "both-unnamed"])
def test_two_installations_never_prune_each_others_secrets_or_references(
    core_v1: client.CoreV1Api,
    prefix: str,
    vault_path: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    named: bool,
) -> None:
    """The report of issue 10: A (pull-a: team-a, team-b) and B (pull-b: team-b), each run by `once`."""
    team_a, team_b = make_namespaces(f"{prefix}-team-a", f"{prefix}-team-b")
    _with_default_account(core_v1, team_a, team_b)
    a_name, b_name = (_instance("a"), _instance("b")) if named else (None, None)
    pull_a, pull_b = f"{prefix}-pull-a", f"{prefix}-pull-b"
    # As written: two named instances, or two configs without `instance` (both the default one).
    a_config = _config(vault_path, a_name, {"name": pull_a, "namespaces": {"names": [team_a, team_b]}})
    b_config = _config(vault_path, b_name, {"name": pull_b, "namespaces": {"names": [team_b]}})
    a, b = write_config(a_config, own_instance=False), write_config(b_config, own_instance=False)
    for config in (a, b, a, b):
        run = run_syncd("once", config=config)
        assert run.code == 0, run.out + run.err
        assert "pruned" not in run.out
        assert "(removed specs)" not in run.out
    assert has_secret(core_v1, team_a, pull_a)
    assert has_secret(core_v1, team_b, pull_a)
    assert has_secret(core_v1, team_b, pull_b)
    assert _refs(core_v1, team_a) == [pull_a]
    assert _refs(core_v1, team_b) == [pull_a, pull_b]
    if named:
        labels = labels_of(core_v1.read_namespaced_secret(pull_b, team_b))
        assert labels[INSTANCE_LABEL] == b_name


def test_the_same_spec_name_in_two_instances_is_a_conflict_both_ways_with_no_ping_pong(
    stack: Stack,
    core_v1: client.CoreV1Api,
    prefix: str,
    vault_path: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    start_syncd: Start,
) -> None:
    (shared,) = make_namespaces(f"{prefix}-shared", labels={"pull": prefix})
    first, second = _instance("first"), _instance("second")
    daemons = []
    for instance in (first, second):
        settings = base_config(stack, tmp_path, vault_path, prefix)
        settings["instance"] = instance
        settings["schedule"] = {"interval": "1s", "jitter": "0s"}
        daemons.append(start_syncd(settings, name=instance))
        if not daemons[1:]:
            wait_until(lambda: has_secret(core_v1, shared), 20, "the first instance's Secret")
    owner, loser = daemons
    wait_until(lambda: loser.metric("syncd_namespaces", secret="regcred", state="conflict") == 1, 20, "the conflict")
    before = _versions(core_v1, (shared, "regcred"))
    writes_before = [
        d.metric("syncd_secret_writes_total", secret="regcred", operation="update", result="success") for d in daemons
    ]
    # Twenty scheduled syncs each (counted, not slept for), plus whatever their watches trigger.
    runs = [("success", owner), ("partial", loser)]
    runs_before = [d.metric("syncd_sync_runs_total", secret="regcred", result=result) for result, d in runs]
    wait_until(
        lambda: all(
            d.metric("syncd_sync_runs_total", secret="regcred", result=result) >= before_runs + 20
            for (result, d), before_runs in zip(runs, runs_before, strict=True)
        ),
        120,
        "twenty more syncs of each instance",
    )
    assert _versions(core_v1, (shared, "regcred")) == before, "a write happened: ping-pong"
    writes_after = [
        d.metric("syncd_secret_writes_total", secret="regcred", operation="update", result="success") for d in daemons
    ]
    assert writes_after == writes_before
    assert labels_of(core_v1.read_namespaced_secret("regcred", shared))[INSTANCE_LABEL] == first
    assert loser.metric("syncd_sync_runs_total", secret="regcred", result="partial") >= 20
    assert owner.metric("syncd_namespaces", secret="regcred", state="in_sync") == 1
    events = [e for e in core_v1.list_namespaced_event(shared).items if e.reason == "Conflict"]
    assert [e.message for e in events] == [f"regcred: managed by syncd instance {first!r}; left alone"]
    assert labels_of(events[0])[INSTANCE_LABEL] == second
    # `syncd status` of the losing instance says whose it is.
    status_config = base_config(stack, tmp_path, vault_path, prefix)
    status_config["instance"] = second
    status = run_syncd("status", "--output", "json", config=write_config(status_config))
    assert status.code == 1
    [row] = json.loads(status.out)
    assert (row["state"], row["detail"]) == ("conflict", f"managed by syncd instance {first!r}")


def _legacy_secret(core_v1: client.CoreV1Api, namespace: str, name: str) -> None:
    """What syncd 0.1.0 wrote: managed-by and spec labels, prune annotation, no instance label."""
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={"app.kubernetes.io/managed-by": "syncd", "syncd.io/secret": name},
                annotations={"syncd.io/prune": "true", "syncd.io/content-hash": "sha256:0"},
            ),
            type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": "eyJhdXRocyI6e319"},
        ),
    )


def test_a_legacy_secret_is_kept_by_others_and_taken_over_by_the_instance_naming_its_spec(
    core_v1: client.CoreV1Api,
    prefix: str,
    vault_path: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    selected, elsewhere = make_namespaces(f"{prefix}-selected", f"{prefix}-elsewhere")
    _with_default_account(core_v1, selected, elsewhere)
    legacy = f"{prefix}-legacy"
    for namespace in (selected, elsewhere):
        _legacy_secret(core_v1, namespace, legacy)
    other = _config(vault_path, _instance("other"), {"name": f"{prefix}-mine", "namespaces": {"names": [selected]}})
    assert run_syncd("once", config=write_config(other)).code == 0
    assert has_secret(core_v1, selected, legacy)
    assert has_secret(core_v1, elsewhere, legacy)

    owner = _instance("owner")
    naming = _config(vault_path, owner, {"name": legacy, "namespaces": {"names": [selected]}})
    preview = run_syncd("once", "--dry-run", "--output", "json", config=write_config(naming))
    [plan] = json.loads(preview.out)
    assert [(n["namespace"], n["action"], n["reason"]) for n in plan["namespaces"]] == [
        (selected, "update", "taken over from syncd 0.1.0 (no instance label)")
    ]
    run = run_syncd("once", config=write_config(naming))
    assert run.code == 0, run.out
    assert labels_of(core_v1.read_namespaced_secret(legacy, selected))[INSTANCE_LABEL] == owner
    # Not selected by the naming instance: still 0.1.0's, never pruned by an instance on a guess.
    left = core_v1.read_namespaced_secret(legacy, elsewhere)
    assert INSTANCE_LABEL not in labels_of(left)


def test_pruning_takes_back_only_the_references_syncd_added_and_retired_specs_are_pruned_by_once(
    core_v1: client.CoreV1Api,
    prefix: str,
    vault_path: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    keep, drop = make_namespaces(f"{prefix}-keep", f"{prefix}-drop")
    name = f"{prefix}-pull"
    _with_default_account(core_v1, keep, drop, refs=("other",))
    # Someone put a reference to that name on another ServiceAccount by hand: syncd must leave it.
    by_hand = client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="builder"), image_pull_secrets=[client.V1LocalObjectReference(name=name)]
    )
    core_v1.create_namespaced_service_account(drop, by_hand)
    instance = _instance("prune")
    spec = {"name": name, "namespaces": {"names": [keep, drop]}, "service_accounts": ["default", "builder"]}
    assert run_syncd("once", config=write_config(_config(vault_path, instance, spec))).code == 0
    assert _refs(core_v1, drop) == ["other", name]
    annotations = annotations_of(core_v1.read_namespaced_service_account("default", drop))
    assert annotations[ADDED_PULL_SECRETS_ANNOTATION] == f"{instance}/{name}"
    assert ADDED_PULL_SECRETS_ANNOTATION not in annotations_of(core_v1.read_namespaced_service_account("builder", drop))

    deselect = write_config(_config(vault_path, instance, {**spec, "namespaces": {"names": [keep]}}))
    preview = run_syncd("once", "--dry-run", "--output", "json", config=deselect)
    assert preview.code == 0, preview.out
    assert {(name, drop, "prune"), (name, drop, "unlink")} <= plan_rows(preview.out)
    assert run_syncd("once", config=deselect).code == 0
    assert not has_secret(core_v1, drop, name)
    assert _refs(core_v1, drop) == ["other"]
    assert _refs(core_v1, drop, "builder") == [name]  # not syncd's to take back
    assert not annotations_of(core_v1.read_namespaced_service_account("default", drop)).get(
        ADDED_PULL_SECRETS_ANNOTATION
    )

    # The spec leaves the config for retired_secrets: `once` prunes its Secret and reference.
    replacement = {"name": f"{prefix}-new", "namespaces": {"names": [keep]}}
    retire = write_config(_config(vault_path, instance, replacement, retired_secrets=[name]))
    preview = run_syncd("once", "--dry-run", "--output", "json", config=retire)
    removed = next(r for r in json.loads(preview.out) if r["secret"] == "(removed specs)")
    assert [(n["namespace"], n["action"]) for n in removed["namespaces"]] == [(keep, "prune")]
    assert [(a["namespace"], a["service_account"], a["action"]) for a in removed["service_accounts"]] == [
        (keep, "default", "unlink")
    ]
    assert has_secret(core_v1, keep, name)  # a dry run writes nothing
    run = run_syncd("once", config=retire)
    assert run.code == 0, run.out
    assert not has_secret(core_v1, keep, name)
    assert _refs(core_v1, keep) == ["other", f"{prefix}-new"]


def test_a_daemon_started_with_a_retired_spec_prunes_it_and_its_references(
    stack: Stack,
    core_v1: client.CoreV1Api,
    prefix: str,
    vault_path: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    start_syncd: Start,
) -> None:
    (namespace,) = make_namespaces(f"{prefix}-retire", labels={"pull": prefix})
    _with_default_account(core_v1, namespace, refs=("other",))
    instance, old = _instance("retire"), f"{prefix}-old"
    spec = {"name": old, "namespaces": {"names": [namespace]}}
    assert run_syncd("once", config=write_config(_config(vault_path, instance, spec))).code == 0
    assert _refs(core_v1, namespace) == ["other", old]

    # The running config still edits `default` (references are taken back only from the
    # ServiceAccounts a config names: RBAC grants no others).
    settings = base_config(stack, tmp_path, vault_path, prefix, service_accounts=["default"])
    settings.update(instance=instance, retired_secrets=[old])
    daemon = start_syncd(settings)
    wait_until(lambda: not has_secret(core_v1, namespace, old), 20, "the retired spec's Secret pruned at start")
    wait_until(lambda: _refs(core_v1, namespace) == ["other", "regcred"], 20, "the old reference replaced")
    assert "retired secret specs pruned" in daemon.log()
