"""Ownership between installations: every decision is taken over this instance's objects only."""

from __future__ import annotations

from syncd.core.values import Action, DesiredSecret, ExistingSecret, Ownership, ServiceAccountRef
from syncd.engine.plan import plan_accounts, plan_namespace, plan_retired, plan_secret

MINE = DesiredSecret("regcred", b"{}", "sha256:new", ("a",), prune=True, instance="platform")


def labelled(namespace: str, instance: str | None, **fields: object) -> ExistingSecret:
    defaults: dict[str, object] = {
        "managed": True,
        "spec": "regcred",
        "annotated_hash": "sha256:new",
        "data_hash": "sha256:new",
        "secret_type": "kubernetes.io/dockerconfigjson",
        "credentials": "a",
        "instance": instance,
        "prune": True,
    }
    return ExistingSecret(namespace, "regcred", "7", **{**defaults, **fields})  # type: ignore[arg-type]


def test_ownership_is_read_from_the_two_labels() -> None:
    assert labelled("ns", "platform").ownership("platform") is Ownership.OURS
    assert labelled("ns", "team-a").ownership("platform") is Ownership.OTHER_INSTANCE
    assert labelled("ns", None).ownership("platform") is Ownership.LEGACY
    assert labelled("ns", "platform", managed=False).ownership("platform") is Ownership.UNMANAGED


def test_another_instances_secret_is_a_conflict_never_an_update_or_a_prune() -> None:
    managed = {"shared": labelled("shared", "team-a"), "theirs-elsewhere": labelled("theirs-elsewhere", "team-a")}
    changes = {c.namespace: (c.action, c.reason) for c in plan_secret(MINE, ["shared"], managed)}
    assert changes == {"shared": (Action.CONFLICT, "managed by syncd instance 'team-a'; left alone")}


def test_an_identical_secret_of_another_instance_is_still_not_in_sync() -> None:
    assert not labelled("ns", "team-a").matches(MINE)
    assert labelled("ns", "platform").matches(MINE)


def test_a_legacy_secret_is_taken_over_where_selected_and_never_pruned_elsewhere() -> None:
    managed = {"kept": labelled("kept", None), "deselected": labelled("deselected", None)}
    changes = {c.namespace: (c.action, c.reason) for c in plan_secret(MINE, ["kept"], managed)}
    assert changes == {"kept": (Action.UPDATE, "taken over from syncd 0.1.0 (no instance label)")}


def test_only_our_secrets_in_deselected_namespaces_are_pruned() -> None:
    managed = {"ours": labelled("ours", "platform"), "theirs": labelled("theirs", "team-a")}
    assert [(c.namespace, c.action) for c in plan_secret(MINE, [], managed)] == [("ours", Action.PRUNE)]


def test_a_namespace_sync_plans_by_ownership_too() -> None:
    assert plan_namespace(MINE, "ns", labelled("ns", "team-a")).action is Action.CONFLICT
    assert plan_namespace(MINE, "ns", labelled("ns", None)).action is Action.UPDATE
    assert plan_namespace(MINE, "ns", labelled("ns", "platform", managed=False)).action is Action.CREATE


def test_retired_specs_prune_ours_and_legacy_never_another_instances_or_unmanaged() -> None:
    found = [
        labelled("ours", "platform"),
        labelled("legacy", None),
        labelled("theirs", "team-a"),
        labelled("foreign", None, managed=False),
        labelled("kept", "platform", prune=False),
    ]
    assert [c.namespace for c in plan_retired(found, "platform")] == ["ours", "legacy"]


def sa(namespace: str, name: str, refs: tuple[str, ...], added: tuple[str, ...] = ()) -> ServiceAccountRef:
    return ServiceAccountRef(namespace, name, refs, added)


def test_links_where_missing_and_never_claims_a_reference_someone_else_added() -> None:
    accounts = [sa("a", "default", ()), sa("b", "default", ("regcred",)), sa("a", "builder", ())]
    changes = plan_accounts(
        "regcred", instance="platform", wanted=["default"], present={"a", "b"}, pruned=set(), accounts=accounts
    )
    assert [(c.namespace, c.service_account, c.action) for c in changes] == [("a", "default", "link")]


def test_unlinks_only_what_this_instance_recorded() -> None:
    accounts = [
        sa("gone", "default", ("regcred",), ("platform/regcred",)),
        sa("gone", "by-hand", ("regcred",)),
        sa("gone", "other", ("regcred",), ("team-a/regcred",)),
        sa("kept", "dropped-from-spec", ("regcred",), ("platform/regcred",)),
        sa("kept", "default", ("regcred",), ("platform/regcred",)),
    ]
    changes = plan_accounts(
        "regcred", instance="platform", wanted=["default"], present={"kept"}, pruned={"gone"}, accounts=accounts
    )
    assert [(c.namespace, c.service_account, c.action) for c in changes] == [
        ("gone", "default", "unlink"),
        ("kept", "dropped-from-spec", "unlink"),
    ]
