"""Pure: registry credentials -> `.dockerconfigjson` bytes, exactly as kubectl writes them.

`kubectl create secret docker-registry` marshals with Go's encoding/json: compact, struct fields
in the order username, password, email (omitted when empty), auth; map keys sorted; `<`, `>`,
`&`, U+2028 and U+2029 escaped; other non-ASCII text left as UTF-8. Matching it byte for byte
means a Secret written by hand with kubectl and one written by syncd hash the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from syncd.core.errors import SyncdError
from syncd.core.values import RegistryCredential
from syncd.registry.keys import canonical_key

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class DuplicateRegistry(SyncdError):
    """Two credentials of one secret spec name the same registry; neither may silently win."""


@dataclass(frozen=True)
class RenderedConfig:
    content: bytes
    content_hash: str  # "sha256:<hex>", the value of the syncd.io/content-hash annotation

    def __repr__(self) -> str:
        return f"RenderedConfig(content_hash={self.content_hash!r})"


def _go_json(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def _entry(credential: RegistryCredential) -> dict[str, str]:
    entry = {"username": credential.username, "password": credential.password}
    if credential.email:
        entry["email"] = credential.email
    login = f"{credential.username}:{credential.password}".encode()
    entry["auth"] = base64.b64encode(login).decode("ascii")
    return entry


def content_hash(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def render(credentials: Iterable[RegistryCredential]) -> RenderedConfig:
    """One `.dockerconfigjson` holding every credential under its registry's canonical key
    (syncd.registry.keys: the key the kubelet offers for every image of that registry), in sorted order."""
    auths: dict[str, dict[str, str]] = {}
    for credential in credentials:
        key = canonical_key(credential.registry)
        if key in auths:
            raise DuplicateRegistry(f"registry {key!r} is given by more than one credential")
        auths[key] = _entry(credential)
    ordered = {registry: auths[registry] for registry in sorted(auths, key=lambda r: r.encode())}
    content = _go_json({"auths": ordered}).encode("utf-8")
    return RenderedConfig(content=content, content_hash=content_hash(content))


def registries_of(content: bytes) -> tuple[str, ...]:
    """Registry names in a `.dockerconfigjson` (for status output); () when it is not one."""
    try:
        auths = json.loads(content).get("auths")
    except (ValueError, AttributeError):
        return ()
    return tuple(sorted(auths)) if isinstance(auths, dict) else ()
