"""The three ways to roll a rotated credential out to every namespace, each timed the same way.

Each one starts the clock just before the new password is written to OpenBao (or, for the
floor, just before its first write) and stops it once the last namespace's Secret has been
written; the check that every namespace really holds the new content comes after and is not
timed.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.gofloor import GoFloor
from bench.population import PREFIX, run_parallel
from bench.rawkube import MERGE_PATCH, RawKube, secret_path
from syncd.core.values import (
    CREDENTIALS_ANNOTATION,
    DATA_KEY,
    HASH_ANNOTATION,
    SYNCED_AT_ANNOTATION,
    RegistryCredential,
)
from syncd.engine.reconciler import Reconciler
from syncd.registry.dockerconfig import render

SECRET = "regcred"  # noqa: S105 - a Secret's name
CREDENTIAL = "bench-robot"
REGISTRY = "registry.bench.example"
USERNAME = "robot-bench"
VAULT_PATH = "bench/regcred"
KUBECTL = Path(sys.executable).parent / "kubectl"


@dataclass(frozen=True)
class Vault:
    address: str
    token: str

    def rotate(self) -> str:
        """Write a new password; returns it."""
        password = f"p-{uuid.uuid4().hex}"
        response = requests.post(
            f"{self.address}/v1/secret/data/{VAULT_PATH}",
            json={"data": {"username": USERNAME, "password": password}},
            headers={"X-Vault-Token": self.token},
            timeout=10,
        )
        response.raise_for_status()
        return password


def syncd_config(vault: Vault, token_file: Path) -> dict[str, Any]:
    """One spec, one Vault credential, every `bench-*` namespace, the `default` ServiceAccount."""
    token_file.write_text(vault.token)
    return {
        "vault": {
            "address": vault.address,
            "allow_http": True,
            "auth": {"method": "token", "token_file": str(token_file)},
        },
        "credentials": [{"name": CREDENTIAL, "registry": REGISTRY, "vault": {"kv": 2, "path": VAULT_PATH}}],
        "secrets": [
            {
                "name": SECRET,
                "credentials": [CREDENTIAL],
                "namespaces": {"patterns": [f"{PREFIX}*"]},
                "service_accounts": ["default"],
            }
        ],
        "schedule": {"interval": "1h", "jitter": "1s"},
    }


def write_config(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def expected_data(password: str) -> str:
    """The `.dockerconfigjson` value (base64) every namespace must hold for `password`."""
    content = render([RegistryCredential(REGISTRY, USERNAME, password)]).content
    return base64.b64encode(content).decode()


def _current_regcreds(kube: RawKube) -> dict[str, dict[str, Any]]:
    items = kube.list_items("/api/v1/secrets", fieldSelector=f"metadata.name={SECRET}")
    return {str(item["metadata"]["namespace"]): item for item in items}


def verify(kube: RawKube, namespaces: Iterable[str], password: str) -> int:
    """How many of `namespaces` do NOT hold the content for `password` (0 is the only good answer)."""
    want = expected_data(password)
    found = _current_regcreds(kube)
    return sum(1 for ns in namespaces if ((found.get(ns) or {}).get("data") or {}).get(DATA_KEY) != want)


def resource_versions(kube: RawKube) -> dict[str, str]:
    """resourceVersion of every Secret called regcred and every `default` ServiceAccount."""
    versions = {
        f"secret/{ns}": str(item["metadata"]["resourceVersion"]) for ns, item in _current_regcreds(kube).items()
    }
    for item in kube.list_items("/api/v1/serviceaccounts", fieldSelector="metadata.name=default"):
        versions[f"sa/{item['metadata']['namespace']}"] = str(item["metadata"]["resourceVersion"])
    return versions


@dataclass
class Timed:
    seconds: float
    wrong: int  # namespaces without the new content afterwards
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "wrong": self.wrong, **self.detail}


def syncd_in_process(reconciler: Reconciler, vault: Vault, kube: RawKube, namespaces: list[str]) -> Timed:
    """`Reconciler.sync_all()` (what one `syncd once` does) in this process, right after the rotation."""
    started = time.monotonic()
    password = vault.rotate()
    results = reconciler.sync_all()
    seconds = time.monotonic() - started
    outcome = {r.secret: r.result for r in results}
    return Timed(seconds, verify(kube, namespaces, password), {"results": outcome})


def syncd_once(config_path: Path, kubeconfig: Path, vault: Vault, kube: RawKube, namespaces: list[str]) -> Timed:
    """`syncd once` as a subprocess: interpreter start, imports, Vault login and the sync."""
    argv = [sys.executable, "-m", "syncd", "once", "--config", str(config_path), "--kubeconfig", str(kubeconfig)]
    argv += ["--log-level", "warning", "--log-format", "json"]
    started = time.monotonic()
    password = vault.rotate()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"syncd once exited {done.returncode}: {done.stderr[-2000:]}")
    return Timed(seconds, verify(kube, namespaces, password), {})


KUBECTL_LOOP = """\
set -euo pipefail
password="$(bao kv get -field=password -mount=secret {path})"
while read -r ns; do
  kubectl create secret docker-registry {secret} --docker-server={server} --docker-username={user} \\
    --docker-password="$password" -n "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done < "$1"
