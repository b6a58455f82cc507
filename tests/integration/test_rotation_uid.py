"""A rotation updates each Secret in place: same object (UID), new content.

The kubelet's pull-credential checks (KEP-2535, "ensure secret pulled images", beta in 1.35)
remember which Secret (namespace, name, UID) and which credentials pulled an image; a Secret
deleted and re-created under the same name would be another UID, and Pods would have to prove
again that they may use images already on the node. syncd never does that on a rotation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from tests.integration.conftest import RunSyncd, auths, dockerconfig_of

pytestmark = pytest.mark.integration


def _uid(core_v1: client.CoreV1Api, namespace: str) -> str:
    metadata = core_v1.read_namespaced_secret("regcred", namespace).metadata
    assert metadata is not None
    return str(metadata.uid)


def test_a_rotation_keeps_every_secrets_uid(
    vault_client: hvac.Client,
    vault_path: str,
    core_v1: client.CoreV1Api,
    prefix: str,
    make_namespaces: Callable[..., list[str]],
    write_config: Callable[[dict[str, Any]], Path],
    run_syncd: RunSyncd,
) -> None:
    namespaces = make_namespaces(f"{prefix}-a", f"{prefix}-b")
    config = write_config(
        {
            "instance": f"uid-{prefix}",
            "vault": {},
            "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"kv": 2, "path": vault_path}}],
            "secrets": [{"name": "regcred", "credentials": ["robot"], "namespaces": {"names": namespaces}}],
        }
    )
    assert run_syncd("once", config=config).code == 0
    before = {ns: _uid(core_v1, ns) for ns in namespaces}
    vault_client.secrets.kv.v2.create_or_update_secret(vault_path, secret={"username": "robot", "password": "d-2"})
    rotated = run_syncd("once", config=config)
    assert rotated.code == 0, rotated.out
    assert "2 updated" in rotated.out
    assert {ns: _uid(core_v1, ns) for ns in namespaces} == before
    for namespace in namespaces:
        assert auths(dockerconfig_of(core_v1, namespace, "regcred"))["ghcr.io"]["password"] == "d-2"
