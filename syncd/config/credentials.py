"""Credentials: one model per source, told apart by the one source key an entry has.

`Credential` is a union discriminated by that key (`vault`, `helper`, `docker_config`): each
model holds exactly what its source needs, so an unknown or mismatched source is an error when
the config is loaded, never at sync time. syncd.sources.factory maps each model to its Source.
Adding a source: a model here (and in CREDENTIAL_MODELS), a module in syncd/sources/, a line
in syncd.sources.factory.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from syncd.config.fields import (
    HELPER_NAME,
    Duration,
    Registry,
    _check_registry,
    _fullmatch,
    _positive,
    _Strict,
    is_helper_name,
)

CREDENTIAL_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# syncd's own variables: its Vault login (VAULT_TOKEN above all) and Vault/OpenBao client settings,
# its own settings, and its way to the apiserver. A helper never gets them, whatever the config says.
_RESERVED_NAMES = frozenset({"KUBECONFIG"})
_RESERVED_PREFIXES = ("VAULT_", "BAO_", "SYNCD_", "KUBERNETES_")


def reserved_variable(name: str) -> bool:
    """Whether `name` is one of syncd's own variables, never passed to a credential helper.

    Case-blind: `vault_token` is nobody's setting but its name says what it holds.
    """
    upper = name.upper()
    return upper == "VAULT_TOKEN" or upper in _RESERVED_NAMES or upper.startswith(_RESERVED_PREFIXES)


def _passable_variable(name: str) -> str:
    if not _fullmatch(ENV_NAME, name):
        raise ValueError(f"{name!r} is not an environment variable name (letters, digits, '_')")
    if name.upper() == "VAULT_TOKEN":
        raise ValueError("VAULT_TOKEN is syncd's Vault login: a credential helper never gets it")
    if reserved_variable(name):
        raise ValueError(
            f"{name!r} is syncd's own (VAULT_*, BAO_*, SYNCD_*, KUBERNETES_*, KUBECONFIG): "
            "a credential helper never gets it"
        )
    return name


class VaultSecret(_Strict):
    """Where a credential lives in Vault and which fields hold it."""

    kv: Literal[1, 2] | None = Field(None, description="KV engine version; omit for a plain logical read")
    mount: str = Field("secret", min_length=1, description="secrets engine mount path")
    path: str = Field(min_length=1, description="path of the secret below the mount")
    username_field: str = Field("username", min_length=1)
    username: str | None = Field(
        None,
        min_length=1,
        description="a constant username instead of username_field, for engines that return only a token "
        "(Vault's GCP engine: `oauth2accesstoken`)",
    )
    password_field: str = Field("password", min_length=1)
    email_field: str | None = Field("email", description="optional; a missing field means no email")
    expires_at_field: str | None = Field(
        None,
        min_length=1,
        description="a field holding when the login expires: epoch seconds or RFC 3339 (GCP engine: "
        "`expires_at_seconds`); the earliest of it, ttl_field, the lease, `lifetime` and a JWT's exp wins",
    )
    ttl_field: str | None = Field(
        None,
        min_length=1,
        description="a field holding how long the login is valid from the read, in seconds or as a duration "
        "(GCP engine: `token_ttl`)",
    )
    revoke_previous: bool = Field(
        True,
        description="for a leased login (a dynamic engine's plain logical read): revoke the previous lease once "
        "every secret spec using this credential has written the new login to all its namespaces without a "
        "failed write; never at shutdown, and a restart forgets the leases it did not revoke",
    )

    @model_validator(mode="after")
    def _one_username(self) -> VaultSecret:
        if self.username is not None and "username_field" in self.model_fields_set:
            raise ValueError("give username (a constant) or username_field (a field to read), not both")
        return self


class CredentialBase(_Strict):
    """What every credential has, whatever its source."""

    source: ClassVar[str]  # its config key, and the `source` label of syncd_source_requests_total

    name: str = Field(
        min_length=1,
        max_length=63,
        json_schema_extra={"pattern": CREDENTIAL_NAME},
        description="what secret specs call it (and the metric label)",
    )
    lifetime: Duration | None = Field(
        None, description="how long a fetched credential is valid, when the source does not say"
    )
    verify: bool = Field(
        False,
        description="check a freshly fetched login against the registry's /v2/ (Basic, then the Bearer token "
        "flow) before writing it; a login the registry rejects is not rolled out",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _fullmatch(CREDENTIAL_NAME, value):
            raise ValueError(f"{value!r} is not a valid credential name (letters, digits, '-', '_', '.')")
        return value

    @field_validator("lifetime")
    @classmethod
    def _lifetime(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        return _positive(value) if value is not None else None


class _OneRegistry(CredentialBase):
    registry: Registry | None = Field(None, description="the registry host[:port] this login is for (required)")

    @field_validator("registry")
    @classmethod
    def _registry_host(cls, value: str | None) -> str | None:
        return _check_registry(value) if value is not None else None

    @model_validator(mode="after")
    def _registry_given(self) -> _OneRegistry:
        # Required, but said in the source's words rather than "required key is missing".
        if not self.registry:
            raise ValueError(f"a {self.source} credential needs `registry`")
        return self

    @property
    def host(self) -> str:
        return self.registry or ""

    @property
    def registry_names(self) -> list[str]:
        """The registries this credential logs in to, as the config writes them (every model has this)."""
        return [self.host]


class VaultCredential(_OneRegistry):
    """A login read from Vault / OpenBao."""

    source: ClassVar[str] = "vault"
    vault: VaultSecret


class _RunsHelpers(_Strict):
    """What a credential whose source runs Docker credential helpers adds."""

    helper_env: list[
        Annotated[str, AfterValidator(_passable_variable), Field(json_schema_extra={"pattern": ENV_NAME})]
    ] = Field(
        default_factory=list,
        description="environment variables the helper gets besides its allow-list (PATH, HOME, proxies, "
        "AWS_*, AZURE_*, CLOUDSDK_*, ...); never syncd's own (VAULT_*, BAO_*, SYNCD_*, KUBERNETES_*)",
    )


class HelperCredential(_OneRegistry, _RunsHelpers):
    """A login a Docker credential helper holds (`docker-credential-<helper> get`)."""

    source: ClassVar[str] = "helper"
    helper: str = Field(json_schema_extra={"pattern": HELPER_NAME}, description="runs docker-credential-<helper> get")
    helper_timeout: Duration = Field(dt.timedelta(seconds=30), description="how long the helper may take")

    @field_validator("helper")
    @classmethod
    def _helper(cls, value: str) -> str:
        if not is_helper_name(value):
            raise ValueError(
                f"{value!r} is not a helper name: give what follows docker-credential- "
                "(ecr-login runs docker-credential-ecr-login from $PATH), never a path"
            )
        return value

    @field_validator("helper_timeout")
    @classmethod
    def _timeout(cls, value: dt.timedelta) -> dt.timedelta:
        return _positive(value)


class DockerConfigCredential(CredentialBase, _RunsHelpers):
    """Logins for some registries, resolved from a docker config.json as docker does."""

    source: ClassVar[str] = "docker_config"
    docker_config: Path = Field(description="a docker config.json")
    registries: list[Registry] = Field(default_factory=list, description="registries to take from docker_config")
    helper_timeout: Duration = Field(
        dt.timedelta(seconds=30), description="how long a helper the file names (credHelpers, credsStore) may take"
    )

    @field_validator("registries")
    @classmethod
    def _registry_hosts(cls, value: list[str]) -> list[str]:
        return [_check_registry(v) for v in value]

    @property
    def registry_names(self) -> list[str]:
        return list(self.registries)

    @field_validator("helper_timeout")
    @classmethod
    def _timeout(cls, value: dt.timedelta) -> dt.timedelta:
        return _positive(value)

    @model_validator(mode="after")
    def _registries_given(self) -> DockerConfigCredential:
        if not self.registries:
            raise ValueError("a docker_config credential needs `registries`: the registries to take from it")
        return self


CREDENTIAL_MODELS: tuple[type[CredentialBase], ...] = (VaultCredential, HelperCredential, DockerConfigCredential)
SOURCE_KEYS = tuple(model.source for model in CREDENTIAL_MODELS)
ONE_SOURCE = "one_source"  # the error type of an entry with no source key or several


def source_key(raw: Any) -> str | None:
    """The source an entry names: its one source key; None when it has none or several."""
    if isinstance(raw, CredentialBase):
        return raw.source
    if not isinstance(raw, dict):
        return None
    found = [key for key in SOURCE_KEYS if raw.get(key) is not None]
    return found[0] if len(found) == 1 else None


Credential = Annotated[
    Annotated[VaultCredential, Tag("vault")]
    | Annotated[HelperCredential, Tag("helper")]
    | Annotated[DockerConfigCredential, Tag("docker_config")],
    Discriminator(
        source_key,
        custom_error_type=ONE_SOURCE,
        custom_error_message=f"needs exactly one source of {', '.join(SOURCE_KEYS)}",
    ),
]
_ADAPTER: TypeAdapter[Credential] = TypeAdapter(Credential)


def parse_credential(raw: object) -> Credential:
    """One `credentials:` entry (for tests and tools; a config file goes through load_config)."""
    return _ADAPTER.validate_python(raw)
