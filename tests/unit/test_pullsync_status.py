"""PullSecretSync status: conditions, counts, size, and when it is written (syncd/engine/pullsync_status.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from syncd.core.values import Action, ChangeOutcome, PlannedChange, SyncResult
from syncd.engine.pullsync_status import (
    FIRST_FAILURES,
    CredentialFacts,
    Identity,
    SpecLedger,
    carry_transitions,
    needs_write,
    status_of,
    transitions,
)

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
IDENTITY = Identity("default", "syncd-0_abc", "sha256:0123", 0.25)
HOUR = dt.timedelta(hours=1)


def outcome(namespace: str, action: Action = Action.UNCHANGED, error: str | None = None) -> ChangeOutcome:
    return ChangeOutcome(PlannedChange(namespace, "regcred", action), error=error)


def synced(
    *outcomes: ChangeOutcome, source_errors: list[str] | None = None, cluster_errors: list[str] | None = None
) -> SyncResult:
    return SyncResult(
        "regcred", outcomes=list(outcomes), source_errors=source_errors or [], cluster_errors=cluster_errors or []
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def fresh() -> list[CredentialFacts]:
    return [CredentialFacts("hub", "vault", ("docker.io",), NOW + 11 * HOUR, NOW - HOUR)]


def test_a_clean_sync_is_ready_and_counts_its_namespaces() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a"), outcome("b", Action.CREATE)), NOW)
    status = status_of(ledger, fresh(), IDENTITY, NOW, generation=1)
    assert conditions(status) == {
        "Ready": ("True", "Ready"),
        "Synced": ("True", "AllInSync"),
        "SourceAvailable": ("True", "Fetched"),
        "ExpiringSoon": ("False", "NotExpiring"),
        "Degraded": ("False", "Healthy"),
    }
    assert status["namespaces"] == {"selected": 2, "inSync": 2, "failed": 0, "conflict": 0}
    assert status["expiresAt"] == "2026-12-04T23:00:00Z"
    assert status["credentials"][0]["nextRefresh"] == "2026-12-04T20:00:00Z"  # 3/4 of 12 h after the fetch
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])


def test_never_synced_is_not_ready() -> None:
    status = status_of(SpecLedger("regcred"), [], IDENTITY, NOW, generation=1)
    assert conditions(status)["Ready"] == ("False", "NotSyncedYet")
    assert "lastSyncTime" not in status


def test_a_dead_source_unreadies_and_keeps_the_last_namespace_states() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a")), NOW)
    ledger.record(synced(source_errors=["credential hub: vault unavailable"]), NOW + HOUR)
    status = status_of(ledger, fresh(), IDENTITY, NOW + HOUR, generation=1)
    assert conditions(status)["SourceAvailable"] == ("False", "SourceError")
    assert conditions(status)["Ready"] == ("False", "SourceError")
    assert status["namespaces"]["inSync"] == 1
    ledger.record(synced(outcome("a")), NOW + 2 * HOUR)
    assert conditions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1))["Ready"] == ("True", "Ready")


def test_an_apiserver_error_blames_the_cluster_not_the_source_and_only_a_whole_sync_clears_it() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a")), NOW)
    ledger.record(synced(cluster_errors=["listing the Secrets of regcred: 503"]), NOW + HOUR)
    status = status_of(ledger, fresh(), IDENTITY, NOW + HOUR, generation=1)
    assert conditions(status)["SourceAvailable"] == ("True", "Fetched")
    assert conditions(status)["Synced"] == ("False", "ApiserverError")
    assert conditions(status)["Ready"] == ("False", "ApiserverError")
    assert "503" not in json.dumps(status)  # the log has the detail, the object a pointer to it
    assert status["namespaces"]["inSync"] == 1  # the last known states stand
    ledger.record(synced(outcome("a")), NOW + 2 * HOUR, namespace="a")
    assert conditions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1))["Ready"] == ("False", "ApiserverError")
    ledger.record(synced(outcome("a")), NOW + 3 * HOUR)
    assert conditions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1))["Ready"] == ("True", "Ready")


def test_an_apiserver_error_on_the_first_sync_says_so_rather_than_not_synced_yet() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(cluster_errors=["listing namespaces: connection refused"]), NOW)
    status = status_of(ledger, fresh(), IDENTITY, NOW, generation=1)
    assert conditions(status)["Ready"] == ("False", "ApiserverError")
    assert conditions(status)["SourceAvailable"] == ("False", "NotSyncedYet")


def test_failed_writes_unready_and_conflicts_only_degrade() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a"), outcome("b", Action.CONFLICT)), NOW)
    status = status_of(ledger, fresh(), IDENTITY, NOW, generation=1)
    assert conditions(status)["Ready"] == ("True", "Ready")
    assert conditions(status)["Synced"] == ("False", "Conflict")
    assert conditions(status)["Degraded"] == ("True", "Conflict")
    ledger.record(synced(outcome("c", Action.CREATE, error="HTTP 500")), NOW, namespace="c")
    status = status_of(ledger, fresh(), IDENTITY, NOW, generation=1)
    assert conditions(status)["Ready"] == ("False", "WriteFailed")
    assert status["failures"] == [
        {"namespace": "b", "reason": "a Secret of that name exists and this syncd instance does not manage it"},
        {"namespace": "c", "reason": "HTTP 500"},
    ]


def test_a_namespace_sync_updates_one_namespace_and_a_whole_sync_forgets_unselected_ones() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a"), outcome("b")), NOW)
    ledger.record(synced(outcome("c", Action.CREATE)), NOW, namespace="c")
    assert ledger.counts()["selected"] == 3
    ledger.record(synced(outcome("a"), outcome("b", Action.PRUNE)), NOW)
    assert ledger.counts() == {"selected": 1, "inSync": 1, "failed": 0, "conflict": 0}


def test_refresh_overdue_and_expired() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a")), NOW)
    stale = [CredentialFacts("hub", "vault", ("docker.io",), NOW + HOUR, NOW - 11 * HOUR)]
    status = status_of(ledger, stale, IDENTITY, NOW, generation=1)
    assert conditions(status)["ExpiringSoon"] == ("True", "RefreshOverdue")
    assert conditions(status)["Ready"] == ("True", "Ready")
    status = status_of(ledger, stale, IDENTITY, NOW + 2 * HOUR, generation=1)
    assert conditions(status)["ExpiringSoon"] == ("True", "Expired")
    assert conditions(status)["Ready"] == ("False", "Expired")


def test_at_50000_namespaces_with_1000_failing_the_status_stays_small() -> None:
    ledger = SpecLedger("regcred")
    outcomes = [outcome(f"ns-{i:05d}", error="HTTP 503" if i % 50 == 0 else None) for i in range(50_000)]
    ledger.record(synced(*outcomes), NOW)
    status = carry_transitions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1), None, NOW)
    size = len(json.dumps(status))
    assert status["namespaces"] == {"selected": 50_000, "inSync": 49_000, "failed": 1_000, "conflict": 0}
    assert len(status["failures"]) == FIRST_FAILURES
    assert status["failuresOmitted"] == 1_000 - FIRST_FAILURES
    assert size < 32 * 1024, size


def test_transition_times_move_only_when_a_condition_flips() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a")), NOW)
    first = carry_transitions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1), None, NOW)
    later = NOW + HOUR
    again = carry_transitions(status_of(ledger, fresh(), IDENTITY, later, generation=1), first, later)
    assert [c["lastTransitionTime"] for c in again["conditions"]] == [
        c["lastTransitionTime"] for c in first["conditions"]
    ]
    assert transitions(again, first) == []
    ledger.record(synced(source_errors=["credential hub: denied"]), later)
    flipped = carry_transitions(status_of(ledger, fresh(), IDENTITY, later, generation=1), again, later)
    changed = {c["type"]: c["lastTransitionTime"] for c in transitions(flipped, again)}
    assert changed == {"Ready": "2026-12-04T13:00:00Z", "SourceAvailable": "2026-12-04T13:00:00Z"}


@pytest.mark.parametrize(
    ("age", "expected"),
    [(dt.timedelta(minutes=5), False), (dt.timedelta(hours=2), True)],
)
def test_volatile_timestamps_alone_wait_for_the_relist_interval(age: dt.timedelta, expected: bool) -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a")), NOW)
    written = carry_transitions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1), None, NOW)
    ledger.record(synced(outcome("a")), NOW + age)  # a sync that changed nothing: lastSyncTime moves
    new = carry_transitions(status_of(ledger, fresh(), IDENTITY, NOW + age, generation=1), written, NOW + age)
    assert new != written
    assert needs_write(new, written, age, relist=HOUR) is expected


def test_a_real_change_is_written_at_once() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a")), NOW)
    written = carry_transitions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1), None, NOW)
    ledger.record(synced(outcome("b", Action.CREATE)), NOW, namespace="b")
    new = carry_transitions(status_of(ledger, fresh(), IDENTITY, NOW, generation=1), written, NOW)
    assert needs_write(new, written, dt.timedelta(seconds=1), relist=HOUR)


def test_dry_runs_change_nothing() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(SyncResult("regcred", outcomes=[outcome("a", Action.CREATE)], dry_run=True), NOW)
    assert ledger.counts()["selected"] == 0
    assert ledger.last_sync is None


def test_a_login_handed_out_again_with_the_same_expiry_is_overdue_from_when_it_was_first_held() -> None:
    ledger = SpecLedger("regcred")
    ledger.record(synced(outcome("a")), NOW)
    # Fetched again a minute ago (a stored token: the same expiry), first held 10 h ago, 12 h life.
    again = [
        CredentialFacts("hub", "vault", ("docker.io",), NOW + 2 * HOUR, NOW - dt.timedelta(minutes=1), NOW - 10 * HOUR)
    ]
    assert conditions(status_of(ledger, again, IDENTITY, NOW, generation=1))["ExpiringSoon"] == (
        "True",
        "RefreshOverdue",
    )
    renewed = [CredentialFacts("hub", "vault", ("docker.io",), NOW + 12 * HOUR, NOW, NOW)]
    assert conditions(status_of(ledger, renewed, IDENTITY, NOW, generation=1))["ExpiringSoon"] == (
        "False",
        "NotExpiring",
    )
