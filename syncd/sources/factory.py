"""The one table of credential sources: config key -> typed config model -> Source.

A credential's config key picks its model (syncd.config.credentials, a discriminated union) at
load time, and the same key picks its Source here; the check below makes a key without a Source
(or a model filed under another key) fail at import, never mid-sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncd.config import CREDENTIAL_MODELS, Config, DockerConfigCredential, HelperCredential, VaultCredential
from syncd.config.credentials import CredentialBase
from syncd.sources.base import Source
from syncd.sources.docker_config import DockerConfigSource
from syncd.sources.helper import HelperSource
from syncd.sources.vault import VaultSource


@dataclass(frozen=True)
class SourceKind:
    model: type[CredentialBase]
    build: Callable[[Config], Source[Any]]  # called once per process (a Vault login is shared)


def _vault(config: Config) -> Source[Any]:
    if config.vault is None:  # the config loader already refused vault credentials without it
        raise AssertionError("a vault credential without a vault: block passed validation")
    return VaultSource.from_config(config.vault)


SOURCES: dict[str, SourceKind] = {
    "vault": SourceKind(VaultCredential, _vault),
    "helper": SourceKind(HelperCredential, lambda _config: HelperSource()),
    "docker_config": SourceKind(DockerConfigCredential, lambda _config: DockerConfigSource()),
}


def _check() -> None:
    filed = {key: kind.model for key, kind in SOURCES.items()}
    expected = {model.source: model for model in CREDENTIAL_MODELS}
    if filed != expected:
        raise ImportError(
            f"syncd.sources.factory {sorted(filed)} does not match the credential models {sorted(expected)}"
        )


_check()


def build_sources(config: Config, *, vault: Source[Any] | None = None) -> dict[str, Source[Any]]:
    """A Source for every kind a credential of `config` uses, keyed by its config key.

    `vault`: a running Vault source to keep (its login and token) instead of a new one."""
    used = {credential.source for credential in config.credentials}
    sources = {key: kind.build(config) for key, kind in SOURCES.items() if key in used and key != "vault"}
    if "vault" in used:
        sources["vault"] = vault or SOURCES["vault"].build(config)
    return sources
