"""Vault / OpenBao as a credential source: the only module in syncd that imports hvac.

Why one long-lived session: a login per fetch would multiply auth requests by the number of
credentials and syncs, and every login creates a token Vault must track until it expires. So one
`VaultSession` logs in lazily, renews its token while it can, and logs in again when the token
expired, cannot be renewed any further, or is refused (revoked, rotated): SPEC §6.

Every hvac and requests error is translated here into syncd's own errors. hvac's messages can
carry response bodies, so they are never passed on: each message is built from the credential
name, the `mount/path` and the HTTP status only. Nothing here logs response data, a token, a
secret_id, a JWT or a secret value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from syncd.config import VaultConfig, VaultCredential, VaultSecret
from syncd.core.clock import utcnow
from syncd.core.durations import parse_duration
from syncd.core.errors import CredentialNotFound, InvalidCredential, SourceDenied, SourceError, SourceUnavailable
from syncd.core.token_expiry import earliest
from syncd.core.values import FetchedCredential, Lease, RegistryCredential
from syncd.sources.base import expiry

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], dt.datetime]
Operation = Callable[[Any], T]  # receives the hvac.Client, which has no type hints

_DENIED = (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized)
# hvac raises one class per HTTP status; messages quote the status, never hvac's text.
_STATUS: dict[type[Exception], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


@dataclasses.dataclass(frozen=True)
class TokenLease:
    """What Vault told us about our token. A `ttl` of zero means it never expires (root, periodic 0)."""

    obtained_at: dt.datetime
    ttl: dt.timedelta
    renewable: bool

    @classmethod
    def from_auth(cls, auth: Mapping[str, Any], now: dt.datetime) -> TokenLease:
        """From the `auth` block of a login or renew-self answer (`lease_duration` in seconds)."""
        seconds = auth.get("lease_duration") or 0
        return cls(now, dt.timedelta(seconds=int(seconds)), bool(auth.get("renewable")))

    def expired(self, now: dt.datetime) -> bool:
        return bool(self.ttl) and now >= self.obtained_at + self.ttl

    def wants_renewal(self, now: dt.datetime) -> bool:
        """Renewable and less than half of its TTL left: renew early so that a slow sync never outlives it."""
        return self.renewable and bool(self.ttl) and now >= self.obtained_at + self.ttl / 2


class VaultSession:
    """One hvac client and one login, shared by every Vault credential and every sync.

    `call` runs one request with a fresh token: it logs in on first use, renews the token when
    half its TTL is gone, logs in again when it expired or renewal failed, and on a 403 logs in
    once more and retries once (a token revoked, or a token file rotated). Thread-safe: jobs of
    different secret specs may fetch concurrently.
    """

    def __init__(self, config: VaultConfig, *, now: Clock = utcnow, client: Any = None) -> None:
        self.config = config
        self.address = config.url
        self.now = now
        verify: bool | str = str(config.ca_cert) if config.ca_cert else True
        # token="" stops hvac from picking up $VAULT_TOKEN or ~/.vault-token behind our back.
        self._client = (
            client
            if client is not None
            else hvac.Client(
                url=self.address or None,
                token="",
                verify=verify,
                timeout=config.timeout.total_seconds(),
                namespace=config.namespace,
            )
        )
        _warn_about(config)
        self._lease: TokenLease | None = None
        self._login_ttl = dt.timedelta(0)
        self._generation = 0  # counts logins, so that concurrent 403s cause one login, not one each
        self._lock = threading.Lock()

    @property
    def can_login_again(self) -> bool:
        """Every method can, except a token from $VAULT_TOKEN: the environment cannot change."""
        auth = self.config.auth
        return auth.method != "token" or auth.token_file is not None

    def call(self, credential: str, place: str, operation: Operation[T]) -> T:
        """Run `operation(client)` with a valid token; translate errors for `credential` at `place`."""
        if not self.address:
            raise SourceUnavailable(credential, "no Vault address: set vault.address or $VAULT_ADDR")
        with _translated(credential, place, self.address):
            generation = self._ensure_token(credential)
            try:
                return operation(self._client)
            except _DENIED:
                if not self.can_login_again:
                    raise
                log.warning("Vault refused syncd's token reading %s; logging in again", place)
                self._login_unless_done(credential, generation)
            return operation(self._client)

    def _ensure_token(self, credential: str) -> int:
        with self._lock:
            now = self.now()
            lease = self._lease
            if lease is None or (lease.expired(now) and self.can_login_again):
                self._login(credential)
            elif lease.wants_renewal(now):
                self._renew_or_login(credential)
            return self._generation

    def _login_unless_done(self, credential: str, generation: int) -> None:
        with self._lock:
            if self._generation == generation:
                self._login(credential)

    def _renew_or_login(self, credential: str) -> None:
        try:
            answer = _mapping(self._client.auth.token.renew_self())
        except hvac.exceptions.VaultError:
            # Revoked, past its max TTL, or not renewable after all. Connection errors propagate.
            log.info("Vault token renewal failed; logging in again")
            if self.can_login_again:
                self._login(credential)
            return
        self._lease = TokenLease.from_auth(_mapping(answer.get("auth")), self.now())
        log.debug("Vault token renewed for %ss", int(self._lease.ttl.total_seconds()))
        if self.can_login_again and self._lease.ttl < self._login_ttl / 2:
            # Capped by the token's max TTL: renewing again would buy less and less time.
            log.info("Vault token is near its max TTL; logging in again")
            self._login(credential)

    def _login(self, credential: str) -> None:
        """Log in with the configured method. Files are read now, so that rotated files are picked up."""
        auth = self.config.auth
        place = f"auth/{auth.mount_path}/login" if auth.method != "token" else "auth/token/lookup-self"
        self._client.token = ""  # an old token must not ride along on the login request
        self._lease = None  # if this login fails, the next call tries again
        with _translated(credential, place, self.address, login=True):
            answer = self._token_login(credential) if auth.method == "token" else self._method_login(credential)
        self._lease = answer
        self._login_ttl = answer.ttl
        self._generation += 1
        log.info(
            "logged in to Vault at %s with %s auth (mount %s); token TTL %ss",
            self.address,
            auth.method,
            auth.mount_path,
            int(answer.ttl.total_seconds()),
        )

    def _method_login(self, credential: str) -> TokenLease:
        auth = self.config.auth
        auth_api, mount = self._client.auth, auth.mount_path
        if auth.method == "approle":
            secret_id = _read_secret_file(credential, auth.secret_id_file, "auth.secret_id_file")
            answer = auth_api.approle.login(auth.role_id, secret_id, mount_point=mount)
        else:
            jwt = _read_secret_file(credential, auth.jwt_file, "auth.token_file")
            if auth.method == "kubernetes":
                answer = auth_api.kubernetes.login(auth.role, jwt, mount_point=mount)
            else:
                answer = auth_api.jwt.jwt_login(auth.role, jwt, path=mount)
        return TokenLease.from_auth(_mapping(_mapping(answer).get("auth")), self.now())

    def _token_login(self, credential: str) -> TokenLease:
        """The token method has nothing to log in with: read the token and ask Vault what it is."""
        token_file = self.config.auth.token_file
        if token_file is not None:
            token = _read_secret_file(credential, token_file, "auth.token_file")
        else:
            token = os.environ.get("VAULT_TOKEN", "").strip()
            if not token:
                raise SourceDenied(credential, "no Vault token: set vault.auth.token_file or $VAULT_TOKEN")
        self._client.token = token
        data = _mapping(_mapping(self._client.auth.token.lookup_self()).get("data"))
        return TokenLease.from_auth({"lease_duration": data.get("ttl"), "renewable": data.get("renewable")}, self.now())


def _warn_about(config: VaultConfig) -> None:
    """What the config allows but should not be left so: said once per session, at start or reload."""
    if config.plain_http:
        log.warning(
            "Vault at %s is plain HTTP (vault.allow_http: true): syncd's Vault token, its login and every "
            "credential it reads cross the network unencrypted",
            config.url,
        )
    if config.auth.sends_api_token:
        log.warning(
            "Vault's Kubernetes auth with the pod's own API token (%s): Vault, and whoever can change "
            "vault.address, receives a token the Kubernetes API accepts. Give syncd a projected "
            "ServiceAccount token with audience `vault` as vault.auth.token_file, and audience=vault "
            "on the Vault role",
            config.auth.jwt_file,
        )


class VaultSource:
    """Fetches credentials stored in Vault KV v1, KV v2, or any engine answering a logical read."""

    kind = "vault"

    def __init__(self, session: VaultSession) -> None:
        self.session = session

    @classmethod
    def from_config(cls, config: VaultConfig) -> VaultSource:
        return cls(VaultSession(config))

    def fetch(self, credential: VaultCredential) -> FetchedCredential:
        secret, registry = credential.vault, credential.host
        place = _place(secret)
        answer = self.session.call(credential.name, place, lambda client: _read(client, secret))
        data = _secret_data(credential.name, place, secret, answer)
        lease = _lease(secret, answer)
        entry = _registry_login(credential.name, registry, secret, place, data)
        now = self.session.now()
        duration = lease.duration if lease is not None else None
        expires_at = earliest(
            expiry(credential, now=now, lease=duration), _field_expiry(credential.name, place, secret, data, now)
        )
        log.debug("fetched credential %s from Vault %s", credential.name, place)
        return FetchedCredential(
            credential.name, source=self.kind, entries=(entry,), expires_at=expires_at, lease=lease
        )

    def revoke(self, credential: VaultCredential, lease: Lease) -> None:
        """Revoke a lease this source handed out (`sys/leases/revoke`): the engine deletes what it made."""
        self.session.call(credential.name, _REVOKE, lambda client: client.sys.revoke_lease(lease.id))

    def renew(self, credential: VaultCredential, lease: Lease) -> Lease:
        """Renew for the lease's own duration; Vault may grant less (its max TTL is near)."""
        seconds = int(lease.duration.total_seconds())
        answer = self.session.call(
            credential.name, _RENEW, lambda client: client.sys.renew_lease(lease.id, increment=seconds)
        )
        granted = _mapping(answer).get("lease_duration")
        if not isinstance(granted, int) or granted <= 0:
            raise InvalidCredential(credential.name, f"Vault answered {_RENEW} without a lease duration")
        return Lease(lease.id, bool(_mapping(answer).get("renewable")), dt.timedelta(seconds=granted))


