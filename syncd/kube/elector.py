"""Leader election on a coordination.k8s.io/v1 Lease, so that only one replica writes: the elector
thread, which reads, creates and patches the Lease and decides with syncd.kube.lease.

Our own small elector rather than `kubernetes.leaderelection`, whose `run()` returns for good once
the lease is lost. Beyond the arithmetic (syncd.kube.lease), as client-go's leaderelection:

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
import random
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client

from syncd.core.clock import utcnow
from syncd.core.errors import KubeError
from syncd.core.values import DEFAULT_INSTANCE, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from syncd.kube.client import MERGE_PATCH, call, json_body
from syncd.kube.lease import (
    LeaseRecord,
    can_acquire,
    claim_spec,
    holds_lease,
    release_spec,
    renew_deadline_passed,
    seconds_left,
    timings_for,
)

log = logging.getLogger(__name__)

LAST_CHANCE_TIMEOUT = 0.1  # seconds: the floor for a renewal made right at the renew deadline
JITTER = 0.2  # standbys poll at retry_period * [1, 1.2) so that they do not move in lockstep
MAX_BACKOFF_DOUBLINGS = 10  # 2**failures overflows a float after ~1000 failures (hours of outage)


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
