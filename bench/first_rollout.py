"""A first rollout with ServiceAccounts: N namespaces without the Secret, each `default`
ServiceAccount without it in imagePullSecrets. syncd creates N Secrets and appends to N
ServiceAccounts: 2N writes. Its floor is the same 2N writes (the Secret syncd creates, and a
merge patch of the ServiceAccount) without a read first, from the minimal Python client and from
the Go program (bench/gofloor.py), each at several concurrencies; the fastest counts. syncd runs
as many times, and its fastest counts too (bench.run). Before each run, untimed and outside the
CPU figures, every namespace is put back; the check after each run is outside them too.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from bench.contenders import CREDENTIAL, REGISTRY, SECRET, USERNAME, Timed
from bench.gofloor import GoFloor
from bench.measure import CpuMeter
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
LINKED = {"imagePullSecrets": [{"name": SECRET}]}
Meter = Callable[[], CpuMeter]  # starts a CPU meter


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


def syncd_first(reconciler: Reconciler) -> Timed:
    """`sync_all()` into namespaces that have neither the Secret nor the ServiceAccount link (the
    caller resets them first and checks them afterwards, both outside the measured phase)."""
    started = time.monotonic()
    results = reconciler.sync_all()
    seconds = time.monotonic() - started
    return Timed(seconds, 0, {"results": {r.secret: r.result for r in results}})


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
    kube.ok("PATCH", _account_path(namespace), LINKED, content_type=MERGE_PATCH)


def floor(kube: RawKube, namespaces: list[str], concurrency: list[int], meter: Meter) -> Timed:
    """The 2N writes from the minimal Python client; the fastest concurrency counts."""

    def write(threads: int) -> float:
        started = time.monotonic()
        run_parallel(lambda namespace: _write_both(kube, namespace), namespaces, threads)
        return time.monotonic() - started

    return _levels(kube, namespaces, concurrency, meter, write)


def go_floor(go: GoFloor, kube: RawKube, namespaces: list[str], concurrency: list[int], meter: Meter) -> Timed:
    """The same 2N writes from the Go program (client-go, HTTP/2); the fastest concurrency counts."""
    secret = _secret_body("", "floor")
    del secret["metadata"]["namespace"]  # the program sets each namespace's

    def write(goroutines: int) -> float:
        return go.write(namespaces, goroutines, secret_create=secret, account="default", account_patch=LINKED)

    return _levels(kube, namespaces, concurrency, meter, write)


def _levels(
    kube: RawKube, namespaces: list[str], concurrency: list[int], meter: Meter, write: Callable[[int], float]
) -> Timed:
    """`write` at each concurrency after a reset; CPU is metered around the writes only (the reset
    and the check after are not part of a floor)."""
    runs: dict[str, float] = {}
    cpu: dict[str, dict[str, float]] = {}
    best, best_wrong = float("inf"), 0
    for level in concurrency:
        reset(kube, namespaces)
        running = meter()
        seconds = write(level)
        cpu[str(level)] = running.stop()
        runs[str(level)] = round(seconds, 3)
        if seconds < best:
            best, best_wrong = seconds, not_rolled_out(kube, namespaces)
    fastest = min(runs, key=lambda k: runs[k])
    detail = {"by_concurrency": runs, "best_concurrency": int(fastest), "writes": 2 * len(namespaces)}
    return Timed(best, best_wrong, {**detail, "cpu": cpu[fastest], "cpu_by_concurrency": cpu})
