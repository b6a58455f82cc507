"""A hot reload swaps the config only, counted at OpenBao's own audit log.

The daemon logs in with a token of this test's own policy, so that the audit entries made
with it are this daemon's alone: its logins (the token method's `auth/token/lookup-self`)
and its reads of each credential's path.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from kubernetes import client

from harness import Stack
from harness.syncd_process import Start, SyncdProcess, has_secret, new_namespace
from harness.wait import wait_until

pytestmark = pytest.mark.integration


def audited(stack: Stack, policy: str) -> dict[str, int]:
    """Requests by path, made with a token holding `policy`."""
    counts: dict[str, int] = {}
    for line in stack.vault.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") != "request" or policy not in (entry.get("auth") or {}).get("policies", []):
            continue
        path = entry["request"]["path"]
        counts[path] = counts.get(path, 0) + 1
    return counts


def password_in(core_v1: client.CoreV1Api, namespace: str) -> str:
    secret = core_v1.read_namespaced_secret("regcred", namespace)
    assert secret.data is not None
    auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
    return str(auths["ghcr.io"]["password"])


def reload_with(syncd: SyncdProcess, change: Any, reloads: int) -> None:
    config = yaml.safe_load(syncd.config_path.read_text())
    change(config)
    syncd.config_path.write_text(yaml.safe_dump(config))
    wait_until(lambda: syncd.metric("syncd_config_reloads_total", result="success") == reloads, 10, "the reload")


def test_a_reload_costs_no_login_and_fetches_only_the_credentials_it_changed(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_client: hvac.Client,
    prefix: str,
    tmp_path: Path,
    start_syncd: Start,
) -> None:
    policy, base = f"syncd-{prefix}", f"reload/{prefix}"
    vault_client.sys.create_or_update_policy(policy, f'path "secret/data/{base}/*" {{ capabilities = ["read"] }}')
    kv = vault_client.secrets.kv.v2
    for name, password in [("robot", "first"), ("robot-moved", "moved"), ("other", "other")]:
        kv.create_or_update_secret(f"{base}/{name}", secret={"username": "robot", "password": password})
    token_file = tmp_path / "token"
    token_file.write_text(vault_client.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"])
    new_namespace(core_v1, f"{prefix}-a", {"pull": f"a-{prefix}"})
    new_namespace(core_v1, f"{prefix}-b", {"pull": f"b-{prefix}"})
    selected_a = {"selector": f"pull=a-{prefix}"}
    config = {
        "vault": {
            "address": stack.vault.address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
        "credentials": [
            {"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": f"{base}/robot"}},
            {"name": "other", "registry": "quay.io", "vault": {"kv": 2, "path": f"{base}/other"}},
        ],
        "secrets": [
            {"name": "regcred", "credentials": ["robot"], "namespaces": selected_a},
            {"name": "othercred", "credentials": ["other"], "namespaces": selected_a},
        ],
        "schedule": {"interval": "1h"},
    }
    syncd = start_syncd(config)
    syncd.wait_ready()
    wait_until(lambda: has_secret(core_v1, f"{prefix}-a", "othercred"), 10, "the first Secrets")
    login, robot, moved, other = (
        "auth/token/lookup-self",
        f"secret/data/{base}/robot",
        f"secret/data/{base}/robot-moved",
        f"secret/data/{base}/other",
    )
    first = audited(stack, policy)
    assert (first.get(login), first.get(robot), first.get(other)) == (1, 1, 1)

    # Only the namespace selector changes: the Secret moves, and OpenBao hears nothing.
    reload_with(syncd, lambda c: c["secrets"][0]["namespaces"].update(selector=f"pull=b-{prefix}"), 1)
    wait_until(lambda: has_secret(core_v1, f"{prefix}-b"), 10, "the Secret in the newly selected namespace")
    wait_until(lambda: not has_secret(core_v1, f"{prefix}-a"), 10, "the Secret pruned from the old namespace")
    assert password_in(core_v1, f"{prefix}-b") == "first"
    assert audited(stack, policy) == first

    # One credential's path changes: that credential alone is read, with the same login.
    reload_with(syncd, lambda c: c["credentials"][0]["vault"].update(path=f"{base}/robot-moved"), 2)
    wait_until(lambda: password_in(core_v1, f"{prefix}-b") == "moved", 10, "the moved credential's Secret")
    last = audited(stack, policy)
    assert (last.get(login), last.get(robot), last.get(moved), last.get(other)) == (1, 1, 1, 1)
    assert last == {**first, moved: 1}
    print(f"OpenBao requests by syncd's token: at start {first}; after both reloads {last}")
