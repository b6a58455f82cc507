"""Populate the cluster: N namespaces, each with a `default` ServiceAccount and one unrelated Secret.

kube-controller-manager (in the harness) creates each `default` ServiceAccount too; creating it
here as well (a 409 is ignored) makes the population ready without waiting for the controller to
catch up with tens of thousands of new namespaces. The unrelated Secret (4 KiB of data, not labelled for syncd) is
what a real cluster is full of; syncd must never list or cache it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from bench.rawkube import ApiError, RawKube, secret_path

PREFIX = "bench-"
UNRELATED_BYTES = 4096
SETUP_THREADS = 16


def namespace_name(index: int) -> str:
    return f"{PREFIX}{index:05d}"


def _create(kube: RawKube, path: str, body: Mapping[str, object]) -> None:
    try:
        kube.ok("POST", path, body)
    except ApiError as exc:
        if exc.status != 409:  # already there: populating is idempotent
            raise


def create_namespace(kube: RawKube, namespace: str, *, with_default_account: bool = True) -> None:
    _create(kube, "/api/v1/namespaces", {"metadata": {"name": namespace}})
    if with_default_account:
        account = {"metadata": {"name": "default", "namespace": namespace}}
        _create(kube, f"/api/v1/namespaces/{namespace}/serviceaccounts", account)


def _populate_one(kube: RawKube, namespace: str) -> None:
    create_namespace(kube, namespace)
    unrelated = {
        "metadata": {"name": "app-config", "namespace": namespace, "labels": {"app": "unrelated"}},
        "type": "Opaque",
        "data": {"blob": base64.b64encode(os.urandom(UNRELATED_BYTES)).decode()},
    }
    _create(kube, secret_path(namespace), unrelated)


def populate(kube: RawKube, start: int, stop: int) -> list[str]:
    """Namespaces `start..stop-1` with their ServiceAccount and unrelated Secret; returns their names."""
    names = [namespace_name(i) for i in range(start, stop)]
    run_parallel(lambda namespace: _populate_one(kube, namespace), names, SETUP_THREADS)
    return names


def run_parallel(step: Callable[[str], None], items: Iterable[str], threads: int) -> None:
    """`step` over every item on `threads` threads; the first failure is raised.

    On a failure or an interrupt (bench.run's signals) the items not started yet are dropped:
    the pool's `with` waited for all of them, minutes of writes at 50,000 namespaces."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench")
    try:
        for future in [pool.submit(step, item) for item in items]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
