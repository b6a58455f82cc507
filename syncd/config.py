"""The config file (SPEC §3): typed, validated, every problem reported with its key path."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import types
import typing
from collections.abc import Hashable, Sequence
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
from pydantic.json_schema import GenerateJsonSchema, WithJsonSchema
from pydantic_core import core_schema

from syncd import durations, labels
from syncd.errors import ConfigError, ConfigProblem
from syncd.model import DEFAULT_INSTANCE
from syncd.validation import registry_problem

_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": durations.PATTERN, "examples": ["30s", "5m", "12h", "1h30m"]},
        {"type": "number", "minimum": 0, "description": "seconds"},
    ]
}
Duration = Annotated[
    dt.timedelta,
    BeforeValidator(durations.parse_duration),
    PlainSerializer(durations.format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
Registry = Annotated[str, Field(min_length=1, description="registry host[:port], as in `docker login HOST`")]
RESERVED_PREFIXES = ("syncd.io/", "app.kubernetes.io/managed-by")
DEFAULT_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# Patterns are published in the JSON Schema and checked by validators with friendlier messages.
CREDENTIAL_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
HELPER_NAME = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$"
SERVER_ADDRESS = r"^[^\s:]*:[0-9]{1,5}$"
_GLOB_META = re.compile(r"[*?\[\]!]")
_NAMESPACE_CHARS = re.compile(r"[-a-z0-9]*")


def _fullmatch(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None


def _positive(value: dt.timedelta) -> dt.timedelta:
    if value <= dt.timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VaultAuth(_Strict):
    """How syncd logs in to Vault. One login is reused and renewed across credentials and syncs."""

    method: Literal["token", "approle", "kubernetes", "jwt"] = Field("token", description="how to log in")
    role: str | None = Field(None, min_length=1, description="role to log in as (kubernetes, jwt)")
    mount: str | None = Field(None, min_length=1, description="auth mount path; defaults to the method name")
    token_file: Path | None = Field(
        None,
        description="file holding the token: the Vault token (token; default $VAULT_TOKEN), "
        "or the JWT (kubernetes: the pod's ServiceAccount token by default; jwt: required)",
    )
    role_id: str | None = Field(None, min_length=1, description="AppRole role_id (approle)")
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

    address: str | None = Field(None, description="server URL such as https://vault:8200; default $VAULT_ADDR")
    ca_cert: Path | None = Field(None, description="CA bundle for the server's TLS cert; TLS is always verified")
    namespace: str | None = Field(None, description="Vault Enterprise namespace")
    auth: VaultAuth = VaultAuth()
    timeout: Duration = Field(dt.timedelta(seconds=10), description="per request")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not a URL such as https://vault.vault.svc:8200")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: dt.timedelta) -> dt.timedelta:
        return _positive(value)

    @property
    def url(self) -> str:
        return self.address or os.environ.get("VAULT_ADDR", "")


class VaultSecret(_Strict):
    """Where a credential lives in Vault and which fields hold it."""

    kv: Literal[1, 2] | None = Field(None, description="KV engine version; omit for a plain logical read")
    mount: str = Field("secret", min_length=1, description="secrets engine mount path")
    path: str = Field(min_length=1, description="path of the secret below the mount")
    username_field: str = Field("username", min_length=1)
    password_field: str = Field("password", min_length=1)
    email_field: str | None = Field("email", description="optional; a missing field means no email")


class Credential(_Strict):
    """A registry credential and the one source it comes from (vault, helper or docker_config)."""

    name: str = Field(
        min_length=1,
        max_length=63,
        json_schema_extra={"pattern": CREDENTIAL_NAME},
        description="what secret specs call it (and the metric label)",
    )
    registry: Registry | None = Field(None, description="required for vault and helper credentials")
    vault: VaultSecret | None = None
    helper: str | None = Field(
        None, json_schema_extra={"pattern": HELPER_NAME}, description="runs docker-credential-<helper> get"
    )
    helper_timeout: Duration = Field(dt.timedelta(seconds=30), description="how long the helper may take")
    docker_config: Path | None = Field(None, description="a docker config.json")
    registries: list[Registry] = Field(default_factory=list, description="registries to take from docker_config")
    lifetime: Duration | None = Field(
        None, description="how long a fetched credential is valid, when the source does not say"
    )
    verify: bool = Field(
        False,
        description="check a freshly fetched login against the registry's /v2/ (Basic, then the Bearer token "
        "flow) before writing it; a login the registry rejects is not rolled out",
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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _fullmatch(CREDENTIAL_NAME, value):
            raise ValueError(f"{value!r} is not a valid credential name (letters, digits, '-', '_', '.')")
        return value

    @field_validator("helper")
    @classmethod
    def _helper(cls, value: str | None) -> str | None:
        if value is not None and not _fullmatch(HELPER_NAME, value):
            raise ValueError(
                f"{value!r} is not a helper name: give what follows docker-credential- "
                "(ecr-login runs docker-credential-ecr-login from $PATH), never a path"
            )
        return value

    @field_validator("helper_timeout", "lifetime")
    @classmethod
    def _durations(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        return _positive(value) if value is not None else None

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


def _glob_problem(glob: str) -> str | None:
    """A glob that no namespace name can match is a typo (`Team-*`, `team_*`)."""
    if not glob:
        return "an empty name or glob"
    if not _NAMESPACE_CHARS.fullmatch(_GLOB_META.sub("", glob)):
        return f"{glob!r} can never match: namespace names are lowercase letters, digits and '-'"
    return None


def _check_globs(value: list[str]) -> list[str]:
    problems = [p for p in map(_glob_problem, value) if p]
    if problems:
        raise ValueError("; ".join(problems))
    return value


class Namespaces(_Strict):
    """A namespace is selected by names, patterns or selector, minus exclude."""

    names: list[str] = Field(default_factory=list, description="namespace names")
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

    @field_validator("patterns", "exclude")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return _check_globs(value)

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

    name: str = Field(min_length=1, max_length=253, description="the Secret's name in every namespace")
    credentials: list[str] = Field(min_length=1, description="credential names merged into one .dockerconfigjson")
    namespaces: Namespaces
    service_accounts: list[str] = Field(default_factory=list, description='[] none, ["*"] every ServiceAccount')
    on_conflict: Literal["skip", "adopt"] = Field(
        "skip", description="a same-named Secret that syncd does not manage: skip (report it) or adopt"
    )
    prune: bool = Field(True, description="delete this spec's Secrets from namespaces no longer selected")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on every Secret")
    annotations: dict[str, str] = Field(default_factory=dict, description="extra annotations on every Secret")

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
    """Exponential backoff after a failed sync, doubling from min up to max."""

    min: Duration = Field(dt.timedelta(seconds=5), description="first wait; must be longer than 0s")
    max: Duration = Field(dt.timedelta(minutes=5), description="longest wait")

    @field_validator("min")
    @classmethod
    def _min(cls, value: dt.timedelta) -> dt.timedelta:
        return _positive(value)  # doubling 0s stays 0s: a busy loop against a failing source

    @model_validator(mode="after")
    def _ordered(self) -> Retry:
        if self.min > self.max:
            raise ValueError("min is longer than max")
        return self


class Schedule(_Strict):
    """When each secret spec is synced."""

    interval: Duration = Field(dt.timedelta(minutes=5), description="time between syncs of one spec")
    jitter: Duration = Field(dt.timedelta(seconds=30), description="random delay added to each run")
    refresh_before_expiry: float = Field(
        0.33, gt=0, lt=1, description="refresh once this fraction of the lifetime is left"
    )
    retry: Retry = Retry()

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value


class Server(_Strict):
    """The HTTP server for Prometheus and the kubelet's probes."""

    address: str = Field(
        "0.0.0.0:8080",
        json_schema_extra={"pattern": SERVER_ADDRESS},
        description="host:port for /metrics /healthz /readyz",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        port = value.rpartition(":")[2]
        if not _fullmatch(SERVER_ADDRESS, value) or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port such as 0.0.0.0:8080 (port 1-65535)")
        return value


class LeaderElection(_Strict):
    """With several replicas, only the holder of a Lease writes."""

    enabled: bool = Field(False, description="off: every replica writes (run one replica)")
    namespace: str = Field("syncd", description="namespace of the Lease")
    name: str = Field("syncd", description="name of the Lease")
    lease_duration: Duration = Field(dt.timedelta(seconds=15), description="how long a lapsed lease blocks a takeover")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not labels.is_dns_label(value):
            raise ValueError(f"{value!r} is not a valid namespace name")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not labels.is_dns_subdomain(value):
            raise ValueError(f"{value!r} is not a valid Lease name (lowercase RFC 1123 subdomain)")
        return value

    @field_validator("lease_duration")
    @classmethod
    def _lease(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value


class Config(_Strict):
    """The whole config file."""

    instance: str = Field(
        DEFAULT_INSTANCE,
        description="this installation's identity (label syncd.io/instance); objects of other instances are "
        "never updated, adopted or pruned. Give every installation in a cluster its own",
    )
    retired_secrets: list[str] = Field(
        default_factory=list,
        description="names of secret specs removed from this config: their Secrets (this instance's, with "
        "prune) and the ServiceAccount references syncd added are deleted; `syncd rbac` keeps granting them",
    )
    vault: VaultConfig | None = Field(None, description="needed only when a credential uses vault")
    credentials: list[Credential] = Field(min_length=1, description="where registry credentials come from")
    secrets: list[SecretSpec] = Field(min_length=1, description="what gets written")
    schedule: Schedule = Schedule()
    server: Server = Server()
    leader_election: LeaderElection = LeaderElection()

    def credential(self, name: str) -> Credential:
        return next(c for c in self.credentials if c.name == name)

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not labels.is_dns_label(value):
            raise ValueError(f"{value!r} is not a valid instance name (lowercase RFC 1123 label, at most 63)")
        return value

    @field_validator("retired_secrets")
    @classmethod
    def _retired(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not labels.is_dns_subdomain(n)]
        if bad:
            raise ValueError(f"not valid Secret names: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _retired_not_in_use(self) -> Config:
        both = sorted({s.name for s in self.secrets} & set(self.retired_secrets))
        if both:
            raise ValueError(f"retired_secrets lists secret specs still in `secrets`: {', '.join(both)}")
        return self

    def service_account_names(self) -> list[str] | None:
        """Every ServiceAccount name some spec edits; None when one says "*" (all of them)."""
        names = {n for spec in self.secrets for n in spec.service_accounts}
        return None if "*" in names else sorted(names)


# --- turning pydantic's findings into ConfigProblems ---------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _child(node: object, part: int | str) -> object:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _path(loc: Sequence[int | str], raw: object) -> str:
    """`secrets[0].namespaces.selector`; walks the input so that an int dict key is not shown as an index."""
    text, node = "", raw
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself is wrong"
            continue
        if isinstance(part, int) and not isinstance(node, dict):
            text += f"[{part}]"
        elif isinstance(part, str) and not _IDENTIFIER.fullmatch(part):
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            text += f".{part}" if text else str(part)
        node = _child(node, part)
    return text


def _kind(value: object) -> str:
    """A YAML user's name for a parsed value's type."""
    if value is None:
        return "null"
    kinds: list[tuple[type, str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a number")]
    kinds += [(str, "a string"), (list, "a list"), (dict, "a mapping")]
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The model inside `Model`, `Model | None`, `list[Model]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        return next((m for arg in typing.get_args(annotation) if (m := _model_of(arg))), None)
    return None


def _known_keys(parent: Sequence[int | str]) -> list[str]:
    model: type[BaseModel] | None = Config
    for part in parent:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_of(field.annotation) if field else None
    return list(model.model_fields) if model else []


def _unknown_key(loc: Sequence[int | str]) -> str:
    known = _known_keys(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(known)})" if known else "unknown key"


_TYPE_NAMES = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
}


def _message(error: Any, raw: object) -> str:
    kind: str = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(error["loc"])
    if kind == "missing":
        return "required key is missing"
    if kind in ("too_short", "string_too_short") and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    if kind == "invalid_key" or "[key]" in error["loc"]:
        return "this key is not a string (quote it in the YAML)"
    if kind in _TYPE_NAMES:
        value = raw
        for part in error["loc"]:
            value = _child(value, part)
        quote = kind == "string_type" and isinstance(value, bool)
        hint = " (quote it: YAML reads yes/no/on/off/true/false as booleans)" if quote else ""
        return f"expected {_TYPE_NAMES[kind]}, got {_kind(value)}{hint}"
    return str(error["msg"]).removeprefix("Value error, ")


# --- checks that span sections ---------------------------------------------------------------


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _credential_names(raw: dict[Any, Any]) -> dict[str, int] | None:
    """name -> first index; None when references cannot be checked (no list, or an entry without a name)."""
    credentials = raw.get("credentials")
    if not isinstance(credentials, list) or not credentials:
        return None
    names: dict[str, int] = {}
    for index, credential in enumerate(credentials):
        if not isinstance(credential, dict) or not isinstance(credential.get("name"), str):
            return None
        names.setdefault(credential["name"], index)
    return names


def _duplicate_names(section: str, what: str, entries: list[Any]) -> list[ConfigProblem]:
    """`name` given twice in a list section, reported at the second one."""
    problems: list[ConfigProblem] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            where, first = f"{section}[{index}].name", f"{section}[{seen[name]}]"
            problems.append(ConfigProblem(where, f"duplicate {what} name {name!r} (first at {first})"))
        seen.setdefault(name, index)
    return problems


def _credential_problems(raw: dict[Any, Any]) -> list[ConfigProblem]:
    credentials = _list(raw.get("credentials"))
    problems = _duplicate_names("credentials", "credential", credentials)
    for index, credential in enumerate(credentials):
        if isinstance(credential, dict) and credential.get("vault") is not None and raw.get("vault") is None:
            message = "reads from Vault, but there is no top-level `vault:` block"
            problems.append(ConfigProblem(f"credentials[{index}].vault", message))
    return problems


def _registries(credential: object) -> list[str]:
    """The registries a raw credential entry will render, as far as they can be known."""
    if not isinstance(credential, dict):
        return []
    if credential.get("docker_config") is not None:
        return [r for r in _list(credential.get("registries")) if isinstance(r, str)]
    registry = credential.get("registry")
    return [registry] if isinstance(registry, str) else []


def _reference_problems(index: int, spec: dict[Any, Any], raw: dict[Any, Any]) -> list[ConfigProblem]:
    known = _credential_names(raw)
    credentials = _list(raw.get("credentials"))
    problems: list[ConfigProblem] = []
    listed: dict[str, int] = {}
    registries: dict[str, str] = {}
    for ref_index, ref in enumerate(_list(spec.get("credentials"))):
        if not isinstance(ref, str):
            continue
        where = f"secrets[{index}].credentials[{ref_index}]"
        if ref in listed:
            problems.append(ConfigProblem(where, f"{ref!r} is listed twice"))
            continue
        listed[ref] = ref_index
        if known is None:
            continue
        if ref not in known:
            problems.append(ConfigProblem(where, f"unknown credential {ref!r}"))
            continue
        for registry in _registries(credentials[known[ref]]):
            if registry in registries:
                message = f"registry {registry!r} is also given by credential {registries[registry]!r}"
                problems.append(ConfigProblem(where, f"{message}; one Secret holds one entry per registry"))
            registries.setdefault(registry, ref)
    return problems


def _secret_problems(raw: dict[Any, Any]) -> list[ConfigProblem]:
    specs = _list(raw.get("secrets"))
    problems = _duplicate_names("secrets", "secret", specs)
    for index, spec in enumerate(specs):
        if isinstance(spec, dict):
            problems += _reference_problems(index, spec, raw)
    return problems


def _cross_reference_problems(raw: dict[Any, Any]) -> list[ConfigProblem]:
    """Checks that span sections; run on the raw mapping so they add to pydantic's findings."""
    return _credential_problems(raw) + _secret_problems(raw)


def parse_config(raw: object, source: str = "config") -> Config:
    """Validate an already-parsed mapping; raise ConfigError listing every problem."""
    if raw is None:
        raise ConfigError(source, [ConfigProblem("", "the config is empty: expected credentials: and secrets:")])
    if not isinstance(raw, dict):
        message = f"expected a mapping (credentials:, secrets:, ...) at the top level, got {_kind(raw)}"
        raise ConfigError(source, [ConfigProblem("", message)])
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [
            ConfigProblem(_path(e["loc"], raw), _message(e, raw))
            for e in exc.errors(include_url=False, include_input=False)
        ]
    problems += _cross_reference_problems(raw)
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


# --- reading the file --------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *anchor` may be overridden by the mapping's own keys
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            message = f"duplicate key {key!r} (YAML would keep only the last one)"
            raise yaml.constructor.ConstructorError(None, None, message, key_node.start_mark)
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_column(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _yaml_problem(exc: yaml.YAMLError, text: str) -> ConfigProblem:
    if isinstance(exc, yaml.reader.ReaderError):
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        return ConfigProblem("", f"{_line_column(text, exc.position)}: character {char} is not allowed in YAML")
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    context = getattr(exc, "context", None)
    if context and not context.startswith("while"):
        problem = f"{context}, {problem}"
    return ConfigProblem("", f"{where}{problem}")


def _read_text(path: Path) -> str:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), [ConfigProblem("", f"cannot read the file: {exc.strerror or exc}")]) from exc
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _line_column(content.decode("utf-8", errors="replace"), len(content[: exc.start].decode("utf-8")))
        raise ConfigError(str(path), [ConfigProblem("", f"{where}: the file is not UTF-8 text")]) from exc


def load_config(path: Path) -> Config:
    """Read and validate a YAML config file."""
    text = _read_text(path)
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [_yaml_problem(exc, text)]) from exc
    except RecursionError as exc:
        raise ConfigError(str(path), [ConfigProblem("", "the YAML is nested too deeply")]) from exc
    return parse_config(raw, str(path))


# --- JSON Schema ---------------------------------------------------------------------------------


class _SchemaGenerator(GenerateJsonSchema):
    """Durations as users write them (`30s`, not `PT30S`), and no auto-generated titles."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, dt.timedelta):
            return durations.format_duration(dft)
        return super().encode_default(dft)

    def field_title_should_be_set(self, schema: Any) -> bool:  # noqa: ARG002 - overrides
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> dict[str, Any]:
        result = super().model_schema(schema)
        result.pop("title", None)
        return result


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, as committed in config/schema.json."""
    schema = Config.model_json_schema(mode="validation", schema_generator=_SchemaGenerator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "syncd config",
        **schema,
    }