def _place(secret: VaultSecret) -> str:
    return f"{secret.mount.strip('/')}/{secret.path.strip('/')}"


def _read(client: Any, secret: VaultSecret) -> object:
    mount, path = secret.mount.strip("/"), secret.path.strip("/")
    if secret.kv == 2:
        return client.secrets.kv.v2.read_secret_version(path, mount_point=mount, raise_on_deleted_version=True)
    if secret.kv == 1:
        return client.secrets.kv.v1.read_secret(path, mount_point=mount)
    return client.read(f"{mount}/{path}")  # None on 404


# The places named in errors about leases: never the lease id, which revokes the login.
_REVOKE, _RENEW = "sys/leases/revoke", "sys/leases/renew"


def _lease(secret: VaultSecret, answer: object) -> Lease | None:
    """The lease of a dynamic engine's answer. Only a plain logical read has one: a KV
    lease_duration is a refresh hint at most, and KV has nothing to revoke."""
    if secret.kv is not None or not isinstance(answer, Mapping):
        return None
    seconds, lease_id = answer.get("lease_duration"), answer.get("lease_id")
    if not isinstance(seconds, int) or seconds <= 0:
        return None
    # A lease without an id (some engines' answers) still says how long the login lives.
    return Lease(
        lease_id if isinstance(lease_id, str) else "", bool(answer.get("renewable")), dt.timedelta(seconds=seconds)
    )


