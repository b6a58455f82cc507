"""`syncd once` against the real apiserver, OpenBao and docker-credential-pass (issue 3's "done when")."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import annotations_of, labels_of
from tests.integration.conftest import RunSyncd, WriteConfig, auths, dockerconfig_of, secrets_named

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("helper_env")]


def kubectl_dockerconfig(server: str, username: str, password: str) -> bytes:
    argv = ["kubectl", "create", "secret", "docker-registry", "x", f"--docker-server={server}"]
    argv += [f"--docker-username={username}", f"--docker-password={password}", "--dry-run=client", "-o", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return base64.b64decode(json.loads(out)["data"][".dockerconfigjson"])


def vault_credential(name: str, path: str, registry: str = "ghcr.io") -> dict[str, Any]:
    return {"name": name, "registry": registry, "vault": {"kv": 2, "mount": "secret", "path": path}}


def helper_credential(stack: Stack, name: str = "local") -> dict[str, Any]:
    return {"name": name, "registry": stack.registry.host, "helper": "pass"}


@pytest.fixture
def credentials(stack: Stack, vault_client: hvac.Client) -> dict[str, str]:
    """A fresh KV v2 path holding a robot login, and the test registry's login in pass."""
    path = f"registry/{uuid.uuid4().hex[:8]}"
    password = f"vault-pass-{uuid.uuid4().hex[:12]}"
    vault_client.secrets.kv.v2.create_or_update_secret(path, secret={"username": "robot", "password": password})
    stack.helper.store(stack.registry.host, stack.registry.username, stack.registry.password)
    return {"path": path, "password": password}


def test_once_merges_vault_and_helper_credentials_into_selected_namespaces(
    stack: Stack,
    core_v1: client.CoreV1Api,
    credentials: dict[str, str],
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    make_namespaces(f"{prefix}-payments", f"{prefix}-team-a", f"{prefix}-team-b", f"{prefix}-team-x", f"{prefix}-z")
    make_namespaces(f"{prefix}-labelled", labels={"pull": prefix})
    make_namespaces(f"{prefix}-unselected")
    config = write_config(
        {
            "vault": {},
            "credentials": [vault_credential("ghcr", credentials["path"]), helper_credential(stack)],
            "secrets": [
                {
                    "name": "regcred",
                    "credentials": ["ghcr", "local"],
                    "namespaces": {
                        "names": [f"{prefix}-payments"],
                        "patterns": [f"{prefix}-team-*"],
                        "selector": f"pull={prefix}",
                        "exclude": [f"{prefix}-team-x"],
                    },
                }
            ],
        }
    )
    run = run_syncd("once", config=config)
    assert run.code == 0, run.err
    written = secrets_named(core_v1, "regcred", prefix)
    assert sorted(written) == sorted(f"{prefix}-{n}" for n in ("payments", "team-a", "team-b", "labelled"))
    for namespace, secret in written.items():
        assert secret.type == "kubernetes.io/dockerconfigjson"
        assert labels_of(secret)["app.kubernetes.io/managed-by"] == "syncd"
        content = dockerconfig_of(core_v1, namespace, "regcred")
        assert annotations_of(secret)["syncd.io/credentials"] == "ghcr,local"
        assert auths(content) == {
            **auths(kubectl_dockerconfig("ghcr.io", "robot", credentials["password"])),
            **auths(kubectl_dockerconfig(stack.registry.host, stack.registry.username, stack.registry.password)),
        }


def test_single_credential_bytes_equal_kubectl(
    core_v1: client.CoreV1Api,
    credentials: dict[str, str],
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: WriteConfig,
    run_syncd: RunSyncd,
) -> None:
    (namespace,) = make_namespaces(f"{prefix}-one")
    config = write_config(
        {
            "vault": {},
            "credentials": [vault_credential("ghcr", credentials["path"])],
            "secrets": [{"name": "ghcr-pull", "credentials": ["ghcr"], "namespaces": {"names": [namespace]}}],
        }
    )
    assert run_syncd("once", config=config).code == 0
    expected = kubectl_dockerconfig("ghcr.io", "robot", credentials["password"])
    assert dockerconfig_of(core_v1, namespace, "ghcr-pull") == expected
