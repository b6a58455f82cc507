"""Watch events: parsed once at the watch edge, then routed to re-sync requests by one rule."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from syncd.config import Config, parse_config
from syncd.core.values import DesiredSecret, ExistingSecret, NamespaceInfo, ServiceAccountRef
from syncd.core.watch_events import NamespaceEvent, SecretEvent, ServiceAccountEvent, WatchEvent
from syncd.daemon.routing import WatchRouter, WatchSet
from syncd.kube.watches import Gone, WatchLoop, namespace_event, secret_event, service_account_event

CONFIG = parse_config(
    {
        "credentials": [{"name": "a", "registry": "a.example", "helper": "pass"}],
        "secrets": [
            {"name": "team", "credentials": ["a"], "namespaces": {"patterns": ["team-*"]}},
            {
                "name": "labelled",
                "credentials": ["a"],
                "namespaces": {"selector": "pull=yes"},
                "service_accounts": ["default"],
            },
        ],
    }
)
DESIRED = DesiredSecret("team", b"{}", "sha256:now", ("a",), instance="default")


def router(config: Config = CONFIG, desired: DesiredSecret | None = DESIRED) -> WatchRouter:
    return WatchRouter(lambda: config, lambda spec: desired if spec == "team" else None)


def namespace(change: str, name: str, **labels: str) -> WatchEvent:
    return NamespaceEvent(change, NamespaceInfo(name, labels=labels))  # type: ignore[arg-type]


def secret(change: str, content_hash: str = "sha256:now", instance: str = "default") -> WatchEvent:
    found = ExistingSecret(
        "team-1",
        "team",
        "7",
        managed=True,
        spec="team",
        annotated_hash=content_hash,
        data_hash=content_hash,
        secret_type="kubernetes.io/dockerconfigjson",
        credentials="a",
        instance=instance,
    )
    return SecretEvent(change, found)  # type: ignore[arg-type]


def test_a_new_namespace_is_synced_alone_for_each_spec_that_selects_it() -> None:
    assert router().route(namespace("ADDED", "team-1")) == [("team", "team-1")]
    assert router().route(namespace("ADDED", "other", pull="yes")) == [("labelled", "other")]
    assert router().route(namespace("ADDED", "other")) == []


def test_a_namespace_relabelled_out_of_a_selection_gets_a_whole_spec_sync_which_prunes() -> None:
    assert router().route(namespace("MODIFIED", "team-1")) == [("team", "team-1"), ("labelled", None)]
    assert router().route(namespace("DELETED", "team-1")) == []


def test_only_a_changed_or_deleted_secret_of_ours_is_repaired() -> None:
    assert router().route(secret("MODIFIED")) == []  # our own write coming back
    assert router().route(secret("MODIFIED", "sha256:edited")) == [("team", "team-1")]
    assert router().route(secret("DELETED")) == [("team", "team-1")]


def test_another_installations_secret_matters_only_when_it_goes() -> None:
    assert router().route(secret("MODIFIED", "sha256:theirs", instance="other")) == []
    assert router().route(secret("DELETED", instance="other")) == [("team", "team-1")]


def test_before_a_specs_first_sync_its_secret_events_ask_for_nothing() -> None:
    assert router(desired=None).route(secret("DELETED")) == []


def test_a_listed_service_account_without_the_secret_gets_its_namespace_synced() -> None:
    def account(name: str, *pull: str) -> WatchEvent:
        return ServiceAccountEvent("ADDED", ServiceAccountRef("ns", name, pull))

    assert router().route(account("default")) == [("labelled", "ns")]
    assert router().route(account("default", "labelled")) == []
    assert router().route(account("builder")) == []


def test_the_first_list_of_a_kind_asks_for_nothing_and_later_ones_recheck_every_spec() -> None:
    routes = router()
    assert routes.relisted("namespaces") == []
    assert routes.relisted("secrets/team") == []
    assert routes.relisted("namespaces") == [("team", None), ("labelled", None)]


def test_the_router_follows_the_running_config() -> None:
    current = {"config": CONFIG}
    routes = WatchRouter(lambda: current["config"], lambda _: None)
    current["config"] = parse_config(
        {
            "credentials": [{"name": "a", "registry": "a.example", "helper": "pass"}],
            "secrets": [{"name": "only", "credentials": ["a"], "namespaces": {"names": ["x"]}}],
        }
    )
    assert routes.route(namespace("ADDED", "x")) == [("only", "x")]


class FakeLoop:
    def __init__(self, kind: str, log: list[str]) -> None:
        self.kind, self.log = kind, log

    def start(self) -> None:
        self.log.append(f"start {self.kind}")

    def stop(self) -> None:
        self.log.append(f"stop {self.kind}")


def test_a_new_config_starts_and_stops_only_the_loops_that_differ() -> None:
    log: list[str] = []
    wanted = {"config": ["namespaces", "secrets/a"]}
    watches = WatchSet(lambda _: {kind: FakeLoop(kind, log) for kind in wanted["config"]})
    watches.start(CONFIG)
    wanted["config"] = ["namespaces", "secrets/b"]
    watches.update(CONFIG)
    watches.stop()
    assert log == [
        "start namespaces",
        "start secrets/a",
        "stop secrets/a",
        "start secrets/b",
        "stop namespaces",
        "stop secrets/b",
    ]


# -- the watch edge: the API's JSON becomes a typed event once, in syncd.kube.watches --


def loop_seeing(kind: str, seen: list[WatchEvent]) -> WatchLoop:
    parse = {"namespaces": namespace_event, "secrets": secret_event, "accounts": service_account_event}[kind]
    return WatchLoop(kind, lambda **_: None, parse, seen.append, on_relist=lambda: None)


def handle(loop: WatchLoop, change: str, obj: dict[str, Any]) -> str:
    return loop._handle({"type": change, "object": obj}, "1")


def test_a_namespace_event_is_parsed_with_its_labels_and_state() -> None:
    seen: list[WatchEvent] = []
    obj = {"metadata": {"name": "n", "resourceVersion": "9", "labels": {"pull": "yes"}}, "status": {}}
    assert handle(loop_seeing("namespaces", seen), "MODIFIED", obj) == "9"
    assert seen == [NamespaceEvent("MODIFIED", NamespaceInfo("n"))]
    assert isinstance(seen[0], NamespaceEvent)
    assert seen[0].namespace.labels == {"pull": "yes"}


def test_a_secret_event_carries_ownership_and_hashes_not_data() -> None:
    seen: list[WatchEvent] = []
    obj = {
        "metadata": {
            "name": "team",
            "namespace": "team-1",
            "resourceVersion": "3",
            "labels": {"app.kubernetes.io/managed-by": "syncd", "syncd.io/secret": "team"},
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()},
    }
    handle(loop_seeing("secrets", seen), "DELETED", obj)
    [event] = seen
    assert isinstance(event, SecretEvent)
    assert (event.change, event.secret.namespace, event.secret.spec) == ("DELETED", "team-1", "team")
    assert event.secret.data_hash is not None
    assert event.secret.data_hash.startswith("sha256:")


def test_a_service_account_event_names_its_pull_secrets() -> None:
    seen: list[WatchEvent] = []
    obj = {"metadata": {"name": "default", "namespace": "ns"}, "imagePullSecrets": [{"name": "x"}]}
    handle(loop_seeing("accounts", seen), "ADDED", obj)
    assert seen == [ServiceAccountEvent("ADDED", ServiceAccountRef("ns", "default", ("x",)))]


def test_bookmarks_are_skipped_and_a_410_means_list_again() -> None:
    seen: list[WatchEvent] = []
    loop = loop_seeing("namespaces", seen)
    assert handle(loop, "BOOKMARK", {"metadata": {"resourceVersion": "12"}}) == "12"
    assert seen == []
    with pytest.raises(Gone):
        handle(loop, "ERROR", {"code": 410})
