"""Leader election on a coordination.k8s.io/v1 Lease, so that only one replica writes.

Our own small elector rather than `kubernetes.leaderelection`, whose `run()` returns for good once
the lease is lost. The semantics follow client-go's leaderelection:

- A contender takes the Lease when nobody holds it, or when the holder's record has not changed
  for `leaseDurationSeconds` *as measured by the contender's own clock* since it first saw that
  record (client-go's `observedTime`): the holder's `renewTime` is written by another machine's
  clock, and trusting it would let clock skew hand the lease to two replicas.
- The holder renews every `retry_period`. If it cannot renew for `renew_deadline` (shorter than
  the lease), it stops considering itself leader *before* any standby may take over.
- Every API call is bounded by a timeout that ends no later than the renew deadline, on a client
  of our own with urllib3's retries off (see `own_client`), so the holder steps down on time even
  when the apiserver hangs instead of refusing.
- Every write is a JSON merge patch carrying the resourceVersion we read, so the apiserver refuses
  (409) all but one of two contenders racing for the same version.

RBAC: the elector uses only `get`, `create` and `patch` on `leases` (coordination.k8s.io) in the
Lease's namespace; it never lists, watches, updates (PUT) or deletes.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client

from syncd.core.clock import utcnow
from syncd.core.errors import KubeError
from syncd.core.values import DEFAULT_INSTANCE, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from syncd.kube.client import call, json_body

log = logging.getLogger(__name__)

MIN_RETRY_PERIOD = dt.timedelta(seconds=0.2)
MIN_REQUEST_TIMEOUT = 1.0  # seconds; below this a busy apiserver on a loaded node times out spuriously
LAST_CHANCE_TIMEOUT = 0.1  # seconds: the floor for a renewal made right at the renew deadline
JITTER = 0.2  # standbys poll at retry_period * [1, 1.2) so that they do not move in lockstep
MERGE_PATCH = "application/merge-patch+json"
MAX_BACKOFF_DOUBLINGS = 10  # 2**failures overflows a float after ~1000 failures (hours of outage)


# --- pure decision logic -------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """How often we act and when we give up, all derived from the one configured lease duration."""

    lease_duration: dt.timedelta
    renew_deadline: dt.timedelta
    retry_period: dt.timedelta

    @property
    def lease_seconds(self) -> int:
        """`leaseDurationSeconds` is an integer >= 1 on the server: round up, never shorten the lease."""
        return max(1, math.ceil(self.lease_duration.total_seconds()))

    @property
    def request_timeout(self) -> float:
        """Bound each API call so a hung connection cannot hold the thread far past the renew deadline."""
        wanted = max(self.retry_period.total_seconds(), MIN_REQUEST_TIMEOUT)
        return min(wanted, max(self.renew_deadline.total_seconds(), MIN_REQUEST_TIMEOUT))


def timings_for(lease_duration: dt.timedelta) -> Timings:
    """renew_deadline = 2/3 and retry_period = 1/3 of the lease (client-go: 15s / 10s / 2s).

    The gap between renew_deadline and lease_duration is the margin in which a holder that could
    not renew has already stepped down while no standby may yet take over.
    """
    if lease_duration <= dt.timedelta(0):
        raise ValueError("lease_duration must be positive")
    return Timings(
        lease_duration=lease_duration,
        renew_deadline=lease_duration * 2 / 3,
        retry_period=max(lease_duration / 3, MIN_RETRY_PERIOD),
    )


def format_micro_time(moment: dt.datetime) -> str:
    """RFC 3339 with exactly six fractional digits and `Z`: the only form a MicroTime parses from.

    (The generated models serialise datetimes with `isoformat()`, which drops the fraction when it
    is zero: the apiserver then rejects the Lease. That is why we send dicts through merge patch.)
    """
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(value: object) -> dt.datetime | None:
    """A MicroTime (or Time) from the API; None when absent or unreadable (treated as never)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease that election reads, plus the resourceVersion every write is made against."""

    resource_version: str
    holder: str = ""
    lease_seconds: int = 0
    acquire_time: dt.datetime | None = None
    renew_time: dt.datetime | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
            holder=str(spec.get("holderIdentity") or ""),
            lease_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_micro_time(spec.get("acquireTime")),
            renew_time=parse_micro_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    @property
    def duration(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lease_seconds)

    def same_term(self, other: LeaseRecord | None) -> bool:
        """Whether `other` shows no renewal or change of holder since this one (resourceVersion aside)."""
        return other is not None and (self.holder, self.renew_time, self.transitions, self.lease_seconds) == (
            other.holder,
            other.renew_time,
            other.transitions,
            other.lease_seconds,
        )


def lease_expired(record: LeaseRecord, now: dt.datetime) -> bool:
    """renewTime + leaseDurationSeconds is not in the future (a lease never renewed is expired)."""
    return record.renew_time is None or record.renew_time + record.duration <= now


def can_acquire(record: LeaseRecord, identity: str, observed_at: dt.datetime, now: dt.datetime) -> bool:
    """Free, already ours, or unchanged for a whole lease duration since *we* first saw it.

    `observed_at` is our clock's time when this record (holder, renewTime, ...) first appeared to us;
    counting from it rather than from the holder's renewTime makes takeover immune to clock skew.
    """
    if not record.holder or record.holder == identity:
        return True
    return observed_at + record.duration <= now


def seconds_left(last_renew: dt.datetime | None, renew_deadline: dt.timedelta, now: dt.datetime) -> float:
    """Seconds until the renew deadline (<= 0 once passed, or without any renewal)."""
    return 0.0 if last_renew is None else (last_renew + renew_deadline - now).total_seconds()


def renew_deadline_passed(last_renew: dt.datetime | None, renew_deadline: dt.timedelta, now: dt.datetime) -> bool:
    """True when our last successful renewal is `renew_deadline` old (or there was none)."""
    return last_renew is None or last_renew + renew_deadline <= now


def holds_lease(
    record: LeaseRecord | None, identity: str, last_renew: dt.datetime | None, timings: Timings, now: dt.datetime
) -> bool:
    """The is_leader() test: the record names us, its lease is unexpired and we renewed recently enough."""
    return (
        record is not None
        and record.holder == identity
        and not lease_expired(record, now)
        and not renew_deadline_passed(last_renew, timings.renew_deadline, now)
    )


def claim_spec(record: LeaseRecord, identity: str, lease_seconds: int, now: dt.datetime) -> dict[str, Any]:
    """The spec that renews our lease, or takes it over: a takeover counts one more transition.

    A Lease never held (just created, no acquireTime) counts its first holder as no transition,
    as client-go does when it creates the Lease already held.
    """
    stamp = format_micro_time(now)
    if record.holder == identity:
        acquired = format_micro_time(record.acquire_time) if record.acquire_time else stamp
        transitions = record.transitions
    else:
        acquired = stamp
        transitions = record.transitions + 1 if record.acquire_time is not None else record.transitions
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": lease_seconds,
        "acquireTime": acquired,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def release_spec(record: LeaseRecord, now: dt.datetime) -> dict[str, Any]:
    """No holder, a one-second lease renewed now: a standby takes over at its next poll (as client-go)."""
    stamp = format_micro_time(now)
    return {
        "holderIdentity": None,  # merge patch: null removes the field
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }


def own_client(api: client.ApiClient) -> client.ApiClient:
    """A client of the elector's own, on a copy of the caller's configuration, with urllib3 retries off.

    By default urllib3 retries a failed connect, and a timed-out GET, three more times, each with a
    full timeout (measured: a GET against an apiserver that accepts but never answers took 4.5x its
    timeout): one call could outlast the renew deadline, and on_change(False) would come after a
    standby may already have taken over. Without retries each call is bounded by the one
    timeout we give it; the elector retries by itself, on its own schedule. A deep copy keeps the
    caller's credentials and token-refresh hook (it refreshes whichever configuration it is given).
    """
    configuration = copy.deepcopy(api.configuration)
    configuration.retries = False
    configuration.connection_pool_maxsize = 2
    return client.ApiClient(configuration)


# --- the elector ---------------------------------------------------------------------------------


class LeaderElector:
    """Holds, or waits for, one Lease in a background daemon thread.

    `on_change(True/False)` is called on every transition from the elector thread (and, for the
    final step-down, from the thread calling `stop()`); it must not block for long, since renewals
    wait for it. `is_leader()` is computed from our clock on every call, so it turns False in time
    even when the thread is stuck in a slow request.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: dt.timedelta,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        instance: str = DEFAULT_INSTANCE,
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        self._api = own_client(api)
        self._leases = client.CoordinationV1Api(self._api)
        self.namespace = namespace
        self.name = name
        self.instance = instance
        self._identity = identity
        self.timings = timings_for(lease_duration)
        self._on_change = on_change
        self._clock = clock
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # State below is written by the elector thread (or by stop() once it has ended), under _cond.
        self._leading = False
        self._record: LeaseRecord | None = None
        self._observed_at: dt.datetime | None = None
        self._last_renew: dt.datetime | None = None

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    # -- public API --

    def start(self) -> None:
        """Start contending in a daemon thread: acquire when possible, then renew."""
        if self._thread is not None:
            raise RuntimeError("LeaderElector.start() called twice")
        self._thread = threading.Thread(target=self._run, name=f"leader-{self.name}", daemon=True)
        self._thread.start()

    def is_leader(self) -> bool:
        """True only while we hold an unexpired lease that we renewed within the renew deadline.

        Computed from our clock on every call: it turns False at the deadline even while the elector
        thread is still waiting for an answer, and from the moment stop() is called.
        """
        with self._cond:
            return self._is_leader_locked()

    def wait_for_leadership(self, timeout: float | None) -> bool:
        """Block until we lead (True), or until `timeout` seconds pass or stop() is called (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._is_leader_locked():
                remaining = None if deadline is None else deadline - time.monotonic()
                if self._stopping.is_set() or (remaining is not None and remaining <= 0):
                    return False
                # Wake at least once per retry period: leadership can also lapse by the clock alone.
                period = self.timings.retry_period.total_seconds()
                self._cond.wait(period if remaining is None else min(remaining, period))
            return True

    def stop(self, *, release: bool = True) -> None:
        """Stop contending; with `release`, hand the lease back so a standby takes over at once.

        Call it after in-flight writes have finished: from its first line on, is_leader() is False.
        Release is one best-effort write guarded by the resourceVersion: if it fails, the lease
        simply lapses after its duration.
        """
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():  # stop() from on_change
            thread.join(timeout=2 * self.timings.request_timeout + 1)
            if thread.is_alive():
                log.warning("leader election thread for %s did not stop in time", self.where)
        self._set_leading(False)
        if release:
            self._release()
        self._api.close()

    # -- the thread --

    def _run(self) -> None:
        """Never dies: every failure is logged and retried, with backoff while we are not leading."""
        failures = 0
        while not self._stopping.is_set():
            self._step_down_if_overdue()
            try:
                self._attempt()
                failures = 0
            except Exception as exc:  # the elector must outlive apiserver restarts and our own bugs
                failures += 1
                self._log_failure(exc, failures)
            self._step_down_if_overdue()
            self._stopping.wait(self._delay(failures))

    def _delay(self, failures: int) -> float:
        """Leaders retry every period, waking at the renew deadline at the latest; standbys back off."""
        period = self.timings.retry_period.total_seconds()
        left = self._seconds_left()
        if left is not None:
            return max(min(period, left), 0.0)
        if failures:
            return min(
                period * 2.0 ** min(failures, MAX_BACKOFF_DOUBLINGS),
                max(self.timings.lease_duration.total_seconds(), period),
            )
        return period * (1 + JITTER * random.random())  # noqa: S311 - jitter, not cryptography

    def _attempt(self) -> None:
        """One round of client-go's tryAcquireOrRenew."""
        if self._renew_fast():
            return
        record = self._read() or self._create_and_read()
        if record is None:
            return
        now = self._clock()
        with self._cond:
            if not record.same_term(self._record) or self._observed_at is None:
                self._observed_at = now
            self._record = record
            observed_at = self._observed_at
        if not can_acquire(record, self._identity, observed_at, now):
            self._set_leading(False)  # someone else holds a live lease (perhaps taken from us)
            return
        self._claim(record)

    def _renew_fast(self) -> bool:
        """While leading, renew against the version we last wrote, without reading first.

        On 409/404 (the Lease changed or vanished) fall back to reading it; other errors propagate.
        """
        with self._cond:
            record = self._record if self._leading else None
        if record is None or record.holder != self._identity:
            return False
        try:
            self._claim(record)
        except KubeError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def _claim(self, record: LeaseRecord) -> None:
        """Renew or take over `record`; a 409 on a takeover means another contender won the race."""
        now = self._clock()
        spec = claim_spec(record, self._identity, self.timings.lease_seconds, now)
        try:
            written = self._patch(spec, record.resource_version, what=f"claiming {self.where}")
        except KubeError as exc:
            if exc.status == 409 and record.holder != self._identity:
                log.debug("another replica took %s first", self.where)
                return
            raise
        with self._cond:
            self._record = written
            self._observed_at = now
            self._last_renew = now
        if renew_deadline_passed(now, self.timings.renew_deadline, self._clock()):
            return  # the answer came too late to count: leading now would flap straight back to False
        self._set_leading(True)

    def _step_down_if_overdue(self) -> None:
        with self._cond:
            overdue = self._leading and renew_deadline_passed(
                self._last_renew, self.timings.renew_deadline, self._clock()
            )
        if overdue:
            log.warning(
                "could not renew %s for %ss: no longer leader",
                self.where,
                round(self.timings.renew_deadline.total_seconds(), 1),
            )
            self._set_leading(False)

    def _release(self) -> None:
        """Give the lease back if the last record we saw names us; re-read once if it moved on since."""
        with self._cond:
            record = self._record
        for _ in range(2):
            if record is None or record.holder != self._identity:
                return
            try:
                self._patch(
                    release_spec(record, self._clock()), record.resource_version, what=f"releasing {self.where}"
                )
            except KubeError as exc:
                if exc.status == 409:
                    record = self._read_quietly()
                    continue
                log.warning("could not release %s (it lapses on its own): %s", self.where, exc)
                return
            log.info("released %s", self.where)
            with self._cond:
                self._record = None
            return

    # -- API calls --

    def _read(self) -> LeaseRecord | None:
        try:
            response = call(
                lambda: self._leases.read_namespaced_lease(
                    self.name, self.namespace, _preload_content=False, _request_timeout=self._timeout()
                ),
                what=f"reading {self.where}",
                sleep=self._sleep,
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return LeaseRecord.from_lease(json_body(response))

    def _read_quietly(self) -> LeaseRecord | None:
        try:
            return self._read()
        except KubeError as exc:
            log.warning("could not release %s (it lapses on its own): %s", self.where, exc)
            return None

    def _create_and_read(self) -> LeaseRecord | None:
        """Create the Lease unheld (409: another replica just did), then read it back.

        Created empty and claimed with a patch like any other: one code path for every claim, and
        no MicroTime goes through the generated model (see `format_micro_time`).
        """
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, INSTANCE_LABEL: self.instance}
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "labels": labels},
        }
        try:
            call(
                lambda: self._leases.create_namespaced_lease(
                    self.namespace,
                    cast(Any, body),
                    _preload_content=False,
                    _request_timeout=self._timeout(),
                ),
                what=f"creating {self.where}",
                sleep=self._sleep,
            )
            log.info("created %s", self.where)
        except KubeError as exc:
            if exc.status != 409:
                raise
        return self._read()

    def _patch(self, spec: dict[str, Any], resource_version: str, *, what: str) -> LeaseRecord:
        """A merge patch with the resourceVersion we read: the apiserver answers 409 if it moved on."""
        patch = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        response = call(
            lambda: self._leases.patch_namespaced_lease(
                self.name,
                self.namespace,
                cast(Any, patch),
                _content_type=MERGE_PATCH,
                _preload_content=False,
                _request_timeout=self._timeout(),
            ),
            what=what,
            sleep=self._sleep,
        )
        return LeaseRecord.from_lease(json_body(response))

    def _sleep(self, seconds: float) -> None:
        """429 back-off for `call()`: capped at a retry period and at the renew deadline, cut short by stop()."""
        left = self._seconds_left()
        cap = (
            self.timings.retry_period.total_seconds()
            if left is None
            else min(left, self.timings.retry_period.total_seconds())
        )
        self._stopping.wait(max(min(seconds, cap), 0.0))

    def _timeout(self) -> float:
        """The timeout of the next call: while leading it ends by the renew deadline, so we step down on time."""
        left = self._seconds_left()
        if left is None:
            return self.timings.request_timeout
        return max(min(self.timings.request_timeout, left), LAST_CHANCE_TIMEOUT)

    def _seconds_left(self) -> float | None:
        """Seconds until the renew deadline while we lead; None while we do not."""
        with self._cond:
            if not self._leading:
                return None
            return seconds_left(self._last_renew, self.timings.renew_deadline, self._clock())

    # -- state --

    def _is_leader_locked(self) -> bool:
        if self._stopping.is_set():
            return False
        return self._leading and holds_lease(
            self._record, self._identity, self._last_renew, self.timings, self._clock()
        )

    def _set_leading(self, leading: bool) -> None:
        """Record a transition and tell on_change; a failing callback is logged, never fatal."""
        with self._cond:
            changed = self._leading != leading
            self._leading = leading
            self._cond.notify_all()
        if not changed:
            return
        log.info("%s %s", "became leader of" if leading else "stepped down from", self.where)
        if self._on_change is None:
            return
        try:
            self._on_change(leading)
        except Exception:
            log.exception("leader election on_change(%s) failed", leading)

    def _log_failure(self, exc: Exception, failures: int) -> None:
        if isinstance(exc, KubeError):
            log.warning("leader election for %s: %s (attempt %d)", self.where, exc, failures)
        else:
            log.warning("leader election for %s failed unexpectedly (attempt %d)", self.where, failures, exc_info=exc)
