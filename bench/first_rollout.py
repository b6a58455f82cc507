"""A first rollout with ServiceAccounts: N namespaces without the Secret, each `default`
ServiceAccount without it in imagePullSecrets. syncd creates N Secrets and appends to N
ServiceAccounts: 2N writes. Its floor is the same 2N writes (the Secret syncd creates, and a
merge patch of the ServiceAccount) from the minimal client, without a read first, at several
concurrencies; the fastest counts. syncd runs as many times, and its fastest counts too
(bench.run). Before each run, untimed, every namespace is put back.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from bench.contenders import CREDENTIAL, REGISTRY, SECRET, USERNAME, Timed
from bench.population import run_parallel
from bench.rawkube import MERGE_PATCH, ApiError, RawKube, secret_path
from syncd.core.values import (
    ADDED_PULL_SECRETS_ANNOTATION,
    DATA_KEY,
    HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SECRET_TYPE,
    SPEC_LABEL,
    RegistryCredential,
)
from syncd.engine.reconciler import Reconciler
from syncd.registry.dockerconfig import render

RESET_THREADS = 32


def _account_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/serviceaccounts/default"


def _reset_one(kube: RawKube, namespace: str) -> None:
    try:
        kube.ok("DELETE", secret_path(namespace, SECRET))
    except ApiError as exc:
        if exc.status != 404:
            raise
    unlinked = {"metadata": {"annotations": {ADDED_PULL_SECRETS_ANNOTATION: None}}, "imagePullSecrets": None}
    kube.ok("PATCH", _account_path(namespace), unlinked, content_type=MERGE_PATCH)


def reset(kube: RawKube, namespaces: list[str]) -> None:
    """No Secret `regcred`, and `default` ServiceAccounts with no imagePullSecrets, everywhere."""
    run_parallel(lambda namespace: _reset_one(kube, namespace), namespaces, RESET_THREADS)


def not_rolled_out(kube: RawKube, namespaces: list[str]) -> int:
    """Namespaces lacking the Secret, or whose `default` ServiceAccount does not list it."""
    secrets = {
        item["metadata"]["namespace"]
        for item in kube.list_items("/api/v1/secrets", fieldSelector=f"metadata.name={SECRET}")
    }
    linked = {
        item["metadata"]["namespace"]
        for item in kube.list_items("/api/v1/serviceaccounts", fieldSelector="metadata.name=default")
        if any(entry.get("name") == SECRET for entry in item.get("imagePullSecrets") or [])
    }
    return sum(1 for namespace in namespaces if namespace not in secrets or namespace not in linked)


def syncd_first(reconciler: Reconciler, kube: RawKube, namespaces: list[str]) -> Timed:
    """`sync_all()` into namespaces that have neither the Secret nor the ServiceAccount link."""
    reset(kube, namespaces)
    started = time.monotonic()
    results = reconciler.sync_all()
    seconds = time.monotonic() - started
    outcome = {r.secret: r.result for r in results}
    return Timed(seconds, not_rolled_out(kube, namespaces), {"results": outcome})


def _secret_body(namespace: str, password: str) -> dict[str, Any]:
    content = render([RegistryCredential(REGISTRY, USERNAME, password)])
    return {
        "metadata": {
            "name": SECRET,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, SPEC_LABEL: SECRET},
            "annotations": {HASH_ANNOTATION: content.content_hash, "syncd.io/credentials": CREDENTIAL},
        },
        "type": SECRET_TYPE,
        "data": {DATA_KEY: base64.b64encode(content.content).decode()},
    }


def _write_both(kube: RawKube, namespace: str) -> None:
    kube.ok("POST", secret_path(namespace), _secret_body(namespace, "floor"))
    linked = {"imagePullSecrets": [{"name": SECRET}]}
    kube.ok("PATCH", _account_path(namespace), linked, content_type=MERGE_PATCH)


def floor(kube: RawKube, namespaces: list[str], concurrency: list[int]) -> Timed:
    """The 2N writes from the minimal client; the fastest concurrency counts."""
    runs: dict[str, float] = {}
    best, best_wrong = float("inf"), 0
    for threads in concurrency:
        reset(kube, namespaces)
        started = time.monotonic()
        run_parallel(lambda namespace: _write_both(kube, namespace), namespaces, threads)
        seconds = time.monotonic() - started
        runs[str(threads)] = round(seconds, 3)
        if seconds < best:
            best, best_wrong = seconds, not_rolled_out(kube, namespaces)
    fastest = min(runs, key=lambda k: runs[k])
    return Timed(
        best, best_wrong, {"by_concurrency": runs, "best_concurrency": int(fastest), "writes": 2 * len(namespaces)}
    )
