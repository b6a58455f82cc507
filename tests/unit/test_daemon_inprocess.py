"""`syncd run` in-process: the real Daemon and its parts on a fake cluster, source, watches and elector."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry

from harness.process import free_port
from harness.wait import wait_until
from syncd.config import Config, parse_config
from syncd.core.values import NamespaceInfo
from syncd.core.watch_events import NamespaceEvent
from syncd.daemon.routing import Loop
from syncd.daemon.service import Daemon, OnEvent, OnRelist, Ports
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from tests.unit.fakes import FakeCluster, FakeSource


class FakeLoop:
    def __init__(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False


class FakeElector:
    def __init__(self, on_change: Callable[[bool], None]) -> None:
        self.on_change = on_change
        self.leading = False
        self.started = False

    def start(self) -> None:
        self.started = True

    def stop(self, *, release: bool = True) -> None:
        self.leading = False

    def is_leader(self) -> bool:
        return self.leading

    def take(self) -> None:
        self.leading = True
        self.on_change(True)


@dataclass
class Watches:
    """The fake watch edge: remembers the daemon's handlers and the loops it asked for."""

    on_event: OnEvent | None = None
    on_relist: OnRelist | None = None
    loops: dict[str, FakeLoop] = field(default_factory=dict)

    def loops_for(self, config: Config, on_event: OnEvent, on_relist: OnRelist) -> dict[str, Loop]:
        self.on_event, self.on_relist = on_event, on_relist
        kinds = ["namespaces", *(f"secrets/{s.name}" for s in config.secrets)]
        for kind in kinds:
            self.loops.setdefault(kind, FakeLoop())
        return {kind: self.loops[kind] for kind in kinds}


def document(port: int, **pull: Any) -> dict[str, Any]:
    return {
        "vault": {"address": "https://vault.invalid"},
        "credentials": [
            {"name": "a", "registry": "a.example", "vault": {"path": "a"}},
            {"name": "b", "registry": "b.example", "vault": {"path": "b"}},
        ],
        "secrets": [
            {"name": "pull", "credentials": ["a"], "namespaces": {"patterns": ["team-*"]}, **pull},
            {"name": "other", "credentials": ["b"], "namespaces": {"names": ["team-1"]}},
        ],
        "schedule": {"interval": "1h"},
        "server": {"address": f"127.0.0.1:{port}"},
    }


@dataclass
class Running:
    daemon: Daemon
    source: FakeSource
    cluster: FakeCluster
    watches: Watches
    registry: CollectorRegistry
    path: Path
    port: int
    electors: list[FakeElector]

    def write(self, doc: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(doc))

    def reloads(self) -> float:
        return self.registry.get_sample_value("syncd_config_reloads_total", {"result": "success"}) or 0

    def runs(self, secret: str) -> float:
        """The spec's finished runs, whatever their result."""
        [family] = [m for m in self.registry.collect() if m.name == "syncd_sync_runs"]
        return sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels["secret"] == secret)

    def ready(self) -> int:
        return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).status_code


def start(tmp_path: Path, *, election: bool = False) -> tuple[Running, threading.Thread]:
    port = free_port()
    path = tmp_path / "syncd.yaml"
    doc = document(port)
    path.write_text(yaml.safe_dump(doc))
    config = parse_config(doc)
    source = FakeSource({"a": ("user-a", "secret-a"), "b": ("user-b", "secret-b")})
    cluster = FakeCluster(namespaces={"team-1": {}, "team-2": {}, "other": {}})
    registry = CollectorRegistry()
    reconciler = Reconciler(
        config=config, sources={"vault": source}, cluster=cluster, metrics=Metrics(registry), workers=2
    )
    watches, electors = Watches(), []

    def elector(_: Config, on_change: Callable[[bool], None]) -> FakeElector | None:
        electors.append(FakeElector(on_change))
        return electors[-1] if election else None

    ports = Ports(
        reconciler=reconciler,
        metrics=reconciler.metrics,
        registry=registry,
        lifetimes=reconciler.fetcher.lifetimes,
        sources=lambda _: {"vault": source},
        watch_loops=watches.loops_for,
        elector=elector,
    )
    daemon = Daemon(path, config, ports)
    running = Running(daemon, source, cluster, watches, registry, path, port, electors)
    exit_code: list[int] = []
    thread = threading.Thread(target=lambda: exit_code.append(daemon.run()), daemon=True)
    thread.start()
    return running, thread


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    syncd, thread = start(tmp_path)
    wait_until(lambda: syncd.daemon.ready()[0], 10, "the first syncs")
    yield syncd
    syncd.daemon.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_the_first_syncs_fetch_each_credential_once_and_make_it_ready(running: Running) -> None:
    assert set(running.cluster.secrets) == {("team-1", "pull"), ("team-2", "pull"), ("team-1", "other")}
    assert sorted(running.source.calls) == ["a", "b"]
    assert running.ready() == 200
    assert all(loop.running for loop in running.watches.loops.values())


