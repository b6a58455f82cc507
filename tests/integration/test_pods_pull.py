"""The chain that ends in a Pod pulling: syncd's Secret, the ServiceAccount, the kubelet, the registry.

The harness apiserver runs without the ServiceAccount admission plugin (no controller-manager
makes `default` ServiceAccounts, and the plugin would refuse Pods without one), so what it would
copy into a Pod that names no imagePullSecrets, the ServiceAccount's `imagePullSecrets`, is read
from the apiserver here instead. Those Secrets go through the kubelet's own lookup
(kubelet-keyring, k8s.io/kubernetes v1.34.4), and the login it offers first is the one skopeo then
pulls with, from the Secret's own bytes.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client

from harness import Stack
from harness.kube_objects import default_service_account
from harness.kubelet import offered
from harness.oci import Skopeo, dockerconfigjson, make_layout
from tests.integration.conftest import RunSyncd

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _pull_secrets_of(core_v1: client.CoreV1Api, namespace: str) -> list[tuple[str, bytes]]:
    """What the admission plugin would give a Pod of ServiceAccount `default`, as the kubelet reads it."""
    account = core_v1.read_namespaced_service_account("default", namespace)
    found = []
    for ref in account.image_pull_secrets or []:
        secret = core_v1.read_namespaced_secret(str(ref.name), namespace)
        assert secret.data is not None
        found.append((str(ref.name), base64.b64decode(secret.data[".dockerconfigjson"])))
    return found


def test_a_pod_of_the_default_service_account_pulls_with_syncds_login(
    stack: Stack,
    vault_client: hvac.Client,
    core_v1: client.CoreV1Api,
    prefix: str,
    tmp_path: Path,
    make_namespaces: Callable[..., list[str]],
    write_config: Callable[[dict[str, Any]], Path],
    run_syncd: RunSyncd,
) -> None:
    registry = stack.registry
    path = f"pods/{uuid.uuid4().hex[:8]}"
    vault_client.secrets.kv.v2.create_or_update_secret(
        path, secret={"username": registry.username, "password": registry.password}
    )
    (namespace,) = make_namespaces(f"{prefix}-pods")
    stale = client.V1Secret(
        metadata=client.V1ObjectMeta(name="old-hub"),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(dockerconfigjson(registry.host, "old", "wrong")).decode()},
    )
    core_v1.create_namespaced_secret(namespace, stale)
    default_service_account(core_v1, namespace, ["old-hub"])
    config = write_config(
        {
            "instance": f"pods-{prefix}",
            "vault": {},
            "credentials": [
                {"name": "harness", "registry": f"http://{registry.host}/v2/", "vault": {"kv": 2, "path": path}}
            ],
            "secrets": [
                {
                    "name": "regcred",
                    "credentials": ["harness"],
                    "namespaces": {"names": [namespace]},
                    "service_accounts": ["default"],
                }
            ],
        }
    )
    assert run_syncd("once", config=config).code == 0

    image = f"{registry.host}/syncd/pods-{uuid.uuid4().hex[:6]}:v1"
    secrets = _pull_secrets_of(core_v1, namespace)
    assert [name for name, _ in secrets] == ["old-hub", "regcred"]
    [answer] = offered(secrets, [image])
    # Same key in both Secrets: the kubelet tries them in the Pod's order, so the stale one first...
    assert [(login.secret, login.username) for login in answer.logins] == [
        ("old-hub", "old"),
        ("regcred", registry.username),
    ]
    explained = run_syncd("explain", "--namespace", namespace, "--image", image, "--output", "json", config=config)
    assert explained.code == 0, explained.out
    assert json.loads(explained.out)["offers"][1] == {
        "secret": "regcred",
        "key": registry.host,
        "credential": "harness",
    }

    # ...and the runtime goes down the list until one works: syncd's Secret, by its own bytes.
    skopeo = Skopeo(tmp_path / "skopeo")
    layout = make_layout(tmp_path / "image", "v1", {"hello.txt": f"{prefix}\n".encode()})
    authfiles = {}
    for name, content in secrets:
        authfiles[name] = tmp_path / f"{name}.json"
        authfiles[name].write_bytes(content)
    pushed = skopeo.run(
        "copy",
        "--authfile",
        str(authfiles["regcred"]),
        "--dest-tls-verify=false",
        layout.reference,
        f"docker://{image}",
    )
    assert pushed.returncode == 0, pushed.stderr
    refused = skopeo.run("inspect", "--authfile", str(authfiles["old-hub"]), "--tls-verify=false", f"docker://{image}")
    assert refused.returncode != 0
    pulled = skopeo.run(
        "copy",
        "--authfile",
        str(authfiles["regcred"]),
        "--src-tls-verify=false",
        f"docker://{image}",
        f"oci:{tmp_path / 'out'}:v1",
    )
    assert pulled.returncode == 0, pulled.stderr
    assert registry.password not in explained.out + explained.err
