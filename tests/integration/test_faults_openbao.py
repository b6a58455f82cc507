"""Vault (OpenBao) failing under a running daemon: stopped, restarted empty, syncd's token revoked,
a policy that denies the path. Secrets stay exactly as they were while it fails, the failure is
counted and logged once per run naming the credential and path, and syncd recovers by itself.

The stop/start test uses a Vault of its own (a dev server restarts empty); the token and policy
test uses the session's, with its own AppRole mount, policy and path.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import secret_data
from harness.syncd_process import Start, SyncdProcess, has_secret, new_namespace
from harness.vault import Vault
from harness.wait import wait_until
from tests.integration.faults import (
    Login,
    add_unmanaged,
    check_secrets,
    error_lines,
    fault_capture,  # noqa: F401 - a fixture, used through usefixtures
    record_daemon,
    secret_value,
    snapshot,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fault_capture")]
FAST = {"interval": "2s", "jitter": "0s", "retry": {"min": "1s", "max": "2s"}}


def _spec(prefix: str) -> dict[str, Any]:
    return {"name": "regcred", "credentials": ["robot"], "namespaces": {"selector": f"pull={prefix}"}}


def _runs(syncd: SyncdProcess, result: str) -> float:
    return syncd.metric("syncd_sync_runs_total", secret="regcred", result=result)


def _fetches(syncd: SyncdProcess, result: str) -> float:
    return syncd.metric("syncd_source_requests_total", credential="robot", source="vault", result=result)


def _passwords(core_v1: client.CoreV1Api, namespaces: list[str]) -> set[str | None]:
    """The ghcr.io password in each namespace's Secret (None where there is no Secret yet)."""
    found: set[str | None] = set()
    for namespace in namespaces:
        if not has_secret(core_v1, namespace):
            found.add(None)
            continue
        data = secret_data(core_v1.read_namespaced_secret("regcred", namespace))[".dockerconfigjson"]
        found.add(json.loads(base64.b64decode(data))["auths"]["ghcr.io"]["password"])
    return found