def _secret_data(name: str, place: str, secret: VaultSecret, answer: object) -> Mapping[str, Any]:
    """The fields of the secret."""
    if not isinstance(answer, Mapping) or answer.get("data") is None:
        raise CredentialNotFound(name, f"nothing at {place}")
    data = answer["data"]
    if secret.kv == 2:
        data = data.get("data") if isinstance(data, Mapping) else None
        if data is None:
            raise CredentialNotFound(name, f"nothing at {place} (latest version deleted)")
    if not isinstance(data, Mapping):
        raise InvalidCredential(name, f"Vault answered for {place} without a map of fields")
    return data


def _registry_login(
    name: str, registry: str, secret: VaultSecret, place: str, data: Mapping[str, Any]
) -> RegistryCredential:
    username = secret.username or _field(name, place, data, secret.username_field, required=True)
    password = _field(name, place, data, secret.password_field, required=True)
    email = _field(name, place, data, secret.email_field, required=False) if secret.email_field else ""
    return RegistryCredential(registry=registry, username=username, password=password, email=email)


def _field_expiry(
    name: str, place: str, secret: VaultSecret, data: Mapping[str, Any], now: dt.datetime
) -> dt.datetime | None:
    """The earliest of `expires_at_field` and now + `ttl_field`, where configured (each required then)."""
    found = []
    if secret.expires_at_field is not None:
        found.append(_moment(name, place, secret.expires_at_field, data.get(secret.expires_at_field)))
    if secret.ttl_field is not None:
        found.append(now + _span(name, place, secret.ttl_field, data.get(secret.ttl_field)))
    return earliest(*found)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


