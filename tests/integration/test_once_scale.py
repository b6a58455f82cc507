"""One source call per credential however many namespaces; an idle run writes nothing."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import resource_version
from tests.integration.conftest import RunSyncd, WriteConfig, secrets_named

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("helper_env")]
NAMESPACES = 200


def vault_reads(audit_log: Path, path: str) -> int:
    """Requests for `secret/data/<path>` in OpenBao's own audit log: counted at the server."""
    count = 0
    for line in audit_log.read_text().splitlines():
        entry = json.loads(line)
        request = entry.get("request", {})
        if entry.get("type") == "request" and request.get("operation") == "read":
            count += request.get("path") == f"secret/data/{path}"
    return count


@pytest.fixture
def counted_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`docker-credential-counted`: the real pass helper, behind a shim that logs each call."""
    calls = tmp_path / "helper-calls"
    shim = tmp_path / "bin" / "docker-credential-counted"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho call >> "{calls}"\nexec docker-credential-pass "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_one_fetch_per_credential_over_200_namespaces_and_an_idle_run_writes_nothing(
    stack: Stack,
    core_v1: client.CoreV1Api,
    vault_client: hvac.Client,
    counted_helper: Path,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    path = f"registry/{uuid.uuid4().hex[:8]}"
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={"username": "robot", "password": "p-1"})
    stack.helper.store(stack.registry.host, stack.registry.username, stack.registry.password)
    make_namespaces(*(f"{prefix}-{i:03d}" for i in range(NAMESPACES)))
    config = write_config(
        {
            "vault": {},
            "credentials": [
                {"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": path}},
                {"name": "local", "registry": stack.registry.host, "helper": "counted"},
            ],
            # Two specs share the vault credential: still one fetch per run.
            "secrets": [
                {"name": "both", "credentials": ["robot", "local"], "namespaces": {"patterns": [f"{prefix}-*"]}},
                {"name": "robot-only", "credentials": ["robot"], "namespaces": {"patterns": [f"{prefix}-00*"]}},
            ],
        }
    )
    first = run_syncd("once", config=config, log_level="info")
    assert first.code == 0, first.err
    assert len(secrets_named(core_v1, "both", prefix)) == NAMESPACES
    assert vault_reads(stack.vault.audit_log, path) == 1
    assert counted_helper.read_text().count("call") == 1

    versions = {ns: resource_version(s) for ns, s in secrets_named(core_v1, "both", prefix).items()}
    second = run_syncd("once", config=config, log_level="info")
    assert second.code == 0, second.err
    assert {ns: resource_version(s) for ns, s in secrets_named(core_v1, "both", prefix).items()} == versions
    assert "both: success (200 unchanged)" in second.out
    assert vault_reads(stack.vault.audit_log, path) == 2
    assert counted_helper.read_text().count("call") == 2