def test_vault_stopped_then_back_empty_changes_nothing_until_its_data_is_back(
    private_vault: Vault,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
    request: pytest.FixtureRequest,
) -> None:
    vault = hvac.Client(url=private_vault.address, token=private_vault.token)
    first = secret_value("vault-before-outage")
    vault.secrets.kv.v2.create_or_update_secret("robot", secret={"username": "robot", "password": first})
    namespaces = [f"{prefix}-a", f"{prefix}-b"]
    for namespace in namespaces:
        new_namespace(core_v1, namespace, {"pull": prefix})
    add_unmanaged(core_v1, namespaces)
    unmanaged = snapshot(core_v1, "not-ours", namespaces)
    token_file = tmp_path / "vault-token"
    token_file.write_text(private_vault.token)
    config = {
        "vault": {
            "address": private_vault.address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": "robot"}}],
        "secrets": [_spec(prefix)],
        "schedule": FAST,
    }
    syncd = start_syncd(config)
    try:
        wait_until(lambda: _passwords(core_v1, namespaces) == {first}, 15, "the first rollout")
        check_secrets(core_v1, "regcred", namespaces, {"ghcr.io": Login("robot", first)})

        # 1. Vault down: every scheduled run fails; Secrets stay; the watch still serves from the cache.
        private_vault.stop()
        wait_until(lambda: _fetches(syncd, "failure") >= 2, 15, "failed fetches while Vault is down")
        new_namespace(core_v1, f"{prefix}-during", {"pull": prefix})
        namespaces.append(f"{prefix}-during")
        wait_until(lambda: snapshot(core_v1, "regcred", namespaces)[namespaces[-1]][0] != "absent", 10, "cached write")
        before = snapshot(core_v1, "regcred", namespaces)
        assert _runs(syncd, "failure") >= 2
        down = [e for e in error_lines(syncd.log()) if "cannot connect to Vault" in e["message"]]
        assert down, syncd.log()[-3000:]
        assert down[0]["message"] == (
            f"sync failed: credential 'robot': cannot connect to Vault at {private_vault.address} (secret/robot)"
        )
        assert syncd.get("/healthz").status_code == 200

        # 2. Vault back, empty (a dev server keeps nothing): every read is "not found", nothing is blanked.
        private_vault.start()
        wait_until(lambda: any("nothing at secret/robot" in e["message"] for e in error_lines(syncd.log())), 15, "404")
        failures = _runs(syncd, "failure")
        wait_until(lambda: _runs(syncd, "failure") >= failures + 2, 15, "more failed runs against the empty Vault")
        assert snapshot(core_v1, "regcred", namespaces) == before
        [empty, *_] = [e for e in error_lines(syncd.log()) if "nothing at" in e["message"]]
        assert empty["message"].startswith("sync failed: credential 'robot': nothing at secret/robot (HTTP 404")

        # 3. The data is back (rotated meanwhile): the next run rolls it out, without a restart of syncd.
        second = secret_value("vault-after-outage")
        vault = hvac.Client(url=private_vault.address, token=private_vault.token)
        vault.secrets.kv.v2.create_or_update_secret("robot", secret={"username": "robot", "password": second})
        wait_until(lambda: _passwords(core_v1, namespaces) == {second}, 15, "the rotated password everywhere")
        check_secrets(core_v1, "regcred", namespaces, {"ghcr.io": Login("robot", second)})
        assert snapshot(core_v1, "not-ours", list(unmanaged)) == unmanaged
        # One error line per failed run, each naming the credential.
        errors = error_lines(syncd.log())
        assert all(e["message"].startswith("sync failed: credential 'robot': ") for e in errors)
        assert len(errors) == _runs(syncd, "failure")
    finally:
        record_daemon(request.node.nodeid, syncd)


def _approle(root: hvac.Client, tmp_path: Path, path: str) -> tuple[dict[str, Any], str, str]:
    """An AppRole login for syncd whose policy may read `secret/data/<path>`: (auth config, mount, policy)."""
    mount, policy = f"approle-{uuid.uuid4().hex[:8]}", f"syncd-{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    root.sys.enable_auth_method("approle", path=mount)
    root.auth.approle.create_or_update_approle("syncd", token_policies=[policy], mount_point=mount)
    role_id = root.auth.approle.read_role_id("syncd", mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("syncd", mount_point=mount)["data"]["secret_id"]
    secret_value("approle-secret-id", value=secret_id)
    secret_id_file = tmp_path / "secret-id"
    secret_id_file.write_text(secret_id)
    auth = {"method": "approle", "mount": mount, "role_id": role_id, "secret_id_file": str(secret_id_file)}
    return auth, mount, policy


def _logins(stack: Stack, mount: str) -> int:
    entries = [json.loads(line) for line in stack.vault.audit_log.read_text().splitlines()]
    return sum(1 for e in entries if e.get("type") == "response" and e["request"].get("path") == f"auth/{mount}/login")


def test_revoked_token_is_replaced_and_a_denying_policy_holds_the_rollout(
    stack: Stack,
    vault_client: hvac.Client,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
    request: pytest.FixtureRequest,
) -> None:
    path = f"faults/{prefix}"
    kv = vault_client.secrets.kv.v2
    v1 = secret_value("approle-v1")
    kv.create_or_update_secret(path, secret={"username": "robot", "password": v1})
    auth, mount, policy = _approle(vault_client, tmp_path, path)
    namespaces = [f"{prefix}-a", f"{prefix}-b"]
    for namespace in namespaces:
        new_namespace(core_v1, namespace, {"pull": prefix})
    add_unmanaged(core_v1, namespaces)
    unmanaged = snapshot(core_v1, "not-ours", namespaces)
    config = {
        "vault": {"address": stack.vault.address, "allow_http": True, "auth": auth},
        # A short lifetime: fetched again every 2 s (a plain interval may reuse a fetch up to 10 s old).
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": path}, "lifetime": "3s"}],
        "secrets": [_spec(prefix)],
        "schedule": FAST,
    }
    syncd = start_syncd(config)
    try:
        wait_until(lambda: _passwords(core_v1, namespaces) == {v1}, 15, "the first rollout")
        assert _logins(stack, mount) == 1

        # 1. syncd's token revoked behind its back: the next read is a 403, syncd logs in again and carries on.
        vault_client.sys.revoke_prefix(f"auth/{mount}/login")
        v2 = secret_value("approle-v2")
        kv.create_or_update_secret(path, secret={"username": "robot", "password": v2})
        wait_until(lambda: _passwords(core_v1, namespaces) == {v2}, 15, "the rotation, read with a new login")
        assert _logins(stack, mount) == 2
        assert _runs(syncd, "failure") == 0  # replaced within the run: nothing to count as a failure
        assert f"Vault refused syncd's token reading secret/{path}; logging in again" in syncd.log()

        # 2. The policy now denies the path: SourceDenied, counted, logged; the Secrets keep v2.
        before = snapshot(core_v1, "regcred", namespaces)
        vault_client.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["deny"] }}')
        v3 = secret_value("approle-v3")
        kv.create_or_update_secret(path, secret={"username": "robot", "password": v3})
        wait_until(lambda: _runs(syncd, "failure") >= 2, 15, "runs failing on the denied path")
        assert snapshot(core_v1, "regcred", namespaces) == before
        denied = [e for e in error_lines(syncd.log()) if "denied" in e["message"]]
        assert denied[0]["message"] == (
            f"sync failed: credential 'robot': Vault denied reading secret/{path} (HTTP 403): "
            "check the policy of syncd's login"
        )
        assert _fetches(syncd, "failure") >= 2

        # 3. The policy fixed: the next run rolls v3 out, without a restart.
        vault_client.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
        wait_until(lambda: _passwords(core_v1, namespaces) == {v3}, 15, "the rollout once the policy allows it")
        check_secrets(core_v1, "regcred", namespaces, {"ghcr.io": Login("robot", v3)})
        assert snapshot(core_v1, "not-ours", namespaces) == unmanaged
        assert len(error_lines(syncd.log())) == _runs(syncd, "failure")
    finally:
        record_daemon(request.node.nodeid, syncd)
