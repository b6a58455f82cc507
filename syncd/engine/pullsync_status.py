"""The status of one PullSecretSync object (one secret spec of one instance), computed from syncs.

Pure: the daemon feeds every sync's result into a `SpecLedger` and asks `status_of` for the object's
status. What it holds is counts and the first failures, never a list of every namespace (an object
near 1.5 MB stops at etcd; at 50,000 namespaces this one stays a few KiB), and never a value: the
credentials appear by name, source kind, registries and times.

Timestamps that move on every sync (`lastSyncTime`, a credential's `lastFetched` and
`nextRefresh`) are VOLATILE: a status that differs from the last one written only in them is not
written again before `relist_interval` has passed, so an idle daemon makes no requests for it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.core.values import Action, SyncResult
from syncd.engine.timing import refresh_at

API_VERSION = "syncd.io/v1alpha1"
KIND = "PullSecretSync"
FIRST_FAILURES = 20
VOLATILE_TOP = ("lastSyncTime",)
VOLATILE_CREDENTIAL = ("lastFetched", "nextRefresh")
CONDITION_TYPES = ("Ready", "Synced", "SourceAvailable", "ExpiringSoon", "Degraded")

# Reasons a runbook names (docs/runbooks.md "PullSecretSync conditions").
FETCHED, SOURCE_ERROR, NOT_SYNCED_YET = "Fetched", "SourceError", "NotSyncedYet"
ALL_IN_SYNC, WRITE_FAILED, CONFLICT = "AllInSync", "WriteFailed", "Conflict"
APISERVER_ERROR = "ApiserverError"
NO_NAMESPACES = "NoNamespacesSelected"
NOT_EXPIRING, REFRESH_OVERDUE, EXPIRED = "NotExpiring", "RefreshOverdue", "Expired"
HEALTHY, SERVICE_ACCOUNT_ERRORS = "Healthy", "ServiceAccountErrors"
READY = "Ready"

IN_SYNC, FAILED, CONFLICTED = "in_sync", "failed", "conflict"


@dataclass(frozen=True)
class CredentialFacts:
    """What the status says of one credential: never its value, never the path that holds it."""

    name: str
    source: str
    registries: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None
    fetched_at: dt.datetime | None = None
    # When syncd first held a login with this expiry: a source that keeps handing out the same
    # expiring login (a stored token) is overdue counted from there, not from the last fetch.
    since: dt.datetime | None = None


@dataclass(frozen=True)
class Identity:
    """Who writes the object and for which config."""

    instance: str
    leader: str
    config_hash: str
    refresh_before_expiry: float


@dataclass
class SpecLedger:
    """Per-namespace state of one spec, as whole-spec and single-namespace syncs reported it."""

    secret: str
    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # namespace -> (state, reason)
    source_error: str | None = None
    cluster_error: str | None = None
    account_errors: int = 0
    synced: bool = False
    last_sync: dt.datetime | None = None

    def record(
        self, result: SyncResult, at: dt.datetime, *, namespace: str | None = None, fetched: bool = True
    ) -> None:
        """A whole-spec result (`namespace` None) replaces the namespace states; a single-namespace
        one updates that namespace. A result with source errors keeps the last known states. Only
        a run that asked its sources (`fetched`) says whether they answer: one from the cache while
        Vault is down must not clear the error."""
        if result.dry_run:
            return
        self.last_sync = at
        if result.source_errors:
            self.source_error = _without_detail(result.source_errors[0])
            return
        if fetched:
            self.source_error = None
        if result.cluster_errors:
            self.cluster_error = "the apiserver refused or did not answer a read; syncd's log (`sync failed`) says why"
            return
        if namespace is None:  # only a whole spec's plan proves the apiserver answers its reads again
            self.cluster_error = None
        self.synced = True
        # A namespace's result updates in place: a copy per watch event would cost O(namespaces) on
        # the hot path. Readers hold the publisher's lock, so no one sees a half-done update.
        states = {} if namespace is None else self.states
        for outcome in result.outcomes:
            state = _state(outcome.change.action, outcome.error)
            if state is None:
                states.pop(outcome.change.namespace, None)
            else:
                states[outcome.change.namespace] = state
        self.states = states
        if namespace is None:
            self.account_errors = len(result.service_account_errors)

    def counts(self) -> dict[str, int]:
        states = [state for state, _ in self.states.values()]
        return {
            "selected": len(states),
            "inSync": states.count(IN_SYNC),
            "failed": states.count(FAILED),
            "conflict": states.count(CONFLICTED),
        }

    def failures(self) -> tuple[list[dict[str, str]], int]:
        troubled = sorted((ns, reason) for ns, (state, reason) in self.states.items() if state != IN_SYNC)
        shown = [{"namespace": ns, "reason": reason} for ns, reason in troubled[:FIRST_FAILURES]]
        return shown, max(0, len(troubled) - FIRST_FAILURES)


_CREDENTIAL = re.compile(r"credential '([^']*)'")


def _without_detail(error: str) -> str:
    """What the status says of a source error: the credential by name, never a path or address
    (anyone who may read PullSecretSyncs reads it); the log line `sync failed` has the rest."""
    found = _CREDENTIAL.search(error)
    which = f"credential {found.group(1)!r}" if found else "a credential"
    return f"could not fetch {which}; syncd's log (`sync failed`) says why"


def _state(action: Action, error: str | None) -> tuple[str, str] | None:
    if action is Action.PRUNE:
        return None
    if error is not None:
        return FAILED, error
    if action is Action.CONFLICT:
        return CONFLICTED, "a Secret of that name exists and this syncd instance does not manage it"
    return IN_SYNC, ""


def object_name(instance: str, secret: str) -> str:
    """One object per spec per instance, named so that two installations never share one."""
    return f"{instance}.{secret}"


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _credential(facts: CredentialFacts, fraction: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": facts.name, "source": facts.source, "registries": list(facts.registries)}
    if facts.expires_at is not None:
        entry["expiresAt"] = _time(facts.expires_at)
    if facts.fetched_at is not None:
        entry["lastFetched"] = _time(facts.fetched_at)
        if facts.expires_at is not None:
            entry["nextRefresh"] = _time(refresh_at(facts.fetched_at, facts.expires_at, fraction))
    return entry


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def _source_condition(ledger: SpecLedger) -> dict[str, str]:
    if ledger.source_error is not None:
        return _condition("SourceAvailable", False, SOURCE_ERROR, ledger.source_error)
    if not ledger.synced:
        return _condition("SourceAvailable", False, NOT_SYNCED_YET, "no sync has finished yet")
    return _condition("SourceAvailable", True, FETCHED, "every credential of the spec was fetched")


def _synced_condition(ledger: SpecLedger, counts: Mapping[str, int]) -> dict[str, str]:
    if ledger.cluster_error is not None:
        return _condition("Synced", False, APISERVER_ERROR, ledger.cluster_error)
    if not ledger.synced:
        return _condition("Synced", False, NOT_SYNCED_YET, "no sync has finished yet")
    selected, in_sync = counts["selected"], counts["inSync"]
    summary = f"{in_sync} of {selected} selected namespaces in sync"
    if counts["failed"]:
        return _condition("Synced", False, WRITE_FAILED, f"{summary}; {counts['failed']} failed")
    if counts["conflict"]:
        return _condition("Synced", False, CONFLICT, f"{summary}; {counts['conflict']} in conflict")
    if not selected:
        return _condition("Synced", True, NO_NAMESPACES, "the spec selects no namespace")
    return _condition("Synced", True, ALL_IN_SYNC, summary)


def _expiring_condition(credentials: Sequence[CredentialFacts], now: dt.datetime, fraction: float) -> dict[str, str]:
    """True once a credential is past the time syncd meant to replace it (the refresh failed, or the
    source keeps handing out the same expiring login): a successful refresh moves its expiry out."""
    for facts in sorted(credentials, key=lambda c: c.expires_at or dt.datetime.max.replace(tzinfo=dt.UTC)):
        since = facts.since or facts.fetched_at
        if facts.expires_at is None or since is None:
            continue
        if now >= facts.expires_at:
            return _condition("ExpiringSoon", True, EXPIRED, f"credential {facts.name} has expired")
        if now >= refresh_at(since, facts.expires_at, fraction):
            message = f"credential {facts.name} expires at {_time(facts.expires_at)} and was not refreshed"
            return _condition("ExpiringSoon", True, REFRESH_OVERDUE, message)
    return _condition("ExpiringSoon", False, NOT_EXPIRING, "no credential is past its refresh time")


def _degraded_condition(ledger: SpecLedger, counts: Mapping[str, int]) -> dict[str, str]:
    if counts["failed"]:
        return _condition("Degraded", True, WRITE_FAILED, f"{counts['failed']} namespaces failed")
    if counts["conflict"]:
        return _condition("Degraded", True, CONFLICT, f"{counts['conflict']} namespaces in conflict")
    if ledger.account_errors:
        return _condition(
            "Degraded", True, SERVICE_ACCOUNT_ERRORS, f"{ledger.account_errors} ServiceAccount edits failed"
        )
    return _condition("Degraded", False, HEALTHY, "no failure, conflict or ServiceAccount error")


def _ready_condition(parts: Sequence[dict[str, str]], counts: Mapping[str, int]) -> dict[str, str]:
    """Ready: the source answers, no write failed, nothing expired. Conflicts degrade, they do not
    unready (a foreign Secret in one namespace would otherwise hold a spec unready for good)."""
    source, synced, expiring = parts
    if source["reason"] == SOURCE_ERROR:
        return _condition("Ready", False, source["reason"], source["message"])
    if synced["reason"] in (APISERVER_ERROR, WRITE_FAILED, NOT_SYNCED_YET):
        return _condition("Ready", False, synced["reason"], synced["message"])
    if expiring["reason"] == EXPIRED:
        return _condition("Ready", False, EXPIRED, expiring["message"])
    return _condition("Ready", True, READY, f"{counts['inSync']} of {counts['selected']} selected namespaces in sync")


def conditions(
    ledger: SpecLedger, credentials: Sequence[CredentialFacts], now: dt.datetime, fraction: float
) -> list[dict[str, str]]:
    counts = ledger.counts()
    source, synced = _source_condition(ledger), _synced_condition(ledger, counts)
    expiring = _expiring_condition(credentials, now, fraction)
    ready = _ready_condition((source, synced, expiring), counts)
    return [ready, synced, source, expiring, _degraded_condition(ledger, counts)]


def status_of(
    ledger: SpecLedger,
    credentials: Sequence[CredentialFacts],
    identity: Identity,
    now: dt.datetime,
    *,
    generation: int,
    pull_failures: int | None = None,
    repairs: int | None = None,
) -> dict[str, Any]:
    """The object's status (conditions without lastTransitionTime: `carry_transitions` adds it)."""
    counts: dict[str, int] = ledger.counts()
    if pull_failures is not None:
        counts["pullFailuresLastHour"] = pull_failures
    if repairs is not None:
        counts["podsRepairedLastHour"] = repairs
    shown, omitted = ledger.failures()
    expiries = [c.expires_at for c in credentials if c.expires_at is not None]
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "observedConfigHash": identity.config_hash,
        "instance": identity.instance,
        "leader": identity.leader,
        "conditions": [
            {**c, "observedGeneration": generation}
            for c in conditions(ledger, credentials, now, identity.refresh_before_expiry)
        ],
        "credentials": [_credential(c, identity.refresh_before_expiry) for c in credentials],
        "namespaces": counts,
        "failures": shown,
        "failuresOmitted": omitted,
    }
    if expiries:
        status["expiresAt"] = _time(min(expiries))
    if ledger.last_sync is not None:
        status["lastSyncTime"] = _time(ledger.last_sync)
    return status


