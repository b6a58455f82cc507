"""The key a registry gets in `.dockerconfigjson`: one the kubelet offers for every image of it.

The kubelet qualifies a Pod's image first (`nginx:1.27` -> `docker.io/library/nginx`,
`index.docker.io/acme/api` -> `docker.io/acme/api`), then (pkg/credentialprovider, keyring.go
`BasicDockerKeyring.Add` and `Lookup`) strips a scheme and a leading /v1/ or /v2/ from each key
and matches when the port is equal, the host has as many dot-separated labels, each label matches
as a glob, and the image's path starts with the key's path, byte for byte. A key
`index.docker.io` (what `https://index.docker.io/v1/` becomes) is only a fallback, never offered
when any other key of the Pod's Secrets matches. So Docker Hub is written as `docker.io`:

| written                                                      | key written                   |
|--------------------------------------------------------------|-------------------------------|
| docker.io, index.docker.io, registry-1.docker.io,            | docker.io                     |
| registry.hub.docker.com, with or without scheme, /v1/, /v2/  |                               |
| https://ghcr.io, ghcr.io/v2/, GHCR.IO                        | ghcr.io                       |
| registry.example.com:5000, http://registry.example.com:5000/ | registry.example.com:5000     |
| quay.io/team                                                 | quay.io/team/  (not team-admin)|
| *.example.com, docker.io/acme                                | refused (see `key_problem`)   |
"""

from __future__ import annotations

from syncd.registry.credential_rules import DOCKER_HUB_HOSTS

DOCKER_HUB_KEY = "docker.io"
_GLOB_CHARS = frozenset("*?[]")


def _parts(registry: str) -> tuple[str, str, str]:
    """(host, host[:port], path without /v1 or /v2 prefix, no trailing slash), lowercased."""
    text = registry.strip().lower()
    for scheme in ("https://", "http://"):
        text = text.removeprefix(scheme)
    host_port, _, path = text.partition("/")
    path = "/" + path.strip("/") if path.strip("/") else ""
    if path in ("/v1", "/v2") or path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    host = host_port.rsplit(":", 1)[0] if not host_port.startswith("[") else host_port
    return host, host_port, path


def key_problem(registry: str) -> str | None:
    """Why a registry cannot be given a key the kubelet serves safely, or None."""
    host, host_port, path = _parts(registry)
    if _GLOB_CHARS & set(host_port):
        return (
            f"{registry!r}: wildcard registries are not written: the kubelet matches them label by label "
            "(and `*.example.com` not `example.com`), docker and most image clients not at all; list each registry"
        )
    if host in DOCKER_HUB_HOSTS and path:
        return (
            f"{registry!r}: a Docker Hub login limited to a path is never offered for short image names "
            "(`acme/app`, `nginx`); give Docker Hub without a path (docker.io)"
        )
    return None


def canonical_key(registry: str) -> str:
    """The `auths` key for a well-formed registry without a key_problem."""
    host, host_port, path = _parts(registry)
    if host in DOCKER_HUB_HOSTS:
        return DOCKER_HUB_KEY
    # A path key keeps a trailing slash: the kubelet compares paths by prefix, so `quay.io/team`
    # would also serve quay.io/team-admin; `quay.io/team/` serves quay.io/team/* only.
    return f"{host_port}{path}/" if path else host_port
