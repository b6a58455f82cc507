"""SPEC §1.2: what makes a registry credential usable. Nothing is rendered from one that fails."""

from __future__ import annotations

import ipaddress
import re

from syncd.core.values import RegistryCredential

# Patterns are applied with fullmatch: `$` would also accept a trailing newline.
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?")
_PATH = re.compile(r"(/[-A-Za-z0-9._~%]*)*/?")
_MAX_FIELD = 64 * 1024
_MAX_REGISTRY = 1024
# Every host name Docker Hub answers to (docker's default registry, its index, its API): one set
# for the docker config.json lookup and the login check alike.
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


def registry_problem(registry: str) -> str | None:
    """Why `registry` is not `[https://]host[:port][/path]`, or None when it is well formed."""
    if not isinstance(registry, str) or len(registry) > _MAX_REGISTRY:
        what = f"{len(registry)} characters long" if isinstance(registry, str) else type(registry).__name__
        return f"the registry is {what}: expected a host[:port] string of at most {_MAX_REGISTRY} characters"
    text = registry
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    host_port, _, path = text.partition("/")
    host, port = _split_port(host_port)
    if not host:
        return f"{registry!r} has no host"
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return f"{registry!r} has an invalid port {port!r} (expected 1-65535)"
    if path and not _PATH.fullmatch("/" + path):
        return f"{registry!r} has an invalid path"
    if _is_ip(host) or all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        return None
    return f"{registry!r} is not a well-formed registry host (expected host[:port], such as ghcr.io)"


def _split_port(host_port: str) -> tuple[str, str | None]:
    if host_port.startswith("["):  # [::1]:5000
        host, _, rest = host_port[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = host_port.rpartition(":")
    return (host, port) if sep else (host_port, None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _field_problem(field: str, value: object) -> str | None:
    """Never quotes the value: it may be a password."""
    if not isinstance(value, str):
        return f"{field} is {type(value).__name__}, expected a string"
    if not value.strip():
        return f"{field} is empty"
    if len(value) > _MAX_FIELD:
        return f"{field} is {len(value)} characters long (limit {_MAX_FIELD})"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f"{field} contains control characters"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return f"{field} is not valid Unicode text (lone surrogate)"
    return None


def credential_problems(credential: RegistryCredential) -> list[str]:
    """Problems that make a credential unusable; messages name fields, never their values."""
    problems = [registry_problem(credential.registry)]
    problems += [_field_problem("username", credential.username), _field_problem("password", credential.password)]
    if isinstance(credential.username, str) and ":" in credential.username:
        # `auth` is base64(username:password) and registries split it at the first colon.
        problems.append("username contains ':'")
    if credential.email:
        problems.append(_field_problem("email", credential.email))
    return [p for p in problems if p]
