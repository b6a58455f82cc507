"""The admission webhook's decision (syncd.engine.admission) and its answer in the daemon
(syncd.daemon.admission): JSON in, AdmissionReview out, from memory only."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from syncd.config import Config, parse_config
from syncd.core.values import Action, ChangeOutcome, ExistingSecret, NamespaceInfo, PlannedChange, SyncResult
from syncd.daemon.admission import AdmissionService, ConflictLedger
from syncd.engine.admission import AdmissionResult, Answer, Knowledge, answer
from syncd.engine.metrics import Metrics


def config() -> Config:
    return parse_config(
        {
            "instance": "web",
            "credentials": [{"name": "c", "registries": ["r.example"], "docker_config": "/dev/null"}],
            "secrets": [
                {
                    "name": "team-pull",
                    "credentials": ["c"],
                    "namespaces": {"patterns": ["team-*"]},
                    "service_accounts": ["default", "builder"],
                },
                {
                    "name": "all-pull",
                    "credentials": ["c"],
                    "namespaces": {"selector": "pulls=yes"},
                    "service_accounts": ["*"],
                },
                {
                    "name": "other-pull",
                    "credentials": ["c"],
                    "namespaces": {"names": ["elsewhere"]},
                    "service_accounts": ["*"],
                },
            ],
            "admission": {"enabled": True},
        }
    )


CONFIG = config()
NAMESPACES = {
    "team-a": NamespaceInfo("team-a"),
    "team-b": NamespaceInfo("team-b", labels={"pulls": "yes"}),
    "team-off": NamespaceInfo("team-off", labels={"syncd.io/inject": "false"}),
    "plain": NamespaceInfo("plain"),
    "elsewhere": NamespaceInfo("elsewhere"),
}


def known(conflicts: set[tuple[str, str]] | None = None) -> Knowledge:
    return Knowledge(NAMESPACES.get, lambda secret, namespace: (secret, namespace) in (conflicts or set()))


def review(namespace: str = "team-a", **pod_spec: Any) -> dict[str, Any]:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "r.example/i"}], **pod_spec}}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": namespace,
        "object": pod,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def ask(body: dict[str, Any] | bytes, conflicts: set[tuple[str, str]] | None = None) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return answer(raw, CONFIG, known(conflicts))


def response(found: Answer) -> dict[str, Any]:
    assert found.status == 200
    parsed = json.loads(found.body)
    assert parsed["apiVersion"] == "admission.k8s.io/v1"
    assert parsed["kind"] == "AdmissionReview"
    assert parsed["response"]["allowed"] is True
    return dict(parsed["response"])


def patched(pod_spec: dict[str, Any], found: Answer) -> list[Any]:
    """Apply the answer's JSON patch (add only) to the Pod spec: its imagePullSecrets afterwards."""
    after = json.loads(json.dumps(pod_spec))
    ops = response(found).get("patch")
    for op in json.loads(base64.b64decode(ops)) if ops else []:
        assert op["op"] == "add"
        if op["path"] == "/spec/imagePullSecrets":
            after["imagePullSecrets"] = op["value"]
        else:
            assert op["path"] == "/spec/imagePullSecrets/-"
            after["imagePullSecrets"].append(op["value"])
    return list(after.get("imagePullSecrets") or [])


def test_a_pod_without_pull_secrets_gets_the_selecting_specs_secret() -> None:
    body = review("team-a")
    found = ask(body)
    assert found.result is AdmissionResult.PATCHED
    assert response(found)["uid"] == body["request"]["uid"]
    assert response(found)["patchType"] == "JSONPatch"
    assert patched(body["request"]["object"]["spec"], found) == [{"name": "team-pull"}]


def test_every_selecting_spec_is_appended_after_the_pods_own_in_order() -> None:
    own = [{"name": "mine-2"}, {"name": "mine-1"}]
    body = review("team-b", imagePullSecrets=own, serviceAccountName="builder")
    found = ask(body)
    assert found.result is AdmissionResult.PATCHED
    assert patched(body["request"]["object"]["spec"], found) == [*own, {"name": "team-pull"}, {"name": "all-pull"}]


def test_a_pod_listing_the_secret_already_is_unchanged() -> None:
    found = ask(review("team-a", imagePullSecrets=[{"name": "team-pull"}]))
    assert found.result is AdmissionResult.UNCHANGED
    assert "patch" not in response(found)


def test_a_service_account_no_spec_lists_gets_nothing() -> None:
    found = ask(review("team-a", serviceAccountName="deployer"))
    assert found.result is AdmissionResult.SKIPPED
    assert "patch" not in response(found)


def test_an_empty_service_account_is_default() -> None:
    assert ask(review("team-a", serviceAccountName="")).result is AdmissionResult.PATCHED


@pytest.mark.parametrize("namespace", ["plain", "team-off", "unknown"])
def test_unselected_opted_out_or_unknown_namespaces_get_nothing(namespace: str) -> None:
    found = ask(review(namespace))
    assert found.result is AdmissionResult.SKIPPED
    assert "patch" not in response(found)


def test_a_pod_labelled_inject_false_gets_nothing() -> None:
    body = review("team-a")
    body["request"]["object"]["metadata"]["labels"] = {"syncd.io/inject": "false"}
    assert ask(body).result is AdmissionResult.SKIPPED


def test_a_conflict_leaves_that_spec_out_and_only_that_one() -> None:
    body = review("team-b")
    found = ask(body, conflicts={("team-pull", "team-b")})
    assert patched(body["request"]["object"]["spec"], found) == [{"name": "all-pull"}]


