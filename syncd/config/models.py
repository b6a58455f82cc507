"""The config file's models (SPEC §3), except credentials (syncd.config.credentials)."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from syncd.config.credentials import Credential
from syncd.config.fields import SERVER_ADDRESS, Duration, _fullmatch, _positive, _Strict
from syncd.core import kube_syntax as labels
from syncd.core.values import DEFAULT_INSTANCE
from syncd.registry.keys import canonical_key
from syncd.registry.kubelet import keyring_key

RESERVED_PREFIXES = ("syncd.io/", "app.kubernetes.io/managed-by")
DEFAULT_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# A model validator's finding about one of its fields: syncd.config.messages reports it at that field.
FIELD_PROBLEM = "field_problem"
_GLOB_META = re.compile(r"[*?\[\]!]")
_NAMESPACE_CHARS = re.compile(r"[-a-z0-9]*")


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

    @property
    def sends_api_token(self) -> bool:
        """Kubernetes auth with the pod's own API token: Vault receives a token the apiserver accepts."""
        return self.method == "kubernetes" and self.jwt_file == DEFAULT_SA_TOKEN


class VaultConfig(_Strict):
    """The Vault (or OpenBao) server; needed only when a credential reads from Vault."""

    address: str | None = Field(None, description="server URL such as https://vault:8200; default $VAULT_ADDR")
    allow_http: bool = Field(
        False,
        description="accept an http:// address (this one or $VAULT_ADDR): Vault's token, the login JWT and "
        "every credential then cross the network unencrypted. Off: check-config refuses http://",
    )
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

    @model_validator(mode="after")
    def _plain_http(self) -> VaultConfig:
        """$VAULT_ADDR counts as much as `address`: the check is on the address syncd will use."""
        if self.plain_http and not self.allow_http:
            where = f"{self.url!r}" if self.address else f"not set, and $VAULT_ADDR {self.url!r}"
            message = (
                f"{where} is plain HTTP: syncd's Vault token, its login and every credential it reads would "
                "cross the network unencrypted; use https://, or set vault.allow_http: true to accept that"
            )
            raise PydanticCustomError(FIELD_PROBLEM, message, {"field": "address"})
        return self

    @property
    def url(self) -> str:
        return self.address or os.environ.get("VAULT_ADDR", "")

    @property
    def plain_http(self) -> bool:
        return self.url.strip().lower().startswith("http://")


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

    names: list[str] = Field(default_factory=list, description="namespace names (the only way to select kube-system)")
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


def _secret_name(value: str) -> str:
    if not labels.is_dns_subdomain(value):
        raise ValueError(f"{value!r} is not a valid Secret name (lowercase RFC 1123 subdomain)")
    return value


