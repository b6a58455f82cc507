"""The runs of secret specs in `syncd run`: scheduled runs fetch, triggered runs use the cache.

Scheduled runs are jobs of the scheduler's pool, one per spec, each scheduling its successor
by the Cadence. Triggered runs (watch events) come from the trigger queue's thread and never
call a source. A per-spec lock keeps a spec's runs from ever overlapping; a replica that may
not write (a standby) runs nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Protocol

from syncd.config import Config, SecretSpec
from syncd.core.values import SyncResult
from syncd.daemon.triggers import Key
from syncd.engine.fetcher import Freshness
from syncd.engine.timing import Cadence

log = logging.getLogger(__name__)


class Syncing(Protocol):
    """What runs need of the reconciler."""

    def sync(self, spec: SecretSpec, *, freshness: Freshness, dry_run: bool = False) -> SyncResult: ...
    def sync_namespace(self, spec: SecretSpec, namespace: str) -> SyncResult | None: ...
    def has_credentials(self, spec: SecretSpec) -> bool: ...


class Jobs(Protocol):
    """What runs need of the scheduler (syncd.daemon.scheduler.Scheduler)."""

    def schedule(self, job_id: str, at: dt.datetime, run: Callable[[], None]) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    def next_run(self, job_id: str) -> dt.datetime | None: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SpecRuns:
    def __init__(
        self,
        reconciler: Syncing,
        jobs: Jobs,
        cadence: Cadence,
        *,
        config: Callable[[], Config],
        may_write: Callable[[], bool],
        stopping: threading.Event,
        clock: Callable[[], dt.datetime] = _utcnow,
        on_result: Callable[[SecretSpec, SyncResult, str | None, bool], None] = lambda *_: None,
    ) -> None:
        self.reconciler = reconciler
        self.jobs = jobs
        self.cadence = cadence
        self.config = config
        self.may_write = may_write
        self.clock = clock
        self.stopping = stopping  # set once: no new run starts, none is scheduled
        # Every result: whole spec (namespace None) or one namespace, and whether it asked the sources.
        self.on_result = on_result
        self.attempted: set[str] = set()  # specs whose first scheduled run has finished
        self._locks: dict[str, threading.Lock] = {}
        self._state_lock = threading.Lock()

    def schedule_now(self, names: Iterable[str] | None = None, *, after_reload: bool = False) -> None:
        """Run these specs (every one by default) now. After a reload a run fetches only what the
        cache lacks, and the spec's next run stays when it was due."""
        wanted = None if names is None else set(names)
        for spec in self.config().secrets:
            if wanted is None or spec.name in wanted:
                pending = self.jobs.next_run(spec.name) if after_reload else None
                run = partial(self.run_scheduled, spec.name, after_reload=after_reload, pending=pending)
                self.jobs.schedule(spec.name, self.clock(), run)

    def cancel(self, names: Iterable[str]) -> None:
        names = list(names)
        for name in names:
            self.jobs.cancel(name)
        self.cadence.forget(names)

    def unattempted(self) -> set[str]:
        return {s.name for s in self.config().secrets} - self.attempted

    def run_scheduled(self, name: str, *, after_reload: bool = False, pending: dt.datetime | None = None) -> None:
        spec = self._spec(name)
        if spec is None or not self.may_write() or self.stopping.is_set():
            return
        started = self.clock()
        freshness = Freshness.kept(started) if after_reload else Freshness.scheduled(started)
        with self._lock(name):
            result = self.reconciler.sync(spec, freshness=freshness)
        self.on_result(spec, result, None, freshness.vouches_for_sources)
        self.attempted.add(name)
        failed = bool(result.stopped or result.failed_writes)
        at = self.cadence.next_run(spec, self.config().schedule, failed=failed, now=self.clock(), pending=pending)
        if not self.stopping.is_set() and self._spec(name) is not None:
            self.jobs.schedule(name, at, partial(self.run_scheduled, name))
        log.debug("next sync of %s at %s", name, at.isoformat())

    def run_triggered(self, key: Key) -> None:
        """A watch-requested re-sync of one namespace, or of the whole spec, from cached credentials."""
        name, namespace = key
        spec = self._spec(name)
        if spec is None or not self.may_write() or not self.reconciler.has_credentials(spec):
            return
        with self._lock(name):
            if namespace is None:
                self.on_result(spec, self.reconciler.sync(spec, freshness=Freshness.cached()), None, False)
            elif (result := self.reconciler.sync_namespace(spec, namespace)) is not None:
                self.on_result(spec, result, namespace, False)

    def _spec(self, name: str) -> SecretSpec | None:
        return next((s for s in self.config().secrets if s.name == name), None)

    def _lock(self, name: str) -> threading.Lock:
        with self._state_lock:
            return self._locks.setdefault(name, threading.Lock())
