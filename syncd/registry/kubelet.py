"""Which logins the kubelet offers for an image, from a Pod's pull Secrets (no I/O).

A faithful port of what Kubernetes 1.34 does before a pull: pkg/kubelet/images/image_manager.go
`EnsureImageExists` looks up the image's repository as pkg/util/parsers `ParseImageName` qualifies
it (`nginx:1.27` -> `docker.io/library/nginx`), in the keyring of pkg/credentialprovider:
secrets/secrets.go `MakeDockerKeyring` (every dockerconfigjson Secret of the Pod into one keyring,
in the Pod's order; one malformed Secret fails them all) and keyring.go `BasicDockerKeyring.Add` /
`Lookup`, `URLsMatch`, `isDefaultRegistryMatch`. tests/integration/test_kubelet_differential.py compares
it with the kubelet's own code, built from the same release.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from syncd.core.errors import SyncdError

DOCKER_HUB_HOST = "index.docker.io"  # keyring.go defaultRegistryHost
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"


class MalformedSecret(SyncdError):
    """A pull Secret the kubelet cannot parse: it then offers no login at all for the Pod."""


class InvalidImage(SyncdError):
    """An image reference the kubelet refuses before it looks for a login (the pull fails)."""


@dataclass(frozen=True)
class PullSecret:
    """A Secret as the Pod lists it: its name, type and data (None: missing)."""

    name: str
    type: str | None
    data: dict[str, bytes] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Login:
    """One login the kubelet would try: from which Secret and under which key."""

    secret: str
    key: str
    username: str
    password: str = field(repr=False)


@dataclass
class Keyring:
    """keyring.go BasicDockerKeyring: logins by key, and the keys most specific first."""

    logins: dict[str, list[Login]] = field(default_factory=dict)
    index: list[str] = field(default_factory=list)

    def add(self, secret: str, auths: dict[str, Login]) -> None:
        for location, login in auths.items():
            key = keyring_key(location)
            self.logins.setdefault(key, []).append(Login(secret, key, login.username, login.password))
        # eliminateDupes, then sort.Reverse(sort.StringSlice): byte order, reversed.
        self.index = sorted(set(self.logins), key=lambda k: k.encode(), reverse=True)

    def lookup(self, image: str) -> list[Login]:
        found = [login for key in self.index if urls_match(key, image) for login in self.logins[key]]
        if found:
            return found
        return list(self.logins.get(DOCKER_HUB_HOST, [])) if is_default_registry_match(image) else []


def make_keyring(secrets: Sequence[PullSecret]) -> Keyring:
    """secrets.go MakeDockerKeyring: only typed Secrets with their data key count; errors fail all."""
    keyring = Keyring()
    for secret in secrets:
        auths = _auths_of(secret)
        if auths is not None:
            keyring.add(secret.name, auths)
    return keyring


def offered(secrets: Sequence[PullSecret], image: str) -> list[Login]:
    """The logins a Pod's image gets, in the order the runtime tries them."""
    return make_keyring(secrets).lookup(repository(image))


# github.com/distribution/reference (the kubelet's dockerref): the grammar of an image reference.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
NAME_TOTAL_MAX = 255


def repository(image: str) -> str:
    """parsers.ParseImageName's repository: reference.ParseNormalizedNamed(image).Name()."""
    name, _, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    name, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "")
    if (digest and not _DIGEST.fullmatch(digest)) or (tag and not _TAG.fullmatch(tag)) or not name:
        raise InvalidImage(f"{image!r} is not a valid image reference")
    domain, remainder = _split_domain(name)
    if (
        not _DOMAIN.fullmatch(domain)
        or not _PATH.fullmatch(remainder)
        or len(domain) + 1 + len(remainder) > NAME_TOTAL_MAX
    ):
        raise InvalidImage(f"{image!r} is not a valid image reference (repository names are lowercase)")
    return f"{domain}/{remainder}"


def _split_domain(name: str) -> tuple[str, str]:
    """reference.splitDockerDomain: a first part without '.' or ':' (and not localhost) is a Docker Hub path."""
    first, sep, rest = name.partition("/")
    hub = not sep or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first)
    domain, remainder = ("docker.io", name) if hub else (first, rest)
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def _auths_of(secret: PullSecret) -> dict[str, Login] | None:
    if secret.type == DOCKERCONFIGJSON and secret.data.get(".dockerconfigjson"):
        document = _json(secret, secret.data[".dockerconfigjson"])
        auths = document.get("auths") if isinstance(document, dict) else None
        return _entries(secret, auths or {})
    if secret.type == DOCKERCFG and secret.data.get(".dockercfg"):
        return _entries(secret, _json(secret, secret.data[".dockercfg"]))
    return None