_NUMBER = re.compile(r"\d+(\.\d+)?")


def _moment(name: str, place: str, field: str, value: object) -> dt.datetime:
    """Epoch seconds (a number, or digits in a string) or an RFC 3339 time with its offset."""
    if value is None:
        raise InvalidCredential(name, f"expiry field {field!r} is missing at {place}")
    seconds = _number(value)
    if seconds is not None and 0 < seconds < 1e11:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    if isinstance(value, str) and seconds is None:
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(dt.UTC)
    raise InvalidCredential(
        name, f"expiry field {field!r} at {place} is neither epoch seconds nor an RFC 3339 time with an offset"
    )


def _span(name: str, place: str, field: str, value: object) -> dt.timedelta:
    """Seconds (a number, or digits in a string) or a duration (`3599s`, `1h`)."""
    if value is None:
        raise InvalidCredential(name, f"TTL field {field!r} is missing at {place}")
    seconds = _number(value)
    if seconds is None and isinstance(value, str):
        try:
            seconds = parse_duration(value.strip()).total_seconds()
        except ValueError:
            seconds = None
    if seconds is None or seconds <= 0:
        raise InvalidCredential(
            name, f"TTL field {field!r} at {place} is not a positive number of seconds or a duration"
        )
    return dt.timedelta(seconds=seconds)


def _field(name: str, place: str, data: Mapping[str, Any], field: str, *, required: bool) -> str:
    """One string field. Messages name the field and its type, never its value."""
    value = data.get(field)
    if value is None:
        if required:
            raise InvalidCredential(name, f"field {field!r} is missing at {place}")
        return ""
    if not isinstance(value, str):
        raise InvalidCredential(name, f"field {field!r} at {place} is a {type(value).__name__}, expected a string")
    return value


def _mapping(value: object) -> Mapping[str, Any]:
    """hvac answers a dict for JSON bodies and a Response for anything else (e.g. 204)."""
    return value if isinstance(value, Mapping) else {}


def _read_secret_file(credential: str, path: Path | None, key: str) -> str:
    if path is None:
        raise SourceDenied(credential, f"cannot log in to Vault: vault.{key} is not set")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise SourceDenied(credential, f"cannot log in to Vault: cannot read {key} {path} ({reason})") from e
    if not text:
        raise SourceDenied(credential, f"cannot log in to Vault: {key} {path} is empty")
    return text


@contextlib.contextmanager
def _translated(credential: str, place: str, address: str, *, login: bool = False) -> Iterator[None]:
    """Turn hvac and requests errors into syncd's, with messages built here, never copied."""
    try:
        yield
    except hvac.exceptions.VaultError as e:
        raise _vault_error(credential, place, address, e, login=login) from e
    except requests.exceptions.RequestException as e:
        raise SourceUnavailable(credential, _connection_problem(place, address, e)) from e


def _vault_error(credential: str, place: str, address: str, e: Exception, *, login: bool) -> SourceError:
    status = _STATUS.get(type(e))
    code = f"HTTP {status}" if status else type(e).__name__
    if login and status in (400, 401, 403, 404):
        return SourceDenied(credential, f"Vault refused the login at {place} ({code}): check vault.auth")
    if status == 404:
        return CredentialNotFound(credential, f"nothing at {place} ({code}: no secret, or its latest version deleted)")
    if status == 400:
        return CredentialNotFound(credential, f"Vault rejected the read of {place} ({code}): check mount, path and kv")
    if status in (401, 403):
        return SourceDenied(credential, f"Vault denied reading {place} ({code}): check the policy of syncd's login")
    hint = ": sealed, or a standby" if status == 503 else ""
    return SourceUnavailable(credential, f"Vault at {address} failed answering for {place} ({code}{hint})")


def _connection_problem(place: str, address: str, e: requests.exceptions.RequestException) -> str:
    if isinstance(e, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            return f"TLS verification of Vault at {address} failed ({place}): check vault.ca_cert"
        return f"TLS handshake with Vault at {address} failed ({place})"
    if isinstance(e, requests.exceptions.Timeout):
        return f"Vault at {address} did not answer in time ({place})"
    if isinstance(e, requests.exceptions.ConnectionError):
        return f"cannot connect to Vault at {address} ({place})"
    return f"request to Vault at {address} failed: {type(e).__name__} ({place})"
