"""`syncd explain` against the real apiserver, on Secrets `syncd once` wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import default_service_account
from tests.integration.conftest import RunSyncd

pytestmark = pytest.mark.integration


def test_explain_names_the_secret_key_and_credential_the_kubelet_offers(
    stack: Stack,
    core_v1: client.CoreV1Api,
    prefix: str,
    helper_env: None,
    make_namespaces: Callable[..., list[str]],
    write_config: Callable[[dict[str, Any]], Path],
    run_syncd: RunSyncd,
) -> None:
    (namespace,) = make_namespaces(f"{prefix}-x")
    default_service_account(core_v1, namespace)
    stack.helper.store("docker.io", "robot", "hub-pw")  # the server URL syncd asks the helper for
    config = write_config(
        {
            "instance": f"explain-{prefix}",
            "credentials": [{"name": "hub", "registry": "docker.io", "helper": "pass"}],
            "secrets": [
                {
                    "name": "regcred",
                    "credentials": ["hub"],
                    "namespaces": {"names": [namespace]},
                    "service_accounts": ["default"],
                }
            ],
        }
    )
    assert run_syncd("once", config=config).code == 0
    for image in ("nginx", "library/nginx:1.27", "index.docker.io/acme/api:2"):
        run = run_syncd("explain", "--namespace", namespace, "--image", image, "--output", "json", config=config)
        assert run.code == 0, run.out
        answer = json.loads(run.out)
        assert answer["offers"] == [{"secret": "regcred", "key": "docker.io", "credential": "hub"}]
    anonymous = run_syncd("explain", "--namespace", namespace, "--image", "quay.io/acme/api", config=config)
    assert anonymous.code == 1
    assert "no login is offered: the pull is anonymous" in anonymous.out
    assert "hub-pw" not in anonymous.out + anonymous.err
