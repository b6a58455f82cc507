"""Publishing each spec's state to its PullSecretSync object (syncd/engine/pullsync_status.py).

Runs report every sync result here; a thread of its own coalesces them (a burst of namespace syncs
becomes one write per spec at most every `COALESCE` seconds) and writes, as the leader only, a
status that changed. An idle daemon writes nothing: a status that differs only in its volatile
timestamps waits for `relist_interval`. A cluster without the CRD keeps syncing: the objects are
skipped with one warning and counted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from syncd.config import Config, SecretSpec
from syncd.core.errors import KubeError
from syncd.core.values import FetchedCredential, SyncResult
from syncd.engine.pullsync_status import (
    CredentialFacts,
    Identity,
    SpecLedger,
    carry_transitions,
    facts_of,
    needs_write,
    object_name,
    status_of,
    transitions,
)

log = logging.getLogger(__name__)
COALESCE = 1.0  # seconds between two writes of one object while a burst lasts
# pullFailuresLastHour and podsRepairedLastHour count over this window.
PULL_FAILURE_WINDOW = dt.timedelta(hours=1)


class LastHour:
    """How many of something happened per spec within the last PULL_FAILURE_WINDOW."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[tuple[dt.datetime, int]]] = {}  # secret -> (when, how many)

    def add(self, secret: str, at: dt.datetime, times: int = 1) -> None:
        self._seen.setdefault(secret, deque()).append((at, times))

    def total(self, secret: str, now: dt.datetime) -> int:
        seen = self._seen.get(secret, deque())
        while seen and now - seen[0][0] > PULL_FAILURE_WINDOW:
            seen.popleft()
        return sum(times for _, times in seen)


MAX_RETRY_SECONDS = 300.0


class PullSyncStore(Protocol):
    def read(self, name: str) -> dict[str, Any] | None: ...
    def create(self, name: str, secret: str) -> dict[str, Any]: ...
    def patch_status(self, name: str, patch: dict[str, Any]) -> None: ...
    def delete(self, name: str) -> None: ...
    def names(self) -> list[str]: ...


class ConditionEvents(Protocol):
    def condition_changed(self, name: str, uid: str, condition: Mapping[str, str], now: dt.datetime) -> None: ...


class CachedCredentials(Protocol):
    """What the status needs of the fetcher: names, kinds, registries and times, never values."""

    def cached(self, name: str) -> FetchedCredential | None: ...
    def fetched_at(self, name: str) -> dt.datetime | None: ...


ExpirySeen = dict[str, tuple[dt.datetime, dt.datetime]]  # credential -> (expires_at, first held at)


def credential_facts(
    credentials: CachedCredentials, names: Iterable[str], seen: ExpirySeen
) -> dict[str, CredentialFacts]:
    """Facts of the cached credentials; `seen` remembers when each expiry was first held."""
    found = {}
    for name in names:
        cached = credentials.cached(name)
        if cached is None:
            continue
        fetched_at = credentials.fetched_at(name)
        since = None
        if cached.expires_at is not None and fetched_at is not None:
            known = seen.get(name)
            if known is None or known[0] != cached.expires_at:
                seen[name] = known = (cached.expires_at, fetched_at)
            since = known[1]
        registries = tuple(sorted({entry.registry for entry in cached.entries}))
        found[name] = CredentialFacts(name, cached.source, registries, cached.expires_at, fetched_at, since)
    return found


def config_hash(config: Config) -> str:
    """Which config the status is of: a digest of the loaded config (it holds no secret values)."""
    return "sha256:" + hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


class WriteCounter(Protocol):
    def status_write(self, result: str) -> None: ...


@dataclass
class _Written:
    status: dict[str, Any]
    at: dt.datetime
    uid: str
    generation: int


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) from `old` to `new`: removed keys become null."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = value
    return patch


