from __future__ import annotations

from syncd.config import Namespaces
from syncd.config.selection import resolve, selects
from syncd.core.values import Action, DesiredSecret, ExistingSecret, NamespaceInfo
from syncd.engine.plan import plan_retired, plan_secret

DESIRED = DesiredSecret("regcred", b"{}", "sha256:new", ("a",), prune=True)


def existing(namespace: str, content_hash: str = "sha256:new", **fields: object) -> ExistingSecret:
    defaults: dict[str, object] = {
        "managed": True,
        "spec": "regcred",
        "annotated_hash": content_hash,
        "data_hash": content_hash,
        "secret_type": "kubernetes.io/dockerconfigjson",
        "credentials": "a",
        "instance": "default",
    }
    return ExistingSecret(namespace, "regcred", "1", **{**defaults, **fields})  # type: ignore[arg-type]


def test_selection_is_names_patterns_and_selector_minus_exclude_and_terminating() -> None:
    selection = Namespaces(names=["payments"], patterns=["team-*"], selector="a=b", exclude=["team-x", "kube-*"])
    namespaces = [NamespaceInfo(n) for n in ("payments", "team-1", "team-x", "other")]
    namespaces += [NamespaceInfo(n, labels={"a": "b"}) for n in ("labelled", "kube-a")]
    namespaces.append(NamespaceInfo("team-dying", terminating=True))
    assert resolve(selection, namespaces) == ["labelled", "payments", "team-1"]


def test_plan_creates_updates_leaves_alone_and_prunes() -> None:
    managed = {
        "same": existing("same"),
        "old": existing("old", "sha256:old"),
        "edited": existing("edited", data_hash="sha256:hand-edited"),
        "gone": existing("gone"),
    }
    changes = {
        c.namespace: (c.action, c.reason) for c in plan_secret(DESIRED, ["same", "old", "edited", "new"], managed)
    }
    assert changes == {
        "same": (Action.UNCHANGED, ""),
        "old": (Action.UPDATE, "content changed"),
        "edited": (Action.UPDATE, "edited outside syncd"),
        "new": (Action.CREATE, "missing"),
        "gone": (Action.PRUNE, "namespace no longer selected"),
    }


def test_without_prune_a_deselected_secret_stays() -> None:
    keep = DesiredSecret("regcred", b"{}", "sha256:new", ("a",), prune=False)
    assert [c.action for c in plan_secret(keep, [], {"gone": existing("gone")})] == []


def test_a_changed_credential_list_is_an_update_even_with_the_same_content() -> None:
    renamed = DesiredSecret("regcred", b"{}", "sha256:new", ("b",))
    assert [c.action for c in plan_secret(renamed, ["ns"], {"ns": existing("ns")})] == [Action.UPDATE]


def test_retired_secrets_are_pruned_only_when_their_spec_asked_for_it() -> None:
    retired = [existing("a", prune=True), existing("b", prune=False)]
    assert [(c.namespace, c.action) for c in plan_retired(retired, "default")] == [("a", Action.PRUNE)]


def test_one_namespace_is_selected_by_the_same_rule_as_a_listing() -> None:
    selection = Namespaces(
        names=["payments"], patterns=["team-*"], selector="pull in (yes),tier!=dev", exclude=["team-x"]
    )
    cases = {
        NamespaceInfo("payments"): True,
        NamespaceInfo("team-1"): True,
        NamespaceInfo("team-x"): False,
        NamespaceInfo("labelled", labels={"pull": "yes"}): True,
        NamespaceInfo("labelled-dev", labels={"pull": "yes", "tier": "dev"}): False,
        NamespaceInfo("team-dying", terminating=True): False,
        NamespaceInfo("other"): False,
    }
    assert {ns.name: selects(selection, ns) for ns in cases} == {ns.name: want for ns, want in cases.items()}
