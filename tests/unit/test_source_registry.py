"""Sources as a registry: one table from config key to typed model to Source."""

from __future__ import annotations

import pytest

from syncd.config import CREDENTIAL_MODELS, DockerConfigCredential, HelperCredential, parse_config, parse_credential
from syncd.core.errors import ConfigError
from syncd.sources.docker_config import DockerConfigSource
from syncd.sources.factory import SOURCES, build_sources
from syncd.sources.helper import HelperSource


def test_every_credential_model_has_its_source_under_its_own_key() -> None:
    assert {key: kind.model for key, kind in SOURCES.items()} == {m.source: m for m in CREDENTIAL_MODELS}


def test_a_credential_entry_becomes_the_model_of_its_one_source_key() -> None:
    helper = parse_credential({"name": "ecr", "registry": "1.dkr.ecr.eu-west-1.amazonaws.com", "helper": "ecr-login"})
    files = parse_credential({"name": "f", "docker_config": "/c.json", "registries": ["quay.io"]})
    assert isinstance(helper, HelperCredential)
    assert isinstance(files, DockerConfigCredential)
    assert (helper.source, files.source) == ("helper", "docker_config")


def test_build_sources_makes_only_the_kinds_the_config_uses() -> None:
    config = parse_config(
        {
            "credentials": [
                {"name": "ecr", "registry": "ghcr.io", "helper": "pass"},
                {"name": "f", "docker_config": "/c.json", "registries": ["quay.io"]},
            ],
            "secrets": [{"name": "s", "credentials": ["ecr", "f"], "namespaces": {"names": ["a"]}}],
        }
    )
    sources = build_sources(config)
    assert sorted(sources) == ["docker_config", "helper"]
    assert isinstance(sources["helper"], HelperSource)
    assert isinstance(sources["docker_config"], DockerConfigSource)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "x", "registry": "ghcr.io", "keychain": "k"},
            "needs exactly one source of vault, helper, docker_config (found: none)",
        ),
        ({"name": "x", "registry": "ghcr.io", "helper": "pass", "registries": ["q.io"]}, "registries: unknown key"),
        (
            {"name": "x", "docker_config": "/c.json", "registries": ["q.io"], "registry": "q.io"},
            "registry: unknown key",
        ),
    ],
    ids=["unknown-source", "helper-with-docker-config-key", "docker-config-with-registry"],
)
def test_an_unknown_or_mismatched_source_is_a_config_error_at_load(entry: dict[str, object], message: str) -> None:
    raw = {"credentials": [entry], "secrets": [{"name": "s", "credentials": ["x"], "namespaces": {"names": ["a"]}}]}
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert message in str(refused.value)
