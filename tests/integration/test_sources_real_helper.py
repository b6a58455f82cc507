"""HelperSource and DockerConfigSource against the real docker-credential-pass (pass + GnuPG)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests

from harness import Stack
from syncd.config import DockerConfigCredential, HelperCredential
from syncd.core.errors import CredentialNotFound
from syncd.sources.docker_config import DockerConfigSource
from syncd.sources.helper import HelperSource

pytestmark = pytest.mark.integration


@pytest.fixture
def pass_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The harness's GnuPG home and password store, for the helpers that syncd starts."""
    for key, value in stack.helper.env.items():
        monkeypatch.setenv(key, value)
    return stack


def _server() -> str:
    return f"registry-{uuid.uuid4().hex[:8]}.example:5000"


def _helper_credential(server: str) -> HelperCredential:
    return HelperCredential.model_validate(
        {"name": "from-pass", "registry": server, "helper": "pass", "helper_timeout": "20s"}
    )


def _config_credential(path: Path, server: str) -> DockerConfigCredential:
    return DockerConfigCredential.model_validate(
        {"name": "from-file", "docker_config": str(path), "registries": [server], "helper_timeout": "20s"}
    )


def test_helper_source_fetches_what_pass_holds(pass_env: Stack) -> None:
    server = _server()
    pass_env.helper.store(server, "robot$ci", "pass-secret-41c7")
    fetched = HelperSource().fetch(_helper_credential(server))
    assert [(e.registry, e.username, e.password) for e in fetched.entries] == [(server, "robot$ci", "pass-secret-41c7")]


def test_fetched_login_opens_the_real_registry(pass_env: Stack) -> None:
    registry = pass_env.registry
    pass_env.helper.store(registry.host, registry.username, registry.password)
    entry = HelperSource().fetch(_helper_credential(registry.host)).entries[0]
    response = requests.get(f"http://{registry.host}/v2/", auth=(entry.username, entry.password), timeout=5)
    assert response.status_code == 200


def test_server_pass_does_not_hold_is_not_found(pass_env: Stack) -> None:
    # docker-credential-pass 0.6.4 answers this with exit 0 and an empty Username and Secret.
    with pytest.raises(CredentialNotFound, match="from-pass"):
        HelperSource().fetch(_helper_credential(_server()))


def test_docker_config_cred_helpers_entry_asks_pass(pass_env: Stack, tmp_path: Path) -> None:
    server = _server()
    pass_env.helper.store(server, "robot", "per-registry-secret")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {}, "credHelpers": {server: "pass"}}))
    fetched = DockerConfigSource().fetch(_config_credential(config, server))
    assert [(e.registry, e.username, e.password) for e in fetched.entries] == [(server, "robot", "per-registry-secret")]


def test_docker_config_creds_store_asks_pass(pass_env: Stack, tmp_path: Path) -> None:
    server = _server()
    pass_env.helper.store(server, "robot", "store-secret")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {server: {}}, "credsStore": "pass"}))  # as `docker login` leaves it
    fetched = DockerConfigSource().fetch(_config_credential(config, f"https://{server}"))
    assert [(e.username, e.password) for e in fetched.entries] == [("robot", "store-secret")]


def test_docker_config_creds_store_without_the_server_is_not_found(pass_env: Stack, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "pass"}))
    with pytest.raises(CredentialNotFound, match="credsStore: docker-credential-pass has no credentials"):
        DockerConfigSource().fetch(_config_credential(config, _server()))