def test_a_namespace_event_writes_that_namespace_from_the_cache(running: Running) -> None:
    running.cluster.namespaces["team-3"] = {}
    assert running.watches.on_event is not None
    running.watches.on_event(NamespaceEvent("ADDED", NamespaceInfo("team-3")))
    wait_until(lambda: ("team-3", "pull") in running.cluster.secrets, 10, "the new namespace's Secret")
    assert sorted(running.source.calls) == ["a", "b"]


def test_a_reload_of_a_selector_moves_the_secret_without_a_source_call(running: Running) -> None:
    running.write(document(running.port, namespaces={"names": ["other"]}))
    wait_until(lambda: running.reloads() == 1, 10, "the reload")
    wait_until(lambda: ("other", "pull") in running.cluster.secrets, 10, "the newly selected namespace's Secret")
    wait_until(lambda: ("team-1", "pull") not in running.cluster.secrets, 10, "the deselected namespace's pruned")
    assert sorted(running.source.calls) == ["a", "b"]
    assert running.daemon.router.route(NamespaceEvent("ADDED", NamespaceInfo("team-4"))) == []


def test_a_reload_of_a_credentials_path_fetches_that_credential_alone(running: Running) -> None:
    doc = document(running.port)
    doc["credentials"][0]["vault"]["path"] = "a-moved"
    running.write(doc)
    wait_until(lambda: running.reloads() == 1, 10, "the reload")
    # The reload re-runs every spec once: when both runs are counted, every fetch they made is in.
    wait_until(lambda: running.runs("pull") == running.runs("other") == 2, 10, "the runs after the reload")
    assert sorted(running.source.calls) == ["a", "a", "b"]


def test_a_removed_spec_stops_its_watch_and_is_pruned(running: Running) -> None:
    doc = document(running.port)
    doc["secrets"] = doc["secrets"][:1]
    running.write(doc)
    wait_until(lambda: ("team-1", "other") not in running.cluster.secrets, 10, "the removed spec's Secret pruned")
    assert not running.watches.loops["secrets/other"].running
    assert running.watches.loops["secrets/pull"].running
    assert sorted(running.source.calls) == ["a", "b"]


def test_a_rejected_reload_keeps_the_running_config(running: Running) -> None:
    running.path.write_text("secrets: [{name: Not_Valid}]\n")
    failures = {"result": "failure"}
    wait_until(
        lambda: running.registry.get_sample_value("syncd_config_reloads_total", failures) == 1, 10, "a rejection"
    )
    assert [s.name for s in running.daemon.config.secrets] == ["pull", "other"]


def test_a_standby_writes_nothing_until_it_leads(tmp_path: Path) -> None:
    syncd, thread = start(tmp_path, election=True)
    try:
        wait_until(lambda: syncd.daemon.healthy()[0], 10, "the scheduler")
        assert syncd.daemon.ready() == (True, "standby: config loaded, another replica holds the lease")
        # Starting the elector is the last step of the start: then nothing is left to run that a
        # standby could write with (no run scheduled; no watch event came).
        wait_until(lambda: syncd.electors[0].started, 10, "the elector")
        assert [s.name for s in syncd.daemon.config.secrets if syncd.daemon.scheduler.next_run(s.name)] == []
        assert syncd.cluster.secrets == {}
        syncd.electors[0].take()
        wait_until(lambda: len(syncd.cluster.secrets) == 3, 10, "the leader's first syncs")
        assert syncd.registry.get_sample_value("syncd_leader") == 1
    finally:
        syncd.daemon.stop()
        thread.join(10)
    assert syncd.registry.get_sample_value("syncd_leader") == 0
