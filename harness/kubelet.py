"""The kubelet's own image-pull credential lookup, as a function tests can call.

`offered(secrets, images)` answers what a Pod listing those imagePullSecrets (in that order) would
have the kubelet offer the container runtime for each image: the logins in the order they are
tried. It runs `kubelet-keyring` (scripts/kubelet-keyring/main.go), a small Go program that calls
k8s.io/kubernetes/pkg/credentialprovider/secrets.MakeDockerKeyring and Lookup of the pinned
Kubernetes release; scripts/kubelet-keyring.sh builds it once and caches it by version.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.builds import built
from harness.process import HarnessError


@dataclass(frozen=True)
class Login:
    """One login the kubelet would pass to the runtime (its `AuthConfig`)."""

    server: str  # the keyring key it was stored under: the auths key, scheme and /v1/ or /v2/ removed
    username: str
    password: str
    secret: str | None = None  # the Secret it came from
    auth: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Offer:
    """The kubelet's answer for one image."""

    image: str
    lookup: str | None  # the name the kubelet looked up: ParseImageName's repo, no tag or digest
    found: bool
    logins: tuple[Login, ...]
    error: str | None = None  # the pull fails before the runtime is asked (bad name or bad Secret)


def binary() -> Path:
    """The kubelet-keyring binary, built on first use (minutes, once per Kubernetes version)."""
    return built("kubelet-keyring.sh")


def lookup(request: Mapping[str, Any]) -> list[Offer]:
    """Run kubelet-keyring on a raw request (see main.go for every field it takes)."""
    done = subprocess.run(
        [str(binary())], input=json.dumps(request), capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise HarnessError(f"kubelet-keyring exited with {done.returncode}: {done.stderr.strip()}")
    return [_offer(entry) for entry in json.loads(done.stdout)]


def offered(secrets: Sequence[tuple[str, bytes]], images: Sequence[str], *, normalize: bool = True) -> list[Offer]:
    """What the kubelet offers for each image, given `(name, .dockerconfigjson bytes)` pull Secrets.

    `normalize=False` looks the image strings up as given, like the kubelet's keyring unit tests
    do, instead of first qualifying them as a Pod's images are (`nginx:1` -> `docker.io/library/nginx`).
    """
    request = {
        "secrets": [
            {"name": name, "dockerconfigjson_base64": base64.b64encode(content).decode()} for name, content in secrets
        ],
        "images": list(images),
        "normalize": normalize,
    }
    return lookup(request)


def _offer(entry: Mapping[str, Any]) -> Offer:
    logins = tuple(
        Login(
            server=item["server"],
            username=item["username"],
            password=item["password"],
            secret=item.get("secret"),
            auth=item.get("auth"),
            email=item.get("email"),
        )
        for item in entry["logins"]
    )
    return Offer(entry["image"], entry.get("lookup"), bool(entry["found"]), logins, entry.get("error"))