def _json(secret: PullSecret, data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        pass
    raise MalformedSecret(f"Secret {secret.name!r} is not valid JSON")


def _entries(secret: PullSecret, auths: object) -> dict[str, Login]:
    if not isinstance(auths, dict):
        raise MalformedSecret(f"Secret {secret.name!r}: `auths` is not a mapping")
    return {str(location): _entry(secret, str(location), entry) for location, entry in auths.items()}


def _entry(secret: PullSecret, location: str, entry: object) -> Login:
    """DockerConfigEntry.UnmarshalJSON: `auth`, when set, wins over username and password."""
    if not isinstance(entry, dict):
        raise MalformedSecret(f"Secret {secret.name!r}: the entry for {location!r} is not a mapping")
    fields = {name.lower(): value for name, value in entry.items()}  # encoding/json matches names case-insensitively
    username, password = str(fields.get("username") or ""), str(fields.get("password") or "")
    auth = fields.get("auth")
    if auth:
        username, password = _decode_auth(secret, location, str(auth))
    return Login(secret.name, location, username, password)


def _decode_auth(secret: PullSecret, location: str, auth: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(auth, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    user, sep, password = decoded.partition(":")
    if not sep:
        raise MalformedSecret(f"Secret {secret.name!r}: `auth` of {location!r} is not base64(username:password)")
    return user, password


def keyring_key(location: str) -> str:
    """keyring.go Add: the scheme and a leading /v1/ or /v2/ go; a path other than / stays."""
    value = location if location.startswith(("https://", "http://")) else "https://" + location
    host, path = _split(value.split("://", 1)[1])
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return host + path if path and path != "/" else host


def _split(schemeless: str) -> tuple[str, str]:
    """(host[:port], path) as net/url.Parse gives them (query and fragment dropped)."""
    text = re.split(r"[?#]", schemeless, maxsplit=1)[0]
    host, slash, path = text.partition("/")
    return host, slash + path


def _host_labels(host_port: str) -> tuple[list[str], str]:
    """keyring.go SplitURL: net.SplitHostPort, else the whole host and no port."""
    if host_port.startswith("["):
        host, _, rest = host_port[1:].partition("]")
        if rest.startswith(":"):
            return host.split("."), rest[1:]
        return host_port.split("."), ""
    host, sep, port = host_port.rpartition(":")
    if not sep or ":" in host:
        return host_port.split("."), ""
    return host.split("."), port


def urls_match(glob: str, target: str) -> bool:
    """keyring.go URLsMatchStr: equal ports, as many labels, each a glob match, path by prefix."""
    glob_host, glob_path = _split(glob)
    target_host, target_path = _split(target)
    glob_labels, glob_port = _host_labels(glob_host)
    target_labels, target_port = _host_labels(target_host)
    if glob_port != target_port or len(glob_labels) != len(target_labels):
        return False
    if not target_path.startswith(glob_path):
        return False
    return all(go_glob_match(g, t) for g, t in zip(glob_labels, target_labels, strict=True))


def is_default_registry_match(image: str) -> bool:
    """keyring.go isDefaultRegistryMatch: `nginx`, `library/nginx`, `docker.io/...`."""
    first, sep, _ = image.partition("/")
    if not first:
        return False
    if not sep or first in ("docker.io", DOCKER_HUB_HOST):
        return True
    return not any(char in first for char in ".:")


def go_glob_match(pattern: str, name: str) -> bool:
    """path/filepath.Match for one host label: `*`, `?`, `[...]` (`^` negates), `\\` escapes."""
    if pattern not in _GLOB_CACHE:
        _GLOB_CACHE[pattern] = _go_glob(pattern)
    regex = _GLOB_CACHE[pattern]
    return regex is not None and regex.fullmatch(name) is not None


_GLOB_CACHE: dict[str, re.Pattern[str] | None] = {}


def _go_class(body: str) -> str:
    negate = body.startswith("^")
    return "[" + ("^" if negate else "") + re.escape(body[1:] if negate else body).replace("\\-", "-") + "]"


def _go_glob(pattern: str) -> re.Pattern[str] | None:
    """A regex for the pattern; None for a malformed one (ErrBadPattern: the kubelet skips the key)."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if char in "*?":
            out += "[^/]*" if char == "*" else "[^/]"
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                return None
            out, i = out + _go_class(pattern[i + 1 : end]), end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out, re.DOTALL)
