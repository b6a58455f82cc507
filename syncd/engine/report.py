"""What a finished sync tells: its metrics, its log line and its Kubernetes Events.

Names and counts only: a SyncResult holds no credential, and nothing here adds one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable

from syncd.core.values import Action, ChangeOutcome, EventNote, EventReason, NamespaceState, SyncResult
from syncd.engine.metrics import Metrics
from syncd.engine.ports import EventSink

log = logging.getLogger(__name__)


class Report:
    def __init__(self, metrics: Metrics, clock: Callable[[], dt.datetime], events: EventSink | None) -> None:
        self.metrics = metrics
        self.clock = clock
        self.events = events

    def record(self, secret: str, result: SyncResult, seconds: float, *, vouched: bool = True) -> None:
        """Metrics and the log line of one sync; only a `vouched` one (its sources asked) moves last success."""
        if result.dry_run:
            return
        succeeded = vouched and not result.stopped and not result.failed_writes
        self.metrics.record_sync(secret, result.result, seconds, at=self.clock() if succeeded else None)
        if not result.stopped:
            self.metrics.set_namespace_states(secret, _namespace_states(result))
        for error in result.source_errors + result.cluster_errors:
            log.error("sync failed: %s", error, extra={"secret": secret})
        log.info(
            "sync finished",
            extra={"secret": secret, "result": result.result, "duration_seconds": round(seconds, 3), **_counts(result)},
        )

    def emit(self, result: SyncResult) -> None:
        """The Events of a sync that wrote (a dry run tells nothing to the cluster)."""
        if self.events is not None and not result.dry_run:
            self.events.emit(events(result), self.clock())


def events(result: SyncResult) -> list[EventNote]:
    """(namespace, secret, reason, message) for changes and trouble; names and counts only."""
    found = []
    for o in result.outcomes:
        namespace, secret = o.change.namespace, o.change.secret
        if not o.ok:
            found.append((namespace, secret, EventReason.SYNC_FAILED, f"syncd could not write {secret}: {o.error}"))
        elif o.change.action is Action.CONFLICT:
            found.append((namespace, secret, EventReason.CONFLICT, f"{secret}: {o.change.reason}"))
        elif o.change.action in (Action.CREATE, Action.UPDATE, Action.ADOPT):
            done = {Action.CREATE: "created", Action.UPDATE: "updated", Action.ADOPT: "adopted"}[o.change.action]
            found.append((namespace, secret, EventReason.SYNCED, f"syncd {done} {secret}"))
    return found


def _namespace_states(result: SyncResult) -> Counter[NamespaceState]:
    return Counter(_state(o) for o in result.outcomes if o.change.action is not Action.PRUNE)


def _state(outcome: ChangeOutcome) -> NamespaceState:
    if not outcome.ok:
        return NamespaceState.FAILED
    return NamespaceState.CONFLICT if outcome.change.action is Action.CONFLICT else NamespaceState.IN_SYNC


def _counts(result: SyncResult) -> dict[str, int]:
    counts = {action.value: result.count(action) for action in Action}
    counts["failed"] = len(result.failed_writes)
    return counts
