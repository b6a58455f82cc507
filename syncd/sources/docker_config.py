"""A docker `config.json` as a credential source, resolved the way the docker CLI resolves it.

Teams already have these files (a `docker login` on a build host, a mounted Secret), often with
`credsStore` or `credHelpers` in them, so taking only `auths` would silently miss most logins.
Lookup follows docker: `credHelpers[registry]`, else `credsStore`, else `auths`, where an `auths`
key may carry a scheme and path (`https://index.docker.io/v1/`) and matches by host. Unlike docker,
a `credsStore` that has nothing for a registry falls back to `auths`, since docker would then go
anonymous, and syncd has no use for that. Error messages name the file and the key, never a value.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.config import DockerConfigCredential
from syncd.core.clock import utcnow
from syncd.core.errors import CredentialNotFound, InvalidCredential, SourceError, SourceUnavailable
from syncd.core.safe_json import INVALID, loads_or_invalid
from syncd.core.values import FetchedCredential, RegistryCredential
from syncd.registry.credential_rules import DOCKER_HUB_HOSTS
from syncd.sources.base import expiry
from syncd.sources.helper import TOKEN_USERNAME, run_helper

DOCKER_HUB = "https://index.docker.io/v1/"  # the key docker uses for Docker Hub, in auths and with helpers
_SECTIONS: dict[str, type] = {"auths": dict, "credHelpers": dict, "credsStore": str}


@dataclass(frozen=True)
class _File:
    """The parts of a config.json that hold credentials, type-checked, for one credential's fetch."""

    path: Path
    credential: str
    auths: dict[str, Any]
    cred_helpers: dict[str, Any]
    creds_store: str

    def invalid(self, what: str) -> InvalidCredential:
        return InvalidCredential(self.credential, f"{self.path}: {what}")


class DockerConfigSource:
    """Credentials for `credential.registries`, taken from the config.json at `credential.docker_config`."""

    kind = "docker_config"

    def fetch(self, credential: DockerConfigCredential) -> FetchedCredential:
        now = utcnow()
        file = _load(credential.docker_config, credential.name)
        entries = tuple(_resolve(file, registry, credential) for registry in credential.registries)
        return FetchedCredential(
            name=credential.name, source=self.kind, entries=entries, expires_at=expiry(credential, now=now)
        )


def _load(path: Path, credential: str) -> _File:
    document = _read_json(path, credential)
    for key, kind in _SECTIONS.items():
        value = document.get(key)
        if value is not None and not isinstance(value, kind):
            expected = "object" if kind is dict else "string"
            raise InvalidCredential(credential, f"{path}: `{key}` is not a JSON {expected}")
    return _File(
        path=path,
        credential=credential,
        auths=document.get("auths") or {},
        cred_helpers=document.get("credHelpers") or {},
        creds_store=document.get("credsStore") or "",
    )


