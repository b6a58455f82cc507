"""A reload swaps the config only: sources, cached credentials and rendered content it did not change stay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from syncd.app import Sources
from syncd.config import Config, parse_config
from syncd.core.values import SyncResult
from syncd.daemon.reload import Reloader
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from syncd.sources.base import Source
from syncd.sources.vault import VaultSource
from tests.unit.fakes import FakeCluster, FakeSource


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "vault": {"address": "https://vault.invalid"},
        "credentials": [
            {"name": "a", "registry": "a.example", "vault": {"path": "a"}},
            {"name": "h", "registry": "h.example", "helper": "pass"},
        ],
        "secrets": [
            {"name": "pull", "credentials": ["a"], "namespaces": {"patterns": ["team-*"]}},
            {"name": "helped", "credentials": ["h"], "namespaces": {"names": ["team-1"]}},
        ],
    }
    return {**doc, **changes}


CONFIG = parse_config(document())


class Recorder:
    """Fakes of the reconciler, watches and runs a Reloader drives; records what it asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def reconfigure(self, config: Config, sources: Mapping[str, Source[Any]]) -> None:
        self.calls.append(("reconfigure", [s.name for s in config.secrets]))

    def prune_retired(self, *, dry_run: bool = False, also: Iterable[str] = ()) -> SyncResult:
        self.calls.append(("prune_retired", sorted(also)))
        return SyncResult(secret="(removed specs)")

    def update(self, config: Config) -> None:
        self.calls.append(("rewatch", [s.name for s in config.secrets]))

    def cancel(self, names: Iterable[str]) -> None:
        self.calls.append(("cancel", sorted(names)))

    def schedule_now(self, names: Iterable[str] | None = None, *, after_reload: bool = False) -> None:
        self.calls.append(("schedule_now", after_reload))


def reloader(tmp_path: Path, recorder: Recorder, registry: CollectorRegistry, *, leading: bool = True) -> Reloader:
    return Reloader(
        tmp_path / "syncd.yaml",
        CONFIG,
        reconciler=recorder,
        sources=lambda _: {},
        watches=recorder,
        runs=recorder,
        metrics=Metrics(registry),
        may_write=lambda: leading,
    )


def test_a_valid_file_is_swapped_in_and_what_it_removed_is_stopped_and_pruned(tmp_path: Path) -> None:
    recorder, registry = Recorder(), CollectorRegistry()
    reload = reloader(tmp_path, recorder, registry)
    reload.path.write_text(yaml.safe_dump(document(secrets=document()["secrets"][:1])))
    reload.reload()
    assert [s.name for s in reload.config.secrets] == ["pull"]
    assert recorder.calls == [
        ("reconfigure", ["pull"]),
        ("rewatch", ["pull"]),
        ("cancel", ["helped"]),
        ("prune_retired", ["helped"]),
        ("schedule_now", True),
    ]
    assert registry.get_sample_value("syncd_config_reloads_total", {"result": "success"}) == 1


def test_a_standby_swaps_the_config_but_neither_prunes_nor_syncs(tmp_path: Path) -> None:
    recorder = Recorder()
    reload = reloader(tmp_path, recorder, CollectorRegistry(), leading=False)
    reload.path.write_text(yaml.safe_dump(document()))
    reload.reload()
    assert [call for call, _ in recorder.calls] == ["reconfigure", "rewatch", "cancel"]


def test_an_invalid_file_is_counted_and_changes_nothing(tmp_path: Path) -> None:
    recorder, registry = Recorder(), CollectorRegistry()
    reload = reloader(tmp_path, recorder, registry)
    reload.path.write_text("secrets: [{name: Not_Valid}]\n")
    reload.reload()
    assert reload.config is CONFIG
    assert recorder.calls == []
    assert registry.get_sample_value("syncd_config_reloads_total", {"result": "failure"}) == 1


def test_the_vault_session_is_kept_unless_the_vault_block_changed() -> None:
    sources = Sources(CONFIG)
    session = sources.current["vault"]
    assert isinstance(session, VaultSource)
    assert sources.reload(parse_config(document(secrets=document()["secrets"][1:])))["vault"] is session
    moved = sources.reload(parse_config(document(vault={"address": "https://elsewhere.invalid"})))
    assert moved["vault"] is not session
    without = document(credentials=document()["credentials"][1:], secrets=document()["secrets"][1:])
    del without["vault"]
    assert "vault" not in sources.reload(parse_config(without))


def reconciler(source: FakeSource, cluster: FakeCluster) -> Reconciler:
    return Reconciler(
        config=CONFIG,
        sources={"vault": source, "helper": source},
        cluster=cluster,
        metrics=Metrics(CollectorRegistry()),
        workers=2,
    )


def logins() -> FakeSource:
    return FakeSource({"a": ("user-a", "secret-a"), "h": ("user-h", "secret-h")})


def test_a_selector_change_keeps_the_cache_and_the_rendered_content() -> None:
    source, cluster = logins(), FakeCluster(namespaces={"team-1": {}, "other": {}})
    sync = reconciler(source, cluster)
    sync.sync_all()
    doc = document()
    doc["secrets"][0]["namespaces"] = {"names": ["other"]}
    sync.reconfigure(parse_config(doc), {"vault": source, "helper": source})
    assert sync.has_credentials(sync.config.secrets[0])
    assert sync.rendered("pull") is not None
    result = sync.sync_namespace(sync.config.secrets[0], "other")  # watch-triggered: from the cache
    assert result is not None
    assert ("other", "pull") in cluster.secrets
    assert sorted(source.calls) == ["a", "h"]


def test_a_changed_credential_or_vault_block_forgets_only_what_it_may_have_changed() -> None:
    source, cluster = logins(), FakeCluster(namespaces={"team-1": {}})
    sync = reconciler(source, cluster)
    sync.sync_all()
    doc = document()
    doc["credentials"][0]["vault"]["path"] = "a-moved"
    sync.reconfigure(parse_config(doc), {"vault": source, "helper": source})
    pull, helped = sync.config.secrets
    assert (sync.has_credentials(pull), sync.has_credentials(helped)) == (False, True)
    assert (sync.rendered("pull"), sync.rendered("helped") is not None) == (None, True)
    sync.sync_all()
    sync.reconfigure(parse_config(document(vault={"address": "https://elsewhere.invalid"})), {})
    assert (sync.has_credentials(pull), sync.has_credentials(helped)) == (False, True)


def test_new_labels_need_a_new_render_but_not_a_new_fetch() -> None:
    source, cluster = logins(), FakeCluster(namespaces={"team-1": {}})
    sync = reconciler(source, cluster)
    sync.sync_all()
    doc = document()
    doc["secrets"][0]["labels"] = {"team": "blue"}
    sync.reconfigure(parse_config(doc), {"vault": source, "helper": source})
    assert sync.rendered("pull") is None
    assert sync.has_credentials(sync.config.secrets[0])
    assert sync.rendered("helped") is not None
