"""The lease arithmetic of leader election, pure: who holds a coordination.k8s.io/v1 Lease, when
it expires, and what to write to take, renew or release it. No I/O and no clock of its own: every
answer is computed from a Lease record and the time it is given (syncd.kube.elector does the rest).

The semantics follow client-go's leaderelection:

- A contender takes the Lease when nobody holds it, or when the holder's record has not changed
  for `leaseDurationSeconds` *as measured by the contender's own clock* since it first saw that
  record (client-go's `observedTime`): the holder's `renewTime` is written by another machine's
  clock, and trusting it would let clock skew hand the lease to two replicas.
- The holder renews every `retry_period`. If it cannot renew for `renew_deadline` (shorter than
  the lease), it stops considering itself leader *before* any standby may take over.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

MIN_RETRY_PERIOD = dt.timedelta(seconds=0.2)
MIN_REQUEST_TIMEOUT = 1.0  # seconds; below this a busy apiserver on a loaded node times out spuriously


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