def _read_json(path: Path, credential: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceUnavailable(credential, f"cannot read docker config {path}: {exc.strerror or exc}") from exc
    document = loads_or_invalid(raw)
    if document is INVALID:
        raise InvalidCredential(credential, f"{path}: not a JSON docker config")
    if not isinstance(document, dict):
        raise InvalidCredential(credential, f"{path}: expected a JSON object at the top level")
    return document


def _resolve(file: _File, registry: str, credential: DockerConfigCredential) -> RegistryCredential:
    auths_key = _match(file.auths, registry)
    from_auths = _from_auths(file, auths_key, registry) if auths_key is not None else None
    helper, origin = _helper_for(file, registry)
    if helper:
        email = from_auths.email if from_auths else ""  # docker keeps the email in auths beside a helper
        try:
            return _from_helper(file, helper, origin, registry, credential, email=email)
        except CredentialNotFound:
            if origin != "credsStore" or from_auths is None:
                raise
    if from_auths is None:
        raise CredentialNotFound(file.credential, f"{file.path} has no credentials for {registry}")
    return from_auths


def _helper_for(file: _File, registry: str) -> tuple[str, str]:
    """The helper docker would ask for `registry` ("" for none) and where the file names it."""
    key = _match(file.cred_helpers, registry)
    if key is None:
        return file.creds_store, "credsStore"
    helper = file.cred_helpers[key]
    if not isinstance(helper, str):
        raise file.invalid(f"credHelpers[{key!r}] is not a string")
    return helper, f"credHelpers[{key!r}]"  # docker: an empty helper name here means "use auths"


def _from_helper(
    file: _File, helper: str, origin: str, registry: str, credential: DockerConfigCredential, *, email: str
) -> RegistryCredential:
    try:
        username, secret = run_helper(
            helper,
            _server_url(registry),
            timeout=credential.helper_timeout,
            credential_name=credential.name,
            environment=credential.helper_env,
        )
    except SourceError as exc:
        # Same class (the fallback and the metrics depend on it), with the file and key that chose the helper.
        raise type(exc)(file.credential, f"{file.path} {origin}: {exc.detail}") from exc
    return RegistryCredential(registry=registry, username=username, password=secret, email=email)


def _from_auths(file: _File, key: str, registry: str) -> RegistryCredential | None:
    """The login in `auths[key]`, or None when the entry is empty (docker leaves `{}` beside a credsStore)."""
    entry = file.auths[key]
    if not isinstance(entry, dict):
        raise file.invalid(f"auths[{key!r}] is not a JSON object")
    fields = {
        name: _string(file, entry, key, name) for name in ("auth", "username", "password", "identitytoken", "email")
    }
    username, password = (
        _decode_auth(file, key, fields["auth"]) if fields["auth"] else (fields["username"], fields["password"])
    )
    if not password and fields["identitytoken"]:
        # docker would trade an identity token (an OAuth refresh token) for an access token; kubelet cannot,
        # so it becomes the password. Registries such as ACR accept that with the username stored beside it.
        password = fields["identitytoken"]
        username = username or TOKEN_USERNAME
    if not username and not password:
        return None
    return RegistryCredential(registry=registry, username=username, password=password, email=fields["email"])


def _string(file: _File, entry: dict[str, Any], key: str, name: str) -> str:
    value = entry.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise file.invalid(f"auths[{key!r}].{name} is not a string")
    return value


def _decode_auth(file: _File, key: str, auth: str) -> tuple[str, str]:
    """`auth` is base64 of `username:password`; every failure names the key and never the value."""
    text = _b64_text(auth)
    if text is None:
        raise file.invalid(f"auths[{key!r}].auth is not base64 of UTF-8 text")
    username, colon, password = text.partition(":")
    if not colon:
        raise file.invalid(f"auths[{key!r}].auth is not base64 of `username:password`")
    # docker trims NUL padding that some tools leave after the password.
    return username, password.strip("\x00")


def _b64_text(value: str) -> str | None:
    """Decoded text, or None; raising happens outside this `except`, as UnicodeDecodeError keeps the bytes."""
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:
        return None


def _match(mapping: dict[str, Any], registry: str) -> str | None:
    """The key of `mapping` for `registry`: the exact key, else docker's key, else one with the same host."""
    for key in (registry, _server_url(registry)):
        if key in mapping:
            return key
    host = _same_host(registry)
    return next((key for key in sorted(mapping) if _same_host(key) == host), None)


def _host(key: str) -> str:
    """host[:port] of a registry key, as docker's ConvertToHostname, without scheme and path."""
    return key.split("://", 1)[-1].split("/", 1)[0]


def _same_host(key: str) -> str:
    """What two keys for one registry share: the host, in lower case, Docker Hub's aliases as one."""
    host = _host(key).lower()
    return "index.docker.io" if host in DOCKER_HUB_HOSTS else host


def _server_url(registry: str) -> str:
    """What docker passes to a helper: Docker Hub's legacy URL, else the registry's host[:port]."""
    return DOCKER_HUB if _same_host(registry) == "index.docker.io" else _host(registry)