def test_the_namespace_is_the_requests_never_the_objects() -> None:
    """A Pod claiming a selected namespace in its metadata, reviewed for another, gets that other's answer."""
    body = review("plain")
    body["request"]["object"]["metadata"]["namespace"] = "elsewhere"
    assert ask(body).result is AdmissionResult.SKIPPED


def test_no_name_outside_the_config_can_be_added() -> None:
    """Whatever the Pod says, the only names ever added are spec names serving the request's namespace."""
    body = review("team-a", imagePullSecrets=[{"name": "other-pull"}], serviceAccountName="builder")
    body["request"]["object"]["metadata"]["annotations"] = {"syncd.io/secret": "other-pull"}
    found = ask(body)
    assert found.added == ("team-pull",)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"request": {}}', 400),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), 400),
        (b"[" * 100_000, 400),
    ],
)
def test_a_body_without_a_uid_is_answered_400(body: bytes, status: int) -> None:
    found = ask(body)
    assert (found.result, found.status) == (AdmissionResult.ERROR, status)


def _wrong(field: str, value: Any) -> dict[str, Any]:
    body = review()
    if field in ("apiVersion", "kind"):
        body[field] = value
    elif field == "spec":
        body["request"]["object"]["spec"] = value
    elif field == "imagePullSecrets":
        body["request"]["object"]["spec"]["imagePullSecrets"] = value
    else:
        body["request"][field] = value
    return body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("apiVersion", "admission.k8s.io/v1beta1"),
        ("kind", "Pod"),
        ("kind_", None),
        ("operation", "UPDATE"),
        ("subResource", "status"),
        ("namespace", ""),
        ("object", "a string"),
        ("spec", None),
        ("imagePullSecrets", {"name": "x"}),
    ],
)
def test_a_wrong_review_with_a_uid_is_allowed_unpatched(field: str, value: Any) -> None:
    body = _wrong("kind" if field == "kind_" else field, value)
    if field == "kind_":
        body["kind"] = "AdmissionReview"
        body["request"]["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    found = ask(body)
    assert found.result is AdmissionResult.ERROR
    assert response(found) == {"uid": body["request"]["uid"], "allowed": True}


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_any_json_is_answered_never_raised(anything: Any) -> None:
    found = ask(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "object": anything}}
    )
    assert found.result is AdmissionResult.ERROR


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.builds(dict, name=st.text(max_size=5)), st.just({}), st.text(max_size=3))))
def test_existing_entries_are_kept_in_order_and_never_duplicated(entries: list[Any]) -> None:
    body = review("team-b", imagePullSecrets=entries)
    found = ask(body)
    after = patched(body["request"]["object"]["spec"], found) if found.result is not AdmissionResult.ERROR else entries
    assert after[: len(entries)] == entries
    names = [e.get("name") for e in after if isinstance(e, dict)]
    assert (names.count("team-pull") == 1 and names.count("all-pull") == 1) or found.result is AdmissionResult.ERROR


def test_the_ledger_follows_the_last_syncs() -> None:
    spec = CONFIG.secrets[0]
    ledger = ConflictLedger()

    def result(*namespaces: str) -> SyncResult:
        changes = [ChangeOutcome(PlannedChange(n, spec.name, Action.CONFLICT)) for n in namespaces]
        return SyncResult(spec.name, outcomes=changes)

    ledger.record(spec, result("team-a", "team-b"), None)
    assert ("team-pull", "team-a") in ledger
    ledger.record(spec, result(), "team-a")
    assert ("team-pull", "team-a") not in ledger
    assert ("team-pull", "team-b") in ledger
    ledger.record(spec, result(), None)
    assert ("team-pull", "team-b") not in ledger


class Stores:
    def __init__(self) -> None:
        self.items: dict[tuple[str, object], object] = {}

    def get(self, kind: str, key: str | tuple[str, str]) -> object | None:
        return self.items.get((kind, key))


def test_the_service_waits_for_a_namespace_it_has_not_seen_and_counts_each_answer() -> None:
    registry = CollectorRegistry()
    stores = Stores()
    service = AdmissionService(lambda: CONFIG, stores, ConflictLedger(), Metrics(registry), namespace_wait=2)

    async def scenario() -> Any:
        pending = asyncio.ensure_future(service.mutate(json.dumps(review("team-new")).encode()))
        await asyncio.sleep(0.05)
        stores.items[("namespaces", "team-new")] = NamespaceInfo("team-new")  # the watch event arrives
        return await pending

    answered = asyncio.run(scenario())
    assert answered.content_type == "application/json"
    assert json.loads(answered.body)["response"]["patchType"] == "JSONPatch"
    assert registry.get_sample_value("syncd_admission_requests_total", {"result": "patched"}) == 1
    assert registry.get_sample_value("syncd_admission_duration_seconds_count") == 1


def test_another_instances_secret_is_a_conflict_for_the_service() -> None:
    registry = CollectorRegistry()
    stores = Stores()
    stores.items[("namespaces", "team-a")] = NamespaceInfo("team-a")
    theirs = ExistingSecret("team-a", "team-pull", "1", managed=True, instance="someone-else")
    stores.items[("secrets/team-pull", "team-a")] = theirs
    service = AdmissionService(lambda: CONFIG, stores, ConflictLedger(), Metrics(registry), namespace_wait=0)
    answered = asyncio.run(service.mutate(json.dumps(review("team-a")).encode()))
    assert "patch" not in json.loads(answered.body)["response"]
    assert registry.get_sample_value("syncd_admission_requests_total", {"result": "skipped"}) == 1
    refused = asyncio.run(service.mutate(b"{"))
    assert refused.status == 400
    assert registry.get_sample_value("syncd_admission_requests_total", {"result": "error"}) == 1
