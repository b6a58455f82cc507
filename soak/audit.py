"""At most one replica writes at a time, read from the apiserver's audit log (one clock: the apiserver's).

A replica holds the lease from each successful claim (a Lease patch naming a holder) until
`lease_seconds` after its last one, or until it releases it or another replica claims it. Every
successful write of a replica (Secrets, ServiceAccounts, Events) must be received inside one of
its own holding intervals: a write after its lease lapsed, or after another replica took the
lease, is a violation ("it must not write after losing the lease").
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
WRITTEN = {"secrets", "serviceaccounts", "events"}


@dataclass(frozen=True)
class Claim:
    at: float
    user: str
    holds: bool  # False: a release (holderIdentity null)


@dataclass(frozen=True)
class Write:
    at: float
    user: str
    what: str  # resource/namespace/name, never content


@dataclass(frozen=True)
class WriterViolation:
    at: float
    user: str
    what: str
    reason: str


def _time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def claims_and_writes(events: Iterable[dict[str, Any]], users: set[str]) -> tuple[list[Claim], list[Write]]:
    """Successful Lease claims (by stage time) and successful writes (by received time) of `users`."""
    claims, writes = [], []
    for event in events:
        user = event.get("user", {}).get("username", "")
        ref, code = event.get("objectRef") or {}, (event.get("responseStatus") or {}).get("code", 0)
        if user not in users or event.get("verb") not in WRITE_VERBS or not 200 <= code < 300:
            continue
        if ref.get("resource") == "leases":
            spec = (event.get("requestObject") or {}).get("spec") or {}
            if "holderIdentity" in spec or event.get("verb") == "create":
                claims.append(Claim(_time(event["stageTimestamp"]), user, bool(spec.get("holderIdentity"))))
        elif ref.get("resource") in WRITTEN:
            what = f"{ref.get('resource')}/{ref.get('namespace', '')}/{ref.get('name', '')}"
            writes.append(Write(_time(event["requestReceivedTimestamp"]), user, what))
    return sorted(claims, key=lambda c: c.at), sorted(writes, key=lambda w: w.at)


def judge_writers(claims: list[Claim], writes: list[Write], lease_seconds: float) -> list[WriterViolation]:
    by_user: dict[str, list[Claim]] = {}
    for claim in claims:
        by_user.setdefault(claim.user, []).append(claim)
    return [v for v in (_judge(write, by_user, lease_seconds) for write in writes) if v is not None]


def _judge(write: Write, by_user: dict[str, list[Claim]], lease_seconds: float) -> WriterViolation | None:
    own = by_user.get(write.user, [])
    index = bisect.bisect_right([c.at for c in own], write.at) - 1
    if index < 0 or not own[index].holds:
        return WriterViolation(write.at, write.user, write.what, "wrote without holding the lease")
    last_own = own[index].at
    if write.at > last_own + lease_seconds:
        lapsed = write.at - last_own - lease_seconds
        return WriterViolation(write.at, write.user, write.what, f"wrote {lapsed:.2f}s after its lease lapsed")
    for user, theirs in by_user.items():
        if user != write.user and any(c.holds and last_own < c.at <= write.at for c in theirs):
            return WriterViolation(write.at, write.user, write.what, "wrote after another replica claimed the lease")
    return None


def leader_intervals(claims: list[Claim], lease_seconds: float) -> list[tuple[str, float, float]]:
    """(user, from, to) of each holding, for the timeline."""
    intervals: list[tuple[str, float, float]] = []
    for claim in claims:
        if not claim.holds:
            continue
        if intervals and intervals[-1][0] == claim.user and claim.at <= intervals[-1][2]:
            user, start, _ = intervals[-1]
            intervals[-1] = (user, start, claim.at + lease_seconds)
        else:
            intervals.append((claim.user, claim.at, claim.at + lease_seconds))
    return intervals