def carry_transitions(new: dict[str, Any], old: Mapping[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    """Keep each condition's lastTransitionTime while its status stays the same (the standard shape)."""
    before = {c.get("type"): c for c in (old or {}).get("conditions", [])}
    carried = []
    for condition in new["conditions"]:
        previous = before.get(condition["type"])
        same = previous is not None and previous.get("status") == condition["status"]
        stamp = previous.get("lastTransitionTime") if same and previous else None
        carried.append({**condition, "lastTransitionTime": stamp or _time(now)})
    return {**new, "conditions": carried}


def _stable(status: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in status.items() if k not in VOLATILE_TOP}
    kept["credentials"] = [
        {k: v for k, v in c.items() if k not in VOLATILE_CREDENTIAL} for c in status.get("credentials", [])
    ]
    return kept


def needs_write(
    new: Mapping[str, Any], written: Mapping[str, Any] | None, age: dt.timedelta, relist: dt.timedelta
) -> bool:
    """Write when something other than a volatile timestamp changed, or the last write is older
    than `relist` (so the timestamps move at most once per relist_interval when idle)."""
    if written is None:
        return True
    if _stable(new) != _stable(written):
        return True
    return age >= relist and new != written


def transitions(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The conditions whose status changed since `old` (each becomes an Event on the object)."""
    before = {c.get("type"): c.get("status") for c in (old or {}).get("conditions", [])}
    return [c for c in new.get("conditions", []) if before.get(c["type"]) != c["status"]]


def facts_of(names: Iterable[str], describe: Mapping[str, CredentialFacts]) -> list[CredentialFacts]:
    """The spec's credentials in config order; one never fetched yet appears by name alone."""
    return [describe.get(name) or CredentialFacts(name, source="") for name in names]
