"""`syncd run` against the real servers: watches, expiry refresh, endpoints, reload, SIGTERM."""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
from pathlib import Path

import hvac
import pytest
import yaml
from kubernetes import client

from harness import Stack
from harness.kube_objects import annotations_of, lease_spec, resource_version, secret_data
from harness.syncd_process import Start, base_config, has_secret, new_namespace
from harness.wait import wait_until
from tests.metric_names import SPEC_METRICS

pytestmark = pytest.mark.integration


def test_new_namespace_and_deleted_secret_are_repaired_within_5s_without_a_source_call(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_path: str,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    new_namespace(core_v1, f"{prefix}-first", {"pull": prefix})
    syncd = start_syncd(base_config(stack, tmp_path, vault_path, prefix))
    syncd.wait_ready()
    wait_until(lambda: has_secret(core_v1, f"{prefix}-first"), 10, "the first namespace's Secret")
    calls = syncd.metric("syncd_source_requests_total", credential="robot", source="vault", result="success")
    assert calls == 1

    new_namespace(core_v1, f"{prefix}-second", {"pull": prefix})
    took = wait_until(lambda: has_secret(core_v1, f"{prefix}-second"), 5, "a new namespace's Secret")
    core_v1.delete_namespaced_secret("regcred", f"{prefix}-first")
    took_back = wait_until(lambda: has_secret(core_v1, f"{prefix}-first"), 5, "a deleted Secret to come back")
    edited = core_v1.read_namespaced_secret("regcred", f"{prefix}-second")
    edited.data = {**secret_data(edited), ".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}
    core_v1.replace_namespaced_secret("regcred", f"{prefix}-second", edited)
    wait_until(
        lambda: (
            json.loads(
                base64.b64decode(
                    secret_data(core_v1.read_namespaced_secret("regcred", f"{prefix}-second"))[".dockerconfigjson"]
                )
            )["auths"]
            != {}
        ),
        5,
        "a hand-edited Secret to be repaired",
    )
    assert syncd.metric("syncd_source_requests_total", credential="robot", source="vault", result="success") == calls
    print(f"new namespace: {took:.2f}s, deleted Secret back: {took_back:.2f}s")


def test_short_lived_credential_is_refreshed_before_it_expires_whatever_the_interval(
    stack: Stack,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    """A helper that hands out a new token on every call (as ecr-login does), valid 6 s."""
    bin_dir, counter = tmp_path / "bin", tmp_path / "counter"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-rotating"
    helper.write_text(
        f"#!/bin/sh\nn=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 ))\necho $n > {counter}\n"
        'printf \'{"ServerURL":"r.example","Username":"AWS","Secret":"token-%s"}\' "$n"\n'
    )
    helper.chmod(0o755)
    new_namespace(core_v1, f"{prefix}-ecr", {"pull": prefix})
    config = {
        "credentials": [{"name": "ecr", "registry": "r.example", "helper": "rotating", "lifetime": "6s"}],
        "secrets": [{"name": "ecr", "credentials": ["ecr"], "namespaces": {"selector": f"pull={prefix}"}}],
        "schedule": {"interval": "1h"},
    }
    start_syncd(config, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})

    def synced_at_and_token() -> tuple[str, str]:
        secret = core_v1.read_namespaced_secret("ecr", f"{prefix}-ecr")
        auths = json.loads(base64.b64decode(secret_data(secret)[".dockerconfigjson"]))["auths"]
        return annotations_of(secret)["syncd.io/synced-at"], auths["r.example"]["password"]

    wait_until(lambda: has_secret(core_v1, f"{prefix}-ecr", "ecr"), 10, "the first write")
    seen = [(time.monotonic(), synced_at_and_token()[1])]
    for _ in range(3):
        wait_until(lambda: synced_at_and_token()[1] != seen[-1][1], 6, "a rewrite before the 6 s lifetime ends")
        seen.append((time.monotonic(), synced_at_and_token()[1]))
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(seen)]
    assert all(gap < 6 for gap in gaps), gaps


def test_metrics_endpoint_names_and_sigterm_exits_0_releasing_the_lease(
    stack: Stack,
    kube_api: client.ApiClient,
    core_v1: client.CoreV1Api,
    vault_path: str,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=f"{prefix}-syncd")))
    config = base_config(stack, tmp_path, vault_path, prefix)
    config["leader_election"] = {"enabled": True, "namespace": f"{prefix}-syncd", "lease_duration": "3s"}
    syncd = start_syncd(config)
    wait_until(lambda: syncd.metric("syncd_leader") == 1, 15, "leadership")
    syncd.wait_ready()
    text = syncd.metrics()
    missing = [name for name in SPEC_METRICS if f"# TYPE {name.removesuffix('_total')}" not in text]
    assert missing == []
    assert syncd.get("/healthz").status_code == 200
    started = time.monotonic()
    assert syncd.terminate(timeout=10) == 0
    assert time.monotonic() - started < 10
    lease = client.CoordinationV1Api(kube_api).read_namespaced_lease("syncd", f"{prefix}-syncd")
    assert not lease_spec(lease).holder_identity or lease_spec(lease).lease_duration_seconds == 1
    assert '"message": "stopped"' in syncd.log()


