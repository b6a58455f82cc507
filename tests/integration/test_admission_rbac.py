"""The admission webhook under exactly what `syncd rbac` grants and its ValidatingAdmissionPolicy allows.

syncd, as its own ServiceAccount, creates its TLS Secret and patches the caBundle of the
configuration `syncd admission` printed (applied by the admin, as an installer does); the same
identity cannot write a kubernetes.io/tls Secret of another name or namespace, nor create or
read another webhook configuration.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from harness import Stack
from harness.process import free_port
from harness.syncd_process import SyncdProcess
from harness.wait import wait_until
from syncd.config import Config
from syncd.manifests import webhook
from tests.integration.test_write_policy import Syncd, _admin, _install, _wait_until_enforced

pytestmark = pytest.mark.integration


def _with_admission(settings: dict[str, Any]) -> None:
    namespace = settings["leader_election"]["namespace"]  # the installation's own namespace
    address = f"127.0.0.1:{free_port()}"
    settings["admission"] = {
        "enabled": True,
        "address": address,
        "namespace": namespace,
        "url": f"https://{address}/mutate",
        "configuration": f"syncd-{uuid.uuid4().hex[:6]}",
    }


@pytest.fixture(scope="module")
def installed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Syncd:
    syncd = _install(stack, tmp_path_factory.mktemp("admission-rbac"), with_policy=True, edit=_with_admission)
    _wait_until_enforced(stack, syncd)
    return syncd


def _admission_api(kubeconfig: Path) -> client.AdmissionregistrationV1Api:
    return client.AdmissionregistrationV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def test_syncd_keeps_its_tls_secret_and_ca_bundle_with_only_what_it_is_granted(
    stack: Stack, installed: Syncd, tmp_path: Path
) -> None:
    settings = installed.config
    parsed = Config.model_validate(settings)
    admin_hooks = _admission_api(stack.kube.kubeconfig)
    printed: Any = webhook.configuration(parsed)
    admin_hooks.create_mutating_webhook_configuration(printed)
    daemon = SyncdProcess(settings, tmp_path / "daemon", installed.kubeconfig, {})
    daemon.start()
    try:
        daemon.wait_ready()
        admin = _admin(stack)

        def ca_bundle() -> bytes:
            found = admin_hooks.read_mutating_webhook_configuration(parsed.webhook_configuration)
            return base64.b64decode(found.webhooks[0].client_config.ca_bundle or "")  # type: ignore[index]

        wait_until(lambda: ca_bundle() != b"", 30, "syncd to patch the caBundle")
        secret = admin.read_namespaced_secret(parsed.webhook_secret, installed.namespace)
        assert secret.type == "kubernetes.io/tls"
        assert (secret.metadata.labels or {}) == installed.labels()  # type: ignore[union-attr]
        assert base64.b64decode((secret.data or {})["ca.crt"]) == ca_bundle()
    finally:
        daemon.stop_quietly()
        admin_hooks.delete_mutating_webhook_configuration(parsed.webhook_configuration)
    log = daemon.log()
    assert "HTTP 403" not in log, log[-3000:]


def _tls(name: str, labels: dict[str, str]) -> client.V1Secret:
    data = {"tls.crt": base64.b64encode(b"x").decode(), "tls.key": base64.b64encode(b"y").decode()}
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels=labels), type="kubernetes.io/tls", data=data)


@pytest.mark.parametrize("where", ["another name", "another namespace"])
def test_no_other_tls_secret_can_be_written(stack: Stack, installed: Syncd, where: str) -> None:
    parsed = Config.model_validate(installed.config)
    name, namespace = parsed.webhook_secret, installed.namespace
    if where == "another name":
        name = f"{name}-x"
    else:
        namespace = f"{installed.prefix}-tls"
        _admin(stack).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    with pytest.raises(ApiException) as refused:
        installed.api.create_namespaced_secret(namespace, _tls(name, installed.labels()))
    assert refused.value.status == 403
    assert "ValidatingAdmissionPolicy" in str(refused.value.body)


def test_no_webhook_configuration_can_be_created_or_read_but_its_own(stack: Stack, installed: Syncd) -> None:
    hooks = _admission_api(installed.kubeconfig)
    other = yaml.safe_load(yaml.safe_dump(webhook.configuration(Config.model_validate(installed.config))))
    other["metadata"]["name"] = f"not-syncds-{installed.prefix}"
    with pytest.raises(ApiException) as refused:
        hooks.create_mutating_webhook_configuration(other)
    assert refused.value.status == 403
    with pytest.raises(ApiException) as unread:
        hooks.read_mutating_webhook_configuration(other["metadata"]["name"])
    assert unread.value.status == 403
