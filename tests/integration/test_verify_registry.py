"""verify_login against the real registry (distribution, htpasswd Basic auth, plain http on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Stack
from harness.registry import Registry
from syncd.core.errors import SourceUnavailable
from syncd.core.values import RegistryCredential
from syncd.registry.login import VerificationFailed, verify_login

pytestmark = pytest.mark.integration


def _secret_free(exc: BaseException, *secrets: str) -> bool:
    return not any(secret in str(exc) for secret in secrets)


@pytest.mark.parametrize("scheme", ["", "http://"])
def test_right_login_passes(stack: Stack, scheme: str) -> None:
    """`host:port` on loopback: https fails against the plain-http registry, then http is used."""
    registry = stack.registry
    verify_login("real", RegistryCredential(f"{scheme}{registry.host}", registry.username, registry.password))


def test_wrong_password_is_rejected(stack: Stack) -> None:
    registry = stack.registry
    wrong = "not-the-registry-password-8c1e"
    with pytest.raises(VerificationFailed) as caught:
        verify_login("real", RegistryCredential(registry.host, registry.username, wrong))
    assert "HTTP 401" in str(caught.value)
    assert registry.host in str(caught.value)
    assert _secret_free(caught.value, wrong, registry.password)


def test_unknown_user_is_rejected(stack: Stack) -> None:
    registry = stack.registry
    with pytest.raises(VerificationFailed):
        verify_login("real", RegistryCredential(registry.host, "nobody", registry.password))


def test_stopped_registry_is_unavailable_not_rejected(tmp_path: Path) -> None:
    """A private registry, so that stopping it leaves the session's registry (and its port) alone."""
    registry = Registry(tmp_path)
    registry.start()
    login = RegistryCredential(registry.host, registry.username, registry.password)
    try:
        verify_login("private", login)
    finally:
        registry.stop()
    with pytest.raises(SourceUnavailable) as caught:
        verify_login("private", login, timeout=5.0)
    assert not isinstance(caught.value, VerificationFailed)
    assert registry.host in str(caught.value)
    assert _secret_free(caught.value, registry.password)
