"""`vault.allow_http`: syncd refuses an http:// Vault unless the config says so, and warns when it does.

Run as users run it, `syncd` in a process of its own, against the harness's OpenBao: it listens on
loopback without TLS, and loopback is no exception.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from kubernetes import client

from harness import Stack

pytestmark = pytest.mark.integration

REFUSED = (
    "is plain HTTP: syncd's Vault token, its login and every credential it reads would cross the network "
    "unencrypted; use https://, or set vault.allow_http: true to accept that"
)
WARNED = "is plain HTTP (vault.allow_http: true)"


def _syncd(*args: str, config: Path, vault_addr: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("VAULT_ADDR", "VAULT_TOKEN")}
    if vault_addr is not None:
        env["VAULT_ADDR"] = vault_addr
    argv = [sys.executable, "-m", "syncd", *args, "--config", str(config), "--log-format", "json"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)


def _write(tmp_path: Path, vault: dict[str, Any], **top: Any) -> Path:
    document = {
        "vault": vault,
        "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": "plain-http/robot"}}],
        "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"names": ["plain-http"]}}],
        **top,
    }
    path = tmp_path / f"syncd-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_check_config_refuses_plain_http_unless_the_config_allows_it(stack: Stack, tmp_path: Path) -> None:
    address = stack.vault.address
    assert address.startswith("http://127.0.0.1:")

    refused = _syncd("check-config", config=_write(tmp_path, {"address": address}))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert f"  vault.address: {address!r} {REFUSED}" in refused.stderr.splitlines()

    # The address syncd would use: $VAULT_ADDR, when vault.address is not set.
    from_env = _syncd("check-config", config=_write(tmp_path, {}), vault_addr=address)
    assert from_env.returncode == 2
    assert f"  vault.address: not set, and $VAULT_ADDR {address!r} {REFUSED}" in from_env.stderr.splitlines()

    for vault in ({"address": address, "allow_http": True}, {"allow_http": True}):
        allowed = _syncd("check-config", config=_write(tmp_path, vault), vault_addr=address)
        assert (allowed.returncode, allowed.stderr) == (0, "")
        assert "valid (1 credentials, 1 secret specs)" in allowed.stdout


def _warnings(stderr: str) -> list[str]:
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [str(record["message"]) for record in records if record["level"] == "warning"]


def test_syncd_warns_at_start_when_plain_http_is_allowed_and_still_works(
    stack: Stack, tmp_path: Path, vault_client: hvac.Client, core_v1: client.CoreV1Api
) -> None:
    namespace = f"plain-http-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    path = f"plain-http/{uuid.uuid4().hex[:8]}"
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={"username": "robot", "password": "p-1"})
    token_file = tmp_path / "vault-token"
    token_file.write_text(stack.vault.token)
    vault = {
        "address": stack.vault.address,
        "allow_http": True,
        "auth": {"method": "token", "token_file": str(token_file)},
    }
    config = _write(
        tmp_path,
        vault,
        instance=f"http-{uuid.uuid4().hex[:8]}",
        credentials=[{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": path}}],
        secrets=[{"name": "regcred", "credentials": ["robot"], "namespaces": {"names": [namespace]}}],
    )
    once = _syncd("once", "--kubeconfig", str(stack.kube.kubeconfig), config=config)
    assert once.returncode == 0, once.stderr
    assert [w for w in _warnings(once.stderr) if WARNED in w] == [
        f"Vault at {stack.vault.address} {WARNED}: syncd's Vault token, its login and every credential it "
        "reads cross the network unencrypted"
    ]
    assert core_v1.read_namespaced_secret("regcred", namespace).type == "kubernetes.io/dockerconfigjson"