"""


def kubectl_loop(work: Path, kubeconfig: Path, vault: Vault, kube: RawKube, namespaces: list[str]) -> Timed:
    """The documented way: read the password, then `kubectl create --dry-run | kubectl apply` per namespace."""
    script, listing = work / "kubectl-rollout.sh", work / "namespaces.txt"
    script.write_text(KUBECTL_LOOP.format(path=VAULT_PATH, secret=SECRET, server=REGISTRY, user=shlex.quote(USERNAME)))
    listing.write_text("\n".join(namespaces) + "\n")
    env = {
        **os.environ,
        "PATH": f"{KUBECTL.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(work / "kubectl-cache"),
        "VAULT_ADDR": vault.address,
        "VAULT_TOKEN": vault.token,
    }
    started = time.monotonic()
    password = vault.rotate()
    done = subprocess.run(["bash", str(script), str(listing)], env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"kubectl loop exited {done.returncode}: {done.stderr[-2000:]}")
    return Timed(seconds, verify(kube, namespaces, password), {})


def _floor_patch(password: str) -> dict[str, Any]:
    """The same merge patch syncd sends for an update, minus the resourceVersion precondition."""
    content = render([RegistryCredential(REGISTRY, USERNAME, password)])
    return {
        "metadata": {
            "annotations": {
                HASH_ANNOTATION: content.content_hash,
                CREDENTIALS_ANNOTATION: CREDENTIAL,
                SYNCED_AT_ANNOTATION: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        },
        "data": {DATA_KEY: base64.b64encode(content.content).decode()},
    }


def floor(kube: RawKube, namespaces: list[str], concurrency: list[int]) -> Timed:
    """The same N updates from a minimal client at several concurrencies; the fastest counts."""
    runs: dict[str, float] = {}
    best, best_wrong = float("inf"), 0
    for threads in concurrency:
        password = f"floor-{uuid.uuid4().hex}"
        patch = _floor_patch(password)

        def write(namespace: str, body: dict[str, Any] = patch) -> None:
            kube.ok("PATCH", secret_path(namespace, SECRET), body, content_type=MERGE_PATCH)

        started = time.monotonic()
        run_parallel(write, namespaces, threads)
        seconds = time.monotonic() - started
        runs[str(threads)] = round(seconds, 3)
        if seconds < best:
            best, best_wrong = seconds, verify(kube, namespaces, password)
    fastest = min(runs, key=lambda k: runs[k])
    return Timed(best, best_wrong, {"by_concurrency": runs, "best_concurrency": int(fastest)})


def go_floor(go: GoFloor, kube: RawKube, namespaces: list[str], concurrency: list[int]) -> Timed:
    """The same N merge patches from the Go program (client-go, HTTP/2) at several concurrencies;
    the fastest counts."""
    runs: dict[str, float] = {}
    best, best_wrong = float("inf"), 0
    for goroutines in concurrency:
        password = f"go-floor-{uuid.uuid4().hex}"
        seconds = go.write(namespaces, goroutines, secret=SECRET, secret_patch=_floor_patch(password))
        runs[str(goroutines)] = round(seconds, 3)
        if seconds < best:
            best, best_wrong = seconds, verify(kube, namespaces, password)
    fastest = min(runs, key=lambda k: runs[k])
    return Timed(best, best_wrong, {"by_concurrency": runs, "best_concurrency": int(fastest)})
