"""Deliberately bad writes, to show that the observer's checks fail when they should (`--sabotage`).

Made once, halfway through a run, with the *standby* replica's own token, so that each one is
what a buggy syncd would do: a blank managed Secret, a managed Secret set back to the first
generation, and a write to a Secret syncd does not own. A run with --sabotage must report them
(valid, no-going-back, unmanaged-untouched, single-writer); a run without must report nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json

from kubernetes import client, config

from harness.kube_objects import name_of, namespace_of, resource_version
from soak.churn import MANAGED_BY
from soak.credentials import USERNAME
from soak.observer import Observer
from soak.replicas import Replica
from soak.settings import CREDENTIALS


def _content(registry: str, password: str) -> tuple[str, str]:
    auth = base64.b64encode(f"{USERNAME}:{password}".encode()).decode()
    content = json.dumps({"auths": {registry: {"username": USERNAME, "password": password, "auth": auth}}}).encode()
    return base64.b64encode(content).decode(), "sha256:" + hashlib.sha256(content).hexdigest()


def sabotage(standby: Replica, observer: Observer, first_kv_value: str) -> list[str]:
    """Three bad writes as `standby`; returns what was done (names only)."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(standby.kubeconfig)))
    kv = [
        s
        for s in core.list_secret_for_all_namespaces(label_selector=f"{MANAGED_BY}=syncd").items
        if name_of(s) == "regcred-kv"
    ]
    blank, old = kv[0], kv[1]
    empty = base64.b64encode(b'{"auths":{}}').decode()  # the apiserver refuses a dockerconfigjson without JSON
    core.patch_namespaced_secret(name_of(blank), namespace_of(blank), {"data": {".dockerconfigjson": empty}})
    data, digest = _content(CREDENTIALS[0].registry, first_kv_value)
    patch = {"metadata": {"annotations": {"syncd.io/content-hash": digest}}, "data": {".dockerconfigjson": data}}
    core.patch_namespaced_secret(name_of(old), namespace_of(old), patch)
    (namespace, name), _ = next(iter(observer.known.unmanaged.items()))
    core.patch_namespaced_secret(name, namespace, {"metadata": {"annotations": {"sabotage": "yes"}}})
    done = [f"blanked {namespace_of(blank)}/regcred-kv", f"generation 1 into {namespace_of(old)}/regcred-kv"]
    return [*done, f"annotated {namespace}/{name} (not syncd's), rv was {resource_version(blank)}"]