class StatusPublisher:
    def __init__(
        self,
        store: PullSyncStore,
        *,
        config: Callable[[], Config],
        credentials: CachedCredentials,
        leader: str,
        may_write: Callable[[], bool],
        events: ConditionEvents,
        counter: WriteCounter,
        crd_missing: type[Exception],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store, self.config, self.credentials, self.leader = store, config, credentials, leader
        self.may_write, self.events, self.counter = may_write, events, counter
        self.crd_missing, self.clock = crd_missing, clock
        self.ledgers: dict[str, SpecLedger] = {}
        self.expiry_seen: ExpirySeen = {}
        self._pull_failures = LastHour()
        self._repairs = LastHour()  # guarded by _wake, like _pull_failures
        self.written: dict[str, _Written] = {}
        self.disabled = False
        self._dirty: set[str] = set()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._state = threading.RLock()  # ledgers, written, expiry_seen: runs' threads vs this one
        self._retries: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    # --- fed by the runs ---------------------------------------------------------------------
    def record(self, spec: SecretSpec, result: SyncResult, namespace: str | None, *, fetched: bool = True) -> None:
        with self._state:
            ledger = self.ledgers.setdefault(spec.name, SpecLedger(spec.name))
            ledger.record(result, self.clock(), namespace=namespace, fetched=fetched)
        self.touch([spec.name])

    def pull_failed(self, secret: str, times: int) -> None:
        """Pulls the kubelet reported failed with this spec's Secret (`pull_failures: true`)."""
        with self._wake:
            self._pull_failures.add(secret, self.clock(), times)
        self.touch([secret])

    def repaired(self, secret: str) -> None:
        """A Pod stuck without this spec's Secret was evicted for its controller to remake (`repair_pods`)."""
        with self._wake:
            self._repairs.add(secret, self.clock())
        self.touch([secret])

    def _last_hour(self, counted: LastHour, secret: str, now: dt.datetime) -> int:
        with self._wake:
            return counted.total(secret, now)

    def touch(self, names: Iterable[str]) -> None:
        with self._wake:
            self._dirty.update(names)
            self._wake.notify()

    # --- the thread ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pullsync-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._dirty and not self._stop.is_set():
                    self._wake.wait()
            # Let the rest of a burst arrive (a touch does not cut this short): one write per
            # object per COALESCE seconds at most.
            if self._stop.wait(COALESCE):
                return
            with self._wake:
                dirty, self._dirty = self._dirty, set()
            try:
                self.flush(dirty)
            except Exception:
                log.exception("writing PullSecretSync status failed")

    def flush(self, names: Iterable[str]) -> None:
        """Write the status of these specs where it changed (leader only)."""
        if self.disabled or not self.may_write():
            return
        specs = {spec.name: spec for spec in self.config().secrets}
        for name in sorted(names):
            spec = specs.get(name)
            if spec is None:
                continue
            try:
                with self._state:
                    self._publish(spec)
                self._retries.pop(name, None)
            except self.crd_missing as exc:
                self._disable(exc)
                return
            except KubeError as exc:
                self.counter.status_write("failed")
                log.warning("could not write the status of PullSecretSync %s: %s", name, exc)
                self._retry_later(name)

    def _retry_later(self, name: str) -> None:
        """Read the object again next time (it may have been deleted), and try again after 2, 4, ...
        seconds, up to 5 minutes, rather than wait for the next sync."""
        with self._state:
            self.written.pop(name, None)
        failures = self._retries[name] = self._retries.get(name, 0) + 1
        timer = threading.Timer(min(2.0**failures, MAX_RETRY_SECONDS), self.touch, args=([name],))
        timer.daemon = True
        timer.start()

    def _disable(self, exc: Exception) -> None:
        self.disabled = True
        self.counter.status_write("skipped_no_crd")
        log.warning("PullSecretSync status objects are off until syncd restarts: %s", exc)

    def _current(self, spec: SecretSpec, name: str) -> _Written:
        known = self.written.get(name)
        if known is not None:
            return known
        found = self.store.read(name) or self.store.create(name, spec.name)
        meta = found.get("metadata", {})
        written = _Written(
            dict(found.get("status") or {}), _epoch(), str(meta.get("uid", "")), int(meta.get("generation", 1))
        )
        self.written[name] = written
        return written

    def _publish(self, spec: SecretSpec) -> None:
        config, now = self.config(), self.clock()
        name = object_name(config.instance, spec.name)
        ledger = self.ledgers.get(spec.name)
        if ledger is None or ledger.last_sync is None:
            return  # nothing known yet (a new leader, a restart): the last status written stands
        current = self._current(spec, name)
        identity = Identity(config.instance, self.leader, config_hash(config), config.schedule.refresh_before_expiry)
        described = credential_facts(self.credentials, spec.credentials, self.expiry_seen)
        failures = self._last_hour(self._pull_failures, spec.name, now) if config.pull_failures else None
        repairs = self._last_hour(self._repairs, spec.name, now) if config.repair_pods else None
        facts = facts_of(spec.credentials, described)
        new = status_of(
            ledger, facts, identity, now, generation=current.generation, pull_failures=failures, repairs=repairs
        )
        new = carry_transitions(new, current.status, now)
        if not needs_write(new, current.status, now - current.at, config.schedule.relist_interval):
            return
        patch = merge_patch(current.status, new)
        if patch:
            self.store.patch_status(name, patch)
            self.counter.status_write("written")
        changed = transitions(new, current.status) if current.status else []
        self.written[name] = _Written(new, now, current.uid, current.generation)
        for condition in changed:
            self.events.condition_changed(name, current.uid, condition, now)

    # --- config changes and leadership -------------------------------------------------------
    def reconcile_objects(self) -> None:
        """As a new leader or after a reload, off the caller's thread (the elector's must renew its
        lease): delete this instance's objects of specs no longer in the config (one LIST, then by
        name), and write every spec's status once it has one."""
        threading.Thread(target=self.reconcile_objects_now, name="pullsync-reconcile", daemon=True).start()

    def reconcile_objects_now(self) -> None:
        if self.disabled or not self.may_write():
            return
        config = self.config()
        keep = {object_name(config.instance, spec.name) for spec in config.secrets}
        try:
            names = self.store.names()
        except self.crd_missing as exc:
            self._disable(exc)
            return
        except KubeError as exc:
            log.warning("could not list PullSecretSyncs: %s", exc)
            names = []
        for name in (n for n in names if n not in keep):
            self._delete(name)
        with self._state:
            self.ledgers = {k: v for k, v in self.ledgers.items() if k in {s.name for s in config.secrets}}
        self.touch(spec.name for spec in config.secrets)

    def _delete(self, name: str) -> None:
        try:
            self.store.delete(name)
        except KubeError as exc:  # one refused (RBAC regenerated without it) must not stop the others
            log.warning("could not delete PullSecretSync %s of a spec no longer in the config: %s", name, exc)
            return
        with self._state:
            self.written.pop(name, None)
        log.info("deleted PullSecretSync %s: its spec left the config", name)

    def lost_leadership(self) -> None:
        """A standby forgets what it wrote: the next leader may have written since."""
        with self._state:
            self.written.clear()


def _epoch() -> dt.datetime:
    return dt.datetime.min.replace(tzinfo=dt.UTC)
