"""The publisher of PullSecretSync status (syncd/daemon/pullsyncs.py) against a store fake at its port."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from harness.wait import wait_until
from syncd.config import Config, parse_config
from syncd.core.errors import KubeError
from syncd.core.values import Action, ChangeOutcome, FetchedCredential, PlannedChange, RegistryCredential, SyncResult
from syncd.daemon.pullsyncs import StatusPublisher, merge_patch

PASSWORD = "s3cr3t-pullsync-password"  # a test value that must never reach a status


class NoCrd(KubeError):
    pass


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.crd = True

    def read(self, name: str) -> dict[str, Any] | None:
        return self.objects.get(name)

    def create(self, name: str, secret: str) -> dict[str, Any]:
        if not self.crd:
            raise NoCrd("no CRD", status=404)
        self.objects[name] = {"metadata": {"name": name, "uid": f"uid-{name}", "generation": 1}, "spec": {}}
        return self.objects[name]

    def patch_status(self, name: str, patch: dict[str, Any]) -> None:
        self.patches.append((name, patch))

    def delete(self, name: str) -> None:
        self.objects.pop(name)

    def names(self) -> list[str]:
        if not self.crd:
            raise NoCrd("no CRD", status=404)
        return sorted(self.objects)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def condition_changed(self, name: str, uid: str, condition: Mapping[str, str], now: dt.datetime) -> None:
        self.seen.append((name, condition["type"], condition["status"]))


class Counter:
    def __init__(self) -> None:
        self.results: list[str] = []

    def status_write(self, result: str) -> None:
        self.results.append(result)


class Credentials:
    def cached(self, name: str) -> FetchedCredential | None:
        return FetchedCredential(name, "vault", (RegistryCredential("registry.example", "robot", PASSWORD),))

    def fetched_at(self, name: str) -> dt.datetime | None:
        return dt.datetime(2026, 12, 4, tzinfo=dt.UTC)


def config(*names: str, **top: Any) -> Config:
    return parse_config(
        {
            **top,
            "vault": {"address": "https://vault.invalid"},
            "credentials": [{"name": "hub", "registry": "registry.example", "vault": {"path": "hub"}}],
            "secrets": [{"name": n, "credentials": ["hub"], "namespaces": {"patterns": ["team-*"]}} for n in names],
        }
    )


class Setup:
    def __init__(self, *names: str, **top: Any) -> None:
        self.config = config(*names, **top)
        self.now = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
        self.store, self.events, self.counter = Store(), Events(), Counter()
        self.leading = True
        self.publisher = StatusPublisher(
            self.store,
            config=lambda: self.config,
            credentials=Credentials(),
            leader="syncd-0",
            may_write=lambda: self.leading,
            events=self.events,
            counter=self.counter,
            crd_missing=NoCrd,
            clock=lambda: self.now,
        )

    def sync(self, name: str, *outcomes: ChangeOutcome, errors: list[str] | None = None) -> None:
        spec = next(s for s in self.config.secrets if s.name == name)
        self.publisher.record(spec, SyncResult(name, outcomes=list(outcomes), source_errors=errors or []), None)
        self.publisher.flush([name])


def ok(namespace: str) -> ChangeOutcome:
    return ChangeOutcome(PlannedChange(namespace, "regcred", Action.UNCHANGED))


def test_the_first_sync_creates_the_object_and_writes_its_status_once() -> None:
    setup = Setup("regcred")
    setup.sync("regcred", ok("team-a"))
    assert list(setup.store.objects) == ["default.regcred"]
    [(name, patch)] = setup.store.patches
    assert name == "default.regcred"
    assert patch["namespaces"]["inSync"] == 1
    assert PASSWORD not in repr(patch)
    assert setup.events.seen == []  # no Event for the first status: nothing transitioned
    setup.sync("regcred", ok("team-a"))  # the same again: nothing to write
    assert len(setup.store.patches) == 1
    assert setup.counter.results == ["written"]


def test_a_condition_change_is_patched_and_becomes_events() -> None:
    setup = Setup("regcred")
    setup.sync("regcred", ok("team-a"))
    setup.sync("regcred", errors=["credential hub: Vault unavailable"])
    _, patch = setup.store.patches[-1]
    assert {c["type"] for c in patch["conditions"]} >= {"Ready", "SourceAvailable"}
    assert ("default.regcred", "Ready", "False") in setup.events.seen
    assert ("default.regcred", "SourceAvailable", "False") in setup.events.seen


def test_a_standby_writes_nothing() -> None:
    setup = Setup("regcred")
    setup.leading = False
    setup.sync("regcred", ok("team-a"))
    assert setup.store.patches == []
    assert setup.store.objects == {}


def test_without_the_crd_it_stops_trying_and_counts_once() -> None:
    setup = Setup("regcred", "other")
    setup.store.crd = False
    setup.sync("regcred", ok("team-a"))
    setup.sync("other", ok("team-a"))
    setup.publisher.reconcile_objects_now()
    assert setup.publisher.disabled
    assert setup.counter.results == ["skipped_no_crd"]


def test_objects_of_specs_removed_from_the_config_are_deleted() -> None:
    setup = Setup("regcred", "gone")
    setup.sync("regcred", ok("team-a"))
    setup.sync("gone", ok("team-a"))
    setup.config = config("regcred")
    setup.publisher.reconcile_objects_now()
    assert list(setup.store.objects) == ["default.regcred"]


def test_merge_patch_nulls_removed_keys_and_keeps_unchanged_ones_out() -> None:
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": "z"}
    new = {"a": 1, "b": {"x": 1, "y": 3}, "c": [1, 2]}
    assert merge_patch(old, new) == {"gone": None, "b": {"y": 3}, "c": [1, 2]}


def test_pull_failures_of_the_last_hour_are_counted_where_enabled() -> None:
    setup = Setup("regcred", pull_failures=True)
    setup.sync("regcred", ok("team-a"))
    assert setup.store.patches[-1][1]["namespaces"]["pullFailuresLastHour"] == 0
    setup.publisher.pull_failed("regcred", 3)
    setup.publisher.flush(["regcred"])
    assert setup.store.patches[-1][1]["namespaces"] == {"pullFailuresLastHour": 3}
    setup.now += dt.timedelta(minutes=61)
    setup.publisher.flush(["regcred"])
    assert setup.store.patches[-1][1]["namespaces"] == {"pullFailuresLastHour": 0}


def test_repairs_of_the_last_hour_are_counted_where_enabled() -> None:
    setup = Setup("regcred", "other", repair_pods=True)
    setup.sync("regcred", ok("team-a"))
    assert setup.store.patches[-1][1]["namespaces"]["podsRepairedLastHour"] == 0
    setup.publisher.repaired("regcred")
    setup.publisher.repaired("regcred")
    setup.publisher.repaired("other")
    setup.publisher.flush(["regcred"])
    assert setup.store.patches[-1][1]["namespaces"] == {"podsRepairedLastHour": 2}
    setup.now += dt.timedelta(minutes=61)
    setup.publisher.flush(["regcred"])
    assert setup.store.patches[-1][1]["namespaces"] == {"podsRepairedLastHour": 0}


def test_without_pull_failures_the_count_is_absent() -> None:
    setup = Setup("regcred")
    setup.sync("regcred", ok("team-a"))
    assert "pullFailuresLastHour" not in setup.store.patches[-1][1]["namespaces"]
    assert "podsRepairedLastHour" not in setup.store.patches[-1][1]["namespaces"]


def test_a_new_leader_writes_nothing_before_its_first_result() -> None:
    """A restart or failover must not turn Ready objects into NotSyncedYet (and page on the flap)."""
    setup = Setup("regcred")
    setup.store.objects["default.regcred"] = {"metadata": {"uid": "u", "generation": 1}, "status": {"conditions": []}}
    setup.publisher.reconcile_objects_now()
    setup.publisher.flush(["regcred"])
    assert setup.store.patches == []
    setup.sync("regcred", ok("team-a"))
    assert len(setup.store.patches) == 1


def test_a_sync_from_the_cache_does_not_clear_a_source_error() -> None:
    setup = Setup("regcred")
    setup.sync("regcred", errors=["credential 'hub': cannot connect to Vault at https://vault.invalid (secret/hub)"])
    spec = setup.config.secrets[0]
    setup.publisher.record(spec, SyncResult("regcred", outcomes=[ok("team-b")]), "team-b", fetched=False)
    setup.publisher.flush(["regcred"])
    conditions = {c["type"]: c for c in setup.store.patches[-1][1]["conditions"]}
    assert conditions["SourceAvailable"]["status"] == "False"
    # The credential by name; never the address or the path (anyone who reads the object reads it).
    assert conditions["SourceAvailable"]["message"].startswith("could not fetch credential 'hub'")
    assert "vault.invalid" not in repr(setup.store.patches)
    assert "secret/hub" not in repr(setup.store.patches)


def test_a_burst_is_coalesced_into_about_one_write_per_second() -> None:
    setup = Setup("regcred")
    spec = setup.config.secrets[0]
    setup.publisher.start()
    try:
        for i in range(40):
            setup.publisher.record(spec, SyncResult("regcred", outcomes=[ok(f"team-{i}")]), f"team-{i}")
            time.sleep(0.025)
        wait_until(lambda: any(p[1].get("namespaces", {}).get("selected") == 40 for p in setup.store.patches), 10, "40")
    finally:
        setup.publisher.stop()
    assert 1 <= len(setup.store.patches) <= 3, len(setup.store.patches)


def test_a_failed_write_is_tried_again_without_waiting_for_a_sync() -> None:
    setup = Setup("regcred")
    failures = [KubeError("writing the status: HTTP 503", status=503)]
    original = setup.store.patch_status

    def flaky(name: str, patch: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        original(name, patch)

    setup.store.patch_status = flaky  # type: ignore[method-assign]
    setup.publisher.start()
    try:
        setup.sync("regcred", ok("team-a"))
        assert setup.store.patches == []
        wait_until(lambda: len(setup.store.patches) == 1, 10, "the retry")
    finally:
        setup.publisher.stop()
    assert setup.counter.results == ["failed", "written"]
