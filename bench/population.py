"""Populate the cluster: N namespaces, each with one unrelated Secret, and wait for the `default`
ServiceAccount kube-controller-manager (in the harness, as in every real cluster) makes in each.

Until issue 25 the bench created each `default` ServiceAccount itself (issue 21 asked it to stop):
now the controller does, as it does for every namespace of a real cluster, at its client rate
(harness/controllers.py: 200 QPS), and the controller-manager watches the Secrets and
ServiceAccounts syncd writes, as it would there. The unrelated Secret (4 KiB of data, not
labelled for syncd) is what a real cluster is full of; syncd must never list or cache it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from bench.rawkube import ApiError, RawKube, secret_path
from harness.wait import wait_until

PREFIX = "bench-"
UNRELATED_BYTES = 4096
SETUP_THREADS = 16
DEFAULT_ACCOUNTS = {"fieldSelector": "metadata.name=default"}


def namespace_name(index: int) -> str:
    return f"{PREFIX}{index:05d}"


def _create(kube: RawKube, path: str, body: Mapping[str, object]) -> None:
    try:
        kube.ok("POST", path, body)
    except ApiError as exc:
        if exc.status != 409:  # already there: populating is idempotent
            raise


def create_namespace(kube: RawKube, namespace: str) -> None:
    """The namespace alone: kube-controller-manager adds its `default` ServiceAccount."""
    _create(kube, "/api/v1/namespaces", {"metadata": {"name": namespace}})


def accounts_missing(kube: RawKube, namespaces: list[str]) -> int:
    """How many of `namespaces` have no `default` ServiceAccount yet."""
    made = {item["metadata"]["namespace"] for item in kube.list_items("/api/v1/serviceaccounts", **DEFAULT_ACCOUNTS)}
    return sum(1 for namespace in namespaces if namespace not in made)


def wait_for_accounts(kube: RawKube, namespaces: list[str]) -> float:
    """Seconds until the controller made every `default` ServiceAccount (it writes at 200 QPS)."""
    return wait_until(
        lambda: not accounts_missing(kube, namespaces), 120 + len(namespaces) / 50, "default accounts", interval=1
    )


def _populate_one(kube: RawKube, namespace: str) -> None:
    create_namespace(kube, namespace)
    unrelated = {
        "metadata": {"name": "app-config", "namespace": namespace, "labels": {"app": "unrelated"}},
        "type": "Opaque",
        "data": {"blob": base64.b64encode(os.urandom(UNRELATED_BYTES)).decode()},
    }
    _create(kube, secret_path(namespace), unrelated)


def populate(kube: RawKube, start: int, stop: int) -> float:
    """Namespaces `start..stop-1` with their unrelated Secret, then their `default` ServiceAccounts
    awaited; returns the seconds the controller took after the last namespace was created."""
    names = [namespace_name(i) for i in range(start, stop)]
    run_parallel(lambda namespace: _populate_one(kube, namespace), names, SETUP_THREADS)
    return wait_for_accounts(kube, names)


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