def test_config_reload_applies_a_valid_change_and_keeps_the_old_config_on_a_bad_one(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_path: str,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    new_namespace(core_v1, f"{prefix}-r", {"pull": prefix})
    config = base_config(stack, tmp_path, vault_path, prefix)
    syncd = start_syncd(config)
    wait_until(lambda: has_secret(core_v1, f"{prefix}-r"), 10, "the first spec's Secret")

    # A ConfigMap mount updates by swapping a symlink: do the same.
    real = syncd.config_path.parent / "v1.yaml"
    real.write_text(syncd.config_path.read_text())
    syncd.config_path.unlink()
    syncd.config_path.symlink_to(real)
    bad = syncd.config_path.parent / "v2.yaml"
    bad.write_text("secrets: [{name: Not_Valid}]\n")
    syncd.config_path.unlink()
    syncd.config_path.symlink_to(bad)
    wait_until(lambda: syncd.metric("syncd_config_reloads_total", result="failure") == 1, 10, "a rejected reload")
    assert syncd.get("/healthz").status_code == 200

    extended = yaml.safe_load(real.read_text())
    extended["secrets"].append({**extended["secrets"][0], "name": "second"})
    good = syncd.config_path.parent / "v3.yaml"
    good.write_text(yaml.safe_dump(extended))
    syncd.config_path.unlink()
    syncd.config_path.symlink_to(good)
    wait_until(lambda: has_secret(core_v1, f"{prefix}-r", "second"), 10, "the new spec's Secret")
    assert syncd.metric("syncd_config_reloads_total", result="success") == 1

    good.write_text(yaml.safe_dump({**extended, "secrets": extended["secrets"][1:]}))
    wait_until(lambda: not has_secret(core_v1, f"{prefix}-r", "regcred"), 10, "the removed spec's Secret pruned")
    assert has_secret(core_v1, f"{prefix}-r", "second")


def test_a_login_the_registry_rejects_is_not_rolled_out(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_client: hvac.Client,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    path = f"verify/{prefix}"
    good = {"username": stack.registry.username, "password": stack.registry.password}
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret=good)
    new_namespace(core_v1, f"{prefix}-v", {"pull": prefix})
    config = base_config(stack, tmp_path, path, prefix)
    # A short lifetime makes the daemon fetch (and verify) again within seconds.
    config["credentials"] = [
        {
            "name": "robot",
            "registry": stack.registry.host,
            "vault": {"kv": 2, "path": path},
            "verify": True,
            "lifetime": "3s",
        }
    ]
    syncd = start_syncd(config)
    wait_until(lambda: has_secret(core_v1, f"{prefix}-v"), 10, "the verified login's Secret")
    assert syncd.metric("syncd_credential_verifications_total", credential="robot", result="success") >= 1
    before = core_v1.read_namespaced_secret("regcred", f"{prefix}-v")

    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={**good, "password": "not-the-password"})
    wait_until(
        lambda: syncd.metric("syncd_credential_verifications_total", credential="robot", result="rejected") >= 1,
        10,
        "a rejected verification",
    )
    wait_until(
        lambda: syncd.metric("syncd_sync_runs_total", secret="regcred", result="failure") >= 1, 5, "a failed run"
    )
    after = core_v1.read_namespaced_secret("regcred", f"{prefix}-v")
    assert resource_version(after) == resource_version(before)
    assert after.data == before.data
    assert "not-the-password" not in syncd.log()
