"""The config file (SPEC §3): typed, validated, every problem reported with its key path."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from syncd import durations, labels
from syncd.errors import ConfigError, ConfigProblem
from syncd.validation import registry_problem

Duration = Annotated[
    dt.timedelta,
    BeforeValidator(durations.parse_duration),
    PlainSerializer(durations.format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": durations.PATTERN, "examples": ["30s", "5m", "12h"]}),
]
Registry = Annotated[str, Field(min_length=1, description="registry host[:port], as in `docker login HOST`")]
RESERVED_PREFIXES = ("syncd.io/", "app.kubernetes.io/managed-by")
DEFAULT_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VaultAuth(_Strict):
    """How syncd logs in to Vault. One login is reused and renewed across credentials and syncs."""

    method: Literal["token", "approle", "kubernetes", "jwt"] = "token"
    role: str | None = Field(None, description="role to log in as (kubernetes, jwt)")
    mount: str | None = Field(None, description="auth mount path; defaults to the method name")
    token_file: Path | None = Field(
        None,
        description="file holding the token: the Vault token (token; default $VAULT_TOKEN), "
        "or the JWT (kubernetes: the pod's ServiceAccount token by default; jwt: required)",
    )
    role_id: str | None = Field(None, description="AppRole role_id (approle)")
    secret_id_file: Path | None = Field(None, description="file holding the AppRole secret_id (approle)")

    @model_validator(mode="after")
    def _method_fields(self) -> VaultAuth:
        needed = {"kubernetes": ["role"], "jwt": ["role", "token_file"], "approle": ["role_id", "secret_id_file"]}
        missing = [name for name in needed.get(self.method, []) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth method {self.method!r} needs {', '.join(missing)}")
        return self

    @property
    def mount_path(self) -> str:
        return self.mount or self.method

    @property
    def jwt_file(self) -> Path | None:
        return self.token_file or (DEFAULT_SA_TOKEN if self.method == "kubernetes" else None)


class VaultConfig(_Strict):
    """The Vault (or OpenBao) server; needed only when a credential reads from Vault."""

    address: str | None = Field(None, description="server URL; default $VAULT_ADDR")
    ca_cert: Path | None = Field(None, description="CA bundle for the server's TLS cert; TLS is always verified")
    namespace: str | None = Field(None, description="Vault Enterprise namespace")
    auth: VaultAuth = VaultAuth()
    timeout: Duration = Field(dt.timedelta(seconds=10), description="per request")

    @property
    def url(self) -> str:
        return self.address or os.environ.get("VAULT_ADDR", "")


class VaultSecret(_Strict):
    """Where a credential lives in Vault and which fields hold it."""

    kv: Literal[1, 2] | None = Field(None, description="KV engine version; omit for a plain logical read")
    mount: str = "secret"
    path: str = Field(min_length=1)
    username_field: str = "username"
    password_field: str = "password"  # noqa: S105 - a field name, not a password
    email_field: str | None = "email"


class Credential(_Strict):
    """A registry credential and the one source it comes from (vault, helper or docker_config)."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    registry: Registry | None = Field(None, description="required for vault and helper credentials")
    vault: VaultSecret | None = None
    helper: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$", description="runs docker-credential-<helper> get"
    )
    helper_timeout: Duration = dt.timedelta(seconds=30)
    docker_config: Path | None = Field(None, description="a docker config.json")
    registries: list[Registry] = Field(default_factory=list, description="registries to take from docker_config")
    lifetime: Duration | None = Field(
        None, description="how long a fetched credential is valid, when the source does not say"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Credential:
        chosen = [k for k in ("vault", "helper", "docker_config") if getattr(self, k) is not None]
        if len(chosen) != 1:
            found = ", ".join(chosen) or "none"
            raise ValueError(f"needs exactly one source of vault, helper, docker_config (found: {found})")
        if chosen[0] != "docker_config" and not self.registry:
            raise ValueError(f"a {chosen[0]} credential needs `registry`")
        if chosen[0] == "docker_config" and not self.registries:
            raise ValueError("a docker_config credential needs `registries`: the registries to take from it")
        return self

    @field_validator("registry")
    @classmethod
    def _registry_host(cls, value: str | None) -> str | None:
        return _check_registry(value) if value is not None else None

    @field_validator("registries")
    @classmethod
    def _registry_hosts(cls, value: list[str]) -> list[str]:
        return [_check_registry(v) for v in value]

    @property
    def source(self) -> str:
        if self.vault is not None:
            return "vault"
        return "helper" if self.helper is not None else "docker_config"


def _check_registry(value: str) -> str:
    problem = registry_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class Namespaces(_Strict):
    """A namespace is selected by names, patterns or selector, minus exclude."""

    names: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list, description="shell globs such as team-*")
    selector: str | None = Field(None, description="label selector, kubectl syntax: a=b,c in (d,e),!f")
    exclude: list[str] = Field(default_factory=list, description="names or globs removed from the selection")

    @field_validator("names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not labels.is_dns_label(n)]
        if bad:
            raise ValueError(f"not valid namespace names: {', '.join(map(repr, bad))}")
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        problems = labels.selector_problems(value) if value is not None else []
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _something_selected(self) -> Namespaces:
        if not (self.names or self.patterns or self.selector):
            raise ValueError("selects nothing: give names, patterns or selector")
        return self


class SecretSpec(_Strict):
    """One dockerconfigjson Secret, written into every selected namespace."""

    name: str = Field(min_length=1, max_length=253)
    credentials: list[str] = Field(min_length=1, description="credential names merged into one .dockerconfigjson")
    namespaces: Namespaces
    service_accounts: list[str] = Field(default_factory=list, description='[] none, ["*"] every ServiceAccount')
    on_conflict: Literal["skip", "adopt"] = "skip"
    prune: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not labels.is_dns_subdomain(value):
            raise ValueError(f"{value!r} is not a valid Secret name (lowercase RFC 1123 subdomain)")
        return value

    @field_validator("service_accounts")
    @classmethod
    def _service_accounts(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if n != "*" and not labels.is_dns_subdomain(n)]
        if bad:
            raise ValueError(f"not valid ServiceAccount names: {', '.join(map(repr, bad))}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [
            p for k, v in value.items() for p in (labels.label_key_problem(k), labels.label_value_problem(v)) if p
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return _no_reserved(value)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [p for k in value for p in [labels.label_key_problem(k)] if p]
        if problems:
            raise ValueError("; ".join(problems))
        return _no_reserved(value)


def _no_reserved(value: dict[str, str]) -> dict[str, str]:
    reserved = [k for k in value if k.startswith(RESERVED_PREFIXES)]
    if reserved:
        raise ValueError(f"keys reserved for syncd's own bookkeeping: {', '.join(reserved)}")
    return value


class Retry(_Strict):
    min: Duration = dt.timedelta(seconds=5)
    max: Duration = dt.timedelta(minutes=5)

    @model_validator(mode="after")
    def _ordered(self) -> Retry:
        if self.min > self.max:
            raise ValueError("min is longer than max")
        return self


class Schedule(_Strict):
    interval: Duration = dt.timedelta(minutes=5)
    jitter: Duration = dt.timedelta(seconds=30)
    refresh_before_expiry: float = Field(
        0.33, gt=0, lt=1, description="refresh once this fraction of the lifetime is left"
    )
    retry: Retry = Retry()

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value


class Server(_Strict):
    address: str = Field(
        "0.0.0.0:8080", pattern=r"^[^\s:]*:\d{1,5}$", description="host:port for /metrics /healthz /readyz"
    )


class LeaderElection(_Strict):
    enabled: bool = False
    namespace: str = "syncd"
    name: str = "syncd"
    lease_duration: Duration = dt.timedelta(seconds=15)


class Config(_Strict):
    """The whole config file."""

    vault: VaultConfig | None = None
    credentials: list[Credential] = Field(min_length=1)
    secrets: list[SecretSpec] = Field(min_length=1)
    schedule: Schedule = Schedule()
    server: Server = Server()
    leader_election: LeaderElection = LeaderElection()

    def credential(self, name: str) -> Credential:
        return next(c for c in self.credentials if c.name == name)


def _path(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _cross_reference_problems(raw: dict[str, Any]) -> list[ConfigProblem]:
    """Checks that span sections; run on the raw mapping so they add to pydantic's findings."""
    problems: list[ConfigProblem] = []
    credentials = _list(raw.get("credentials"))
    seen: dict[str, int] = {}
    for index, credential in enumerate(credentials):
        if not isinstance(credential, dict) or not isinstance(credential.get("name"), str):
            continue
        name = credential["name"]
        if name in seen:
            problems.append(
                ConfigProblem(
                    f"credentials[{index}].name",
                    f"duplicate credential name {name!r} (first at credentials[{seen[name]}])",
                )
            )
        seen.setdefault(name, index)
        if "vault" in credential and not raw.get("vault"):
            problems.append(
                ConfigProblem(
                    f"credentials[{index}].vault", "reads from Vault, but there is no top-level `vault:` block"
                )
            )
    specs = _list(raw.get("secrets"))
    names: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("name"), str):
            if spec["name"] in names:
                problems.append(
                    ConfigProblem(
                        f"secrets[{index}].name",
                        f"duplicate secret name {spec['name']!r} (first at secrets[{names[spec['name']]}])",
                    )
                )
            names.setdefault(spec["name"], index)
        refs = _list(spec.get("credentials"))
        for ref_index, ref in enumerate(refs):
            if isinstance(ref, str) and ref not in seen:
                problems.append(
                    ConfigProblem(f"secrets[{index}].credentials[{ref_index}]", f"unknown credential {ref!r}")
                )
    return problems


def parse_config(raw: object, source: str = "config") -> Config:
    """Validate an already-parsed mapping; raise ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(source, [ConfigProblem("", f"expected a mapping at the top level, got {type(raw).__name__}")])
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [
            ConfigProblem(_path(e["loc"]), _message(e)) for e in exc.errors(include_url=False, include_input=False)
        ]
    problems += _cross_reference_problems(raw)
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


def load_config(path: Path) -> Config:
    """Read and validate a YAML config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [ConfigProblem("", f"cannot read the file: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [ConfigProblem("", "the file is not UTF-8 text")]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(str(path), [ConfigProblem("", f"{where}{problem}")]) from exc
    return parse_config(raw, str(path))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, as committed in config/schema.json."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "syncd config"
    return schema
