"""A real image without an engine or the internet: an OCI image layout written by the test, and skopeo.

`make_layout(dir, tag, files)` writes the smallest valid OCI image layout (oci-layout, index.json
and three blobs: one gzip tar layer, its config, its manifest); `read_layout` reads one back, so a
test can push an image with `skopeo copy oci:DIR:TAG docker://...`, pull it into another layout
and compare. `Skopeo` runs Debian's skopeo isolated from the machine's own auth files and policy.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.process import HarnessError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class OciImage:
    """An image in an OCI layout: where, which tag, its manifest digest and the files of its layer."""

    path: Path
    tag: str
    digest: str
    files: dict[str, bytes]

    @property
    def reference(self) -> str:
        """The skopeo name of this image: `oci:DIR:TAG`."""
        return f"oci:{self.path}:{self.tag}"


def _digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _blob(layout: Path, content: bytes) -> dict[str, Any]:
    digest = _digest(content)
    path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return {"digest": digest, "size": len(content)}


def _tar(files: Mapping[str, bytes]) -> bytes:
    """A reproducible tar: fixed owner, mode and time, sorted names."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def make_layout(path: Path, tag: str = "v1", files: Mapping[str, bytes] | None = None) -> OciImage:
    """Write a one-layer linux/amd64 image holding `files` as an OCI image layout in `path`."""
    content = dict(files or {"hello.txt": b"hello from syncd's tests\n"})
    tar = _tar(content)
    layer = _blob(path, gzip.compress(tar, mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [_digest(tar)]},
    }
    config_blob = _blob(path, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, **config_blob},
        "layers": [{"mediaType": LAYER, **layer}],
    }
    manifest_blob = _blob(path, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MANIFEST, **manifest_blob, "annotations": {REF_NAME: tag}}],
    }
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (path / "index.json").write_text(json.dumps(index, sort_keys=True))
    return OciImage(path, tag, manifest_blob["digest"], content)


def read_layout(path: Path, tag: str) -> OciImage:
    """Read back the image tagged `tag` in an OCI layout (one that skopeo wrote, say)."""
    index = json.loads((path / "index.json").read_text())
    (entry,) = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == tag]

    def blob(digest: str) -> bytes:
        content = (path / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        if _digest(content) != digest:
            raise HarnessError(f"blob {digest} in {path} does not match its digest")
        return content

    manifest = json.loads(blob(entry["digest"]))
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        data = blob(layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    return OciImage(path, tag, entry["digest"], files)


def dockerconfigjson(server: str, username: str, password: str) -> bytes:
    """A .dockerconfigjson as `kubectl create secret docker-registry --docker-server=S` renders it."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}}).encode()


class Skopeo:
    """Debian skopeo with its own HOME and an accept-anything policy: nothing of the machine's is read."""

    def __init__(self, state_dir: Path) -> None:
        if not shutil.which("skopeo"):
            raise HarnessError("`skopeo` is missing: apt-get install skopeo (or `make deps`)")
        self.dir = state_dir
        self.home = state_dir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.policy = state_dir / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.home)}
        return subprocess.run(
            ["skopeo", "--policy", str(self.policy), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=env,
        )


def push_image(host: str, username: str, password: str, repository: str, state_dir: Path, tag: str = "v1") -> str:
    """A new private image (one layer of its own) pushed to `host/repository:tag` with skopeo and
    that login; returns its reference."""
    state_dir.mkdir(parents=True, exist_ok=True)
    layout = make_layout(state_dir / "layout", tag, {"hello.txt": f"{repository} {time.time_ns()}\n".encode()})
    authfile = state_dir / "auth.json"
    authfile.write_bytes(dockerconfigjson(host, username, password))
    reference = f"{host}/{repository}:{tag}"
    pushed = Skopeo(state_dir / "skopeo").run(
        "copy", "--authfile", str(authfile), "--dest-tls-verify=false", layout.reference, f"docker://{reference}"
    )
    if pushed.returncode != 0:
        raise HarnessError(f"skopeo could not push {reference}: {pushed.stderr[-2000:]}")
    return reference
