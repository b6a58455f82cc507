"""Secret values never appear in logs (at DEBUG), CLI output, metrics or exceptions."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from harness import Stack
from syncd.app import ClusterOptions, build_reconciler
from syncd.config import load_config
from tests.integration.conftest import RunSyncd, WriteConfig

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("helper_env")]


def forms(*values: str) -> list[str]:
    """Each secret as it could leak: raw, base64 of it, and base64 of user:pass logins."""
    found = []
    for value in values:
        found += [value, base64.b64encode(value.encode()).decode()]
    return found


def test_everything_at_debug_leaks_no_secret(
    stack: Stack,
    vault_client: hvac.Client,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    vault_password = f"vault-secret-{uuid.uuid4().hex}"
    file_password = f"file-secret-{uuid.uuid4().hex}"
    vault_client.secrets.kv.v2.create_or_update_secret(
        f"leak/{prefix}", secret={"username": "robot", "password": vault_password}
    )
    stack.helper.store(stack.registry.host, stack.registry.username, stack.registry.password)
    docker_config = tmp_path / "config.json"
    login = base64.b64encode(f"fileuser:{file_password}".encode()).decode()
    docker_config.write_text(json.dumps({"auths": {"quay.io": {"auth": login}}}))
    make_namespaces(f"{prefix}-a", f"{prefix}-b")
    config = write_config(
        {
            "vault": {},
            "credentials": [
                {"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": f"leak/{prefix}"}},
                {"name": "local", "registry": stack.registry.host, "helper": "pass"},
                {"name": "file", "docker_config": str(docker_config), "registries": ["quay.io"]},
                {"name": "missing", "registry": "ghcr.io", "vault": {"kv": 2, "path": f"absent/{prefix}"}},
            ],
            "secrets": [
                {"name": "all", "credentials": ["robot", "local", "file"], "namespaces": {"patterns": [f"{prefix}-*"]}},
                {"name": "broken", "credentials": ["missing"], "namespaces": {"patterns": [f"{prefix}-*"]}},
            ],
        }
    )
    runs = [
        run_syncd("once", "--dry-run", config=config),
        run_syncd("once", config=config),
        run_syncd("once", "--output", "json", config=config),
        run_syncd("status", config=config),
        run_syncd("status", "--output", "json", config=config),
    ]
    assert runs[1].code == 1  # "broken" fails; "all" is written
    registry = CollectorRegistry()
    reconciler = build_reconciler(load_config(config), ClusterOptions(str(stack.kube.kubeconfig)), registry)
    results = reconciler.sync_all()
    captured = "\n".join(
        [r.out + r.err for r in runs]
        + [caplog.text, generate_latest(registry).decode(), repr(results)]
        + [str(e) for r in results for e in r.errors]
    )
    assert "sync finished" in captured
    assert "absent/" in captured  # the not-found error is there, and says where
    secrets = forms(vault_password, stack.registry.password, file_password)
    secrets += [login, base64.b64encode(f"robot:{vault_password}".encode()).decode()]
    leaked = [s for s in secrets if s in captured]
    assert leaked == []
