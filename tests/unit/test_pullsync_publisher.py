"""The publisher of PullSecretSync status (syncd/daemon/pullsyncs.py) against a store fake at its port."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

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


def config(*names: str) -> Config:
    return parse_config(
        {
            "vault": {"address": "https://vault.invalid"},
            "credentials": [{"name": "hub", "registry": "registry.example", "vault": {"path": "hub"}}],
            "secrets": [{"name": n, "credentials": ["hub"], "namespaces": {"patterns": ["team-*"]}} for n in names],
        }
    )


class Setup:
    def __init__(self, *names: str) -> None:
        self.config = config(*names)
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
    setup.publisher.reconcile_objects()
    assert setup.publisher.disabled
    assert setup.counter.results == ["skipped_no_crd"]


def test_objects_of_specs_removed_from_the_config_are_deleted() -> None:
    setup = Setup("regcred", "gone")
    setup.sync("regcred", ok("team-a"))
    setup.sync("gone", ok("team-a"))
    setup.config = config("regcred")
    setup.publisher.reconcile_objects()
    assert list(setup.store.objects) == ["default.regcred"]


def test_merge_patch_nulls_removed_keys_and_keeps_unchanged_ones_out() -> None:
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": "z"}
    new = {"a": 1, "b": {"x": 1, "y": 3}, "c": [1, 2]}
    assert merge_patch(old, new) == {"gone": None, "b": {"y": 3}, "c": [1, 2]}