def _service_account_names(value: list[str]) -> list[str]:
    bad = [n for n in value if n != "*" and not labels.is_dns_subdomain(n)]
    if bad:
        raise ValueError(f"not valid ServiceAccount names: {', '.join(map(repr, bad))}")
    return value


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
        return _secret_name(value)

    @field_validator("service_accounts")
    @classmethod
    def _service_accounts(cls, value: list[str]) -> list[str]:
        return _service_account_names(value)

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
    relist_interval: Duration = Field(
        dt.timedelta(hours=1),
        description="syncd run: time between full re-lists of what the watches keep (repairs a missed event)",
    )

    @field_validator("interval", "relist_interval")
    @classmethod
    def _at_least_a_second(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value


class ServerTls(_Strict):
    """Serve HTTPS with this certificate; the files are re-read when they change (cert-manager)."""

    cert_file: Path = Field(description="PEM certificate chain, e.g. the tls.crt of a mounted kubernetes.io/tls Secret")
    key_file: Path = Field(description="PEM private key, e.g. tls.key")


def _host_port(value: str) -> str:
    port = value.rpartition(":")[2]
    if not _fullmatch(SERVER_ADDRESS, value) or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port such as 0.0.0.0:8080 (port 1-65535)")
    return value


class Server(_Strict):
    """The HTTP server for Prometheus and the kubelet's probes (and, later, the admission webhook)."""

    address: str = Field(
        "0.0.0.0:8080",
        json_schema_extra={"pattern": SERVER_ADDRESS},
        description="host:port for /metrics /healthz /readyz",
    )
    tls: ServerTls | None = Field(None, description="serve HTTPS (probes too: set `scheme: HTTPS` on them); off: HTTP")
    metrics_auth: Literal["none", "kubernetes"] = Field(
        "none",
        description="kubernetes: /metrics needs a bearer token that the Kubernetes API authenticates (TokenReview) "
        "and allows to `get` the non-resource URL /metrics (SubjectAccessReview), as kube-rbac-proxy checks; "
        "syncd's ServiceAccount needs create on tokenreviews and subjectaccessreviews (system:auth-delegator). "
        "The probes never need a token",
    )
    max_connections: int = Field(
        256,
        ge=8,
        le=10000,
        description="open connections at most; past it a new one displaces the one that has waited longest for a "
        "request, so idle and slow clients cannot lock the probes out",
    )
    read_timeout: Duration = Field(
        dt.timedelta(seconds=10),
        description="a whole request (line, headers, body) must arrive within this long of the connection or of the "
        "previous answer; a client that does not is cut off. Also bounds the TLS handshake and sending an answer",
    )
    max_body_bytes: int = Field(
        1 << 20, ge=0, le=64 << 20, description="largest request body accepted; larger ones are answered 413"
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _host_port(value)

    @field_validator("read_timeout")
    @classmethod
    def _read_timeout(cls, value: dt.timedelta) -> dt.timedelta:
        if not 1 <= value.total_seconds() <= 300:
            raise ValueError("must be between 1s and 5m")
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


INJECT_LABEL = "syncd.io/inject"  # "false" on a Pod or namespace: neither the webhook nor repair touches it


class AdmissionTls(_Strict):
    """Where the webhook's serving certificate comes from. Unset: syncd keeps a CA and a serving
    certificate in one Secret of its own (`secret`), renews it, and keeps the webhook
    configuration's caBundle current."""

    cert_file: Path = Field(description="PEM certificate chain (cert-manager: the tls.crt of its Secret, mounted)")
    key_file: Path = Field(description="PEM private key (tls.key)")


class Admission(_Strict):
    """A mutating admission webhook that appends the selected specs' Secrets to a new Pod's
    imagePullSecrets, so that a Pod created with its namespace never misses its pull Secret."""

    enabled: bool = Field(False, description="serve the webhook on `address` (every replica, standbys too)")
    address: str = Field(
        "0.0.0.0:8443", json_schema_extra={"pattern": SERVER_ADDRESS}, description="host:port of the HTTPS webhook"
    )
    namespace: str = Field(
        "syncd", description="syncd's own namespace: its Service and TLS Secret live there; never mutated"
    )
    service: str = Field("syncd-webhook", description="the Service in front of the webhook (unless `url` is set)")
    url: str | None = Field(
        None,
        description="https:// URL the apiserver calls instead of the Service (a webhook outside the cluster); "
        "its host goes into the generated certificate",
    )
    configuration: str | None = Field(
        None,
        description="name of the MutatingWebhookConfiguration syncd keeps the caBundle of; default syncd "
        "(syncd-<instance> for another instance)",
    )
    secret: str | None = Field(
        None,
        description="name of the kubernetes.io/tls Secret in `namespace` holding the CA and serving certificate; "
        "default syncd-webhook-tls (syncd-<instance>-webhook-tls)",
    )
    tls: AdmissionTls | None = Field(
        None, description="serve this certificate instead (cert-manager); syncd then leaves the caBundle alone"
    )
    timeout_seconds: int = Field(2, ge=1, le=2, description="the apiserver's timeout for one call (at most 2s)")
    max_body_bytes: int = Field(
        3 << 20,
        ge=1024,
        le=8 << 20,
        description="largest AdmissionReview accepted (the apiserver's own limit is 3 MiB)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _host_port(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not labels.is_dns_label(value):
            raise ValueError(f"{value!r} is not a valid namespace name")
        return value

    @field_validator("service", "configuration", "secret")
    @classmethod
    def _object_name(cls, value: str | None) -> str | None:
        if value is not None and not labels.is_dns_label(value):
            raise ValueError(f"{value!r} is not a valid object name (lowercase RFC 1123 label)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https://[^\s/?#]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not an https:// URL such as https://10.0.0.5:8443/mutate")
        return value


class RetiredSecret(_Strict):
    """A secret spec removed from `secrets`, with the ServiceAccounts it linked its Secret to: syncd
    takes those references back (and `syncd rbac` keeps granting those ServiceAccounts until then)."""

    name: str = Field(description="the retired spec's name")
    service_accounts: list[str] = Field(
        default_factory=list, description='the spec\'s former service_accounts ("*": every ServiceAccount)'
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _secret_name(value)

    @field_validator("service_accounts")
    @classmethod
    def _service_accounts(cls, value: list[str]) -> list[str]:
        return _service_account_names(value)


class Config(_Strict):
    """The whole config file."""

    instance: str = Field(
        DEFAULT_INSTANCE,
        description="this installation's identity (label syncd.io/instance); objects of other instances are "
        "never updated, adopted or pruned. Give every installation in a cluster its own",
    )
    retired_secrets: list[str | RetiredSecret] = Field(
        default_factory=list,
        description="names of secret specs removed from this config: their Secrets (this instance's, with "
        "prune) and the ServiceAccount references syncd added are deleted; `syncd rbac` keeps granting them. "
        "An entry is the spec's name, or {name, service_accounts} with the spec's former service_accounts so that "
        "those references are taken back too",
    )
    vault: VaultConfig | None = Field(None, description="needed only when a credential uses vault")
    credentials: list[Credential] = Field(min_length=1, description="where registry credentials come from")
    secrets: list[SecretSpec] = Field(min_length=1, description="what gets written")
    schedule: Schedule = Schedule()
    server: Server = Server()
    leader_election: LeaderElection = LeaderElection()
    admission: Admission = Admission()
    pull_failures: bool = Field(
        False,
        description="watch the kubelet's image-pull failure Events (a refused login, a missing pull Secret) for "
        "images syncd's Secrets serve and count them in syncd_image_pull_failures_total; needs list/watch on "
        "events cluster-wide (`syncd rbac` adds it)",
    )
    repair_pods: bool = Field(
        False,
        description="evict controller-owned Pods stuck without the pull Secret: a Pending Pod of a selected namespace "
        "and listed ServiceAccount, admitted without the spec's Secret, failing to pull an image that Secret serves, "
        "whose Secret is in sync there, is evicted (Eviction API, rate-limited) so that its ReplicaSet, StatefulSet, "
        "DaemonSet or Job makes a new one, which gets the Secret. Never a bare Pod, nor one labelled "
        'syncd.io/inject: "false" (or in such a namespace). Watches the kubelet\'s pull-failure Events like '
        "pull_failures; `syncd rbac` adds pods get/list and pods/eviction create",
    )

    @property
    def webhook_configuration(self) -> str:
        return self.admission.configuration or _instance_name("syncd", self.instance)

    @property
    def webhook_secret(self) -> str:
        return self.admission.secret or _instance_name("syncd", self.instance, "webhook-tls")

    def credential(self, name: str) -> Credential:
        return next(c for c in self.credentials if c.name == name)

    def auth_keys(self, credential: str) -> set[str]:
        """The `auths` keys a credential renders, as the kubelet indexes them (no source is called)."""
        return {keyring_key(canonical_key(registry)) for registry in self.credential(credential).registry_names}

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not labels.is_dns_label(value):
            raise ValueError(f"{value!r} is not a valid instance name (lowercase RFC 1123 label, at most 63)")
        return value

    @field_validator("retired_secrets")
    @classmethod
    def _retired(cls, value: list[str | RetiredSecret]) -> list[str | RetiredSecret]:
        bad = [n for n in value if isinstance(n, str) and not labels.is_dns_subdomain(n)]
        if bad:
            raise ValueError(f"not valid Secret names: {', '.join(map(repr, bad))}")
        return value

    @property
    def retired(self) -> list[RetiredSecret]:
        """`retired_secrets` with each plain name (the 0.2 form) as {name: NAME}."""
        return [RetiredSecret(name=e) if isinstance(e, str) else e for e in self.retired_secrets]

    @property
    def retired_names(self) -> list[str]:
        return [entry.name for entry in self.retired]

    @model_validator(mode="after")
    def _retired_not_in_use(self) -> Config:
        both = sorted({s.name for s in self.secrets} & set(self.retired_names))
        if both:
            raise ValueError(f"retired_secrets lists secret specs still in `secrets`: {', '.join(both)}")
        return self

    def service_account_names(self) -> list[str] | None:
        """Every ServiceAccount name some spec edits, or a retired one edited; None when one says "*" (all)."""
        names = {n for spec in self.secrets for n in spec.service_accounts}
        names |= {n for retired in self.retired for n in retired.service_accounts}
        return None if "*" in names else sorted(names)


def _instance_name(base: str, instance: str, *suffix: str) -> str:
    """The default instance keeps syncd's names; another one gets its instance in each."""
    middle = [] if instance == DEFAULT_INSTANCE else [instance]
    return "-".join([base, *middle, *suffix])
