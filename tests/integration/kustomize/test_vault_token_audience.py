"""The projected Vault token (audience `vault`) and the API token are not interchangeable: OpenBao's
Kubernetes auth role refuses the API token, the apiserver refuses the Vault token."""

from __future__ import annotations

import hvac
import pytest

from harness import Stack
from harness.accounts import token_kubeconfig
from harness.kubectl import kubectl
from tests.integration.kustomize.manifests import Identity, VaultAuth

pytestmark = pytest.mark.integration


def test_the_vault_token_and_the_api_token_are_not_interchangeable(
    stack: Stack, identity: Identity, vault_auth: VaultAuth
) -> None:
    login = hvac.Client(url=stack.vault.address).auth.kubernetes.login(
        "syncd", vault_auth.token_file.read_text(), mount_point=vault_auth.mount
    )
    assert login["auth"]["metadata"]["service_account_namespace"] == identity.namespace
    # syncd's Kubernetes API token is refused by the role (audience=vault)...
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=stack.vault.address).auth.kubernetes.login(
            "syncd", identity.api_token, mount_point=vault_auth.mount
        )
    # ...and the token for Vault is refused by the Kubernetes API.
    vault_kubeconfig = token_kubeconfig(
        stack.kube, identity.kubeconfig.with_name("vault-audience"), vault_auth.token_file.read_text()
    )
    denied = kubectl("get", "--raw", "/api", kubeconfig=vault_kubeconfig)
    assert denied.returncode != 0
    assert "Unauthorized" in denied.stderr
