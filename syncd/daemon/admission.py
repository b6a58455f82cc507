"""The admission webhook in `syncd run`: answers from the watch stores and the last syncs, in memory.

Every replica answers, standbys too: they all run the watches. Which namespaces a spec selects
comes from the namespace store (labels included); a conflict is a Secret of the spec's name that
syncd may not write there: another instance's (the Secret store, every replica), or a Secret
syncd does not manage at all, which only a sync finds (the `ConflictLedger` of this replica's
last syncs: the leader's; a standby knows only the first kind).

A Namespace and its Pods are often created within milliseconds: a review may arrive before the
namespace's watch event. The answer then waits for it, a little (`namespace_wait`), on the
event loop, never on a thread and never with a request to the apiserver.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from syncd.config import Config, SecretSpec
from syncd.core.values import ExistingSecret, NamespaceInfo, Ownership, SyncResult
from syncd.daemon.server.http import Response
from syncd.engine.admission import Answer, Knowledge, Review, decide, read
from syncd.engine.metrics import Metrics

log = logging.getLogger(__name__)
NAMESPACE_WAIT = 0.5  # seconds: the apiserver's timeout is 1-2 s, and a watch event takes milliseconds
_POLL = 0.01


class Stores(Protocol):
    """What the webhook reads of the watch stores (syncd.kube.stores.WatchCache)."""

    def get(self, kind: str, key: str | tuple[str, str]) -> object | None: ...


class ConflictLedger:
    """The namespaces where this replica's last syncs of each spec found a Secret it does not own."""

    def __init__(self) -> None:
        self._conflicts: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def record(self, spec: SecretSpec, result: SyncResult, namespace: str | None) -> None:
        """A whole-spec sync replaces what is known of the spec; a one-namespace sync that namespace."""
        found = {outcome.change.namespace for outcome in result.conflicts}
        with self._lock:
            known = self._conflicts.setdefault(spec.name, set())
            if namespace is None:
                known.clear()
            else:
                known.discard(namespace)
            known.update(found)

    def __contains__(self, key: tuple[str, str]) -> bool:
        secret, namespace = key
        with self._lock:
            return namespace in self._conflicts.get(secret, ())


class AdmissionService:
    def __init__(
        self,
        config: Callable[[], Config],
        stores: Stores,
        ledger: ConflictLedger,
        metrics: Metrics,
        *,
        namespace_wait: float = NAMESPACE_WAIT,
    ) -> None:
        self.config = config
        self.stores = stores
        self.ledger = ledger
        self.metrics = metrics
        self.namespace_wait = namespace_wait
        self.known = Knowledge(self._namespace, self._conflict)

    async def mutate(self, body: bytes) -> Response:
        began = time.perf_counter()
        review = read(body)
        if isinstance(review, Review):
            await self._seen(review.namespace)
            review = decide(review, self.config(), self.known)
        self.metrics.record_admission(review.result, time.perf_counter() - began)
        _log(review)
        if review.status != HTTPStatus.OK:
            return Response(HTTPStatus(review.status), review.body)
        return Response(HTTPStatus.OK, review.body, "application/json")

    async def _seen(self, namespace: str) -> None:
        """Wait (a bounded time) for a namespace the store has not seen yet."""
        deadline = time.monotonic() + self.namespace_wait
        while self._namespace(namespace) is None and time.monotonic() < deadline:
            await asyncio.sleep(_POLL)

    def _namespace(self, name: str) -> NamespaceInfo | None:
        found = self.stores.get("namespaces", name)
        return found if isinstance(found, NamespaceInfo) else None

    def _conflict(self, secret: str, namespace: str) -> bool:
        if (secret, namespace) in self.ledger:
            return True
        found = self.stores.get(f"secrets/{secret}", namespace)
        instance = self.config().instance
        return isinstance(found, ExistingSecret) and found.ownership(instance) is Ownership.OTHER_INSTANCE


def _log(answer: Answer) -> None:
    """Names and outcomes only: a Pod's content is the user's, and may hold anything."""
    extra = {"result": answer.result.value, "reason": answer.reason, "added": list(answer.added)}
    if answer.result == "error":
        log.warning("admission review not understood: %s", answer.reason, extra=extra)
    else:
        log.debug("admission review answered", extra=extra)
