"""One contract for the reconciler's Cluster port, run against its three implementations: FakeCluster
(tests/unit/fakes.py, which the unit tests stand on), KubeCluster on the real apiserver, and the
watch-cached CachedCluster on the real apiserver (tests/integration/cluster_worlds.py).

Each case arranges the cluster as users and controllers would and asserts what the port answers;
the same answer from all three, so the fake cannot drift from the adapter it stands in for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from syncd.config import Namespaces, parse_config
from syncd.core.errors import KubeError
from syncd.core.values import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SECRET_TYPE,
    SPEC_LABEL,
    WRONG_TYPE_REASON,
    Action,
    ExistingSecret,
    NamespaceInfo,
    ServiceAccountRef,
    WriteResult,
)
from syncd.engine.fetcher import Freshness
from syncd.engine.metrics import Metrics
from syncd.engine.reconciler import Reconciler
from syncd.registry.dockerconfig import content_hash
from tests.integration.cluster_worlds import (
    NAME_LABEL,
    NOW,
    OTHER_SPEC,
    PROTECTED,
    SECRET,
    SYNCED_AT,
    Watches,
    World,
    desired,
    make_world,
    start_watches_on,
)
from tests.unit.fakes import FakeSource

pytestmark = pytest.mark.integration
OURS, THEIRS = "contract-ours", "contract-theirs"
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, SPEC_LABEL: SECRET}


@pytest.fixture(scope="module")
def watches(request: pytest.FixtureRequest) -> Iterator[Watches]:
    started = start_watches_on(request.getfixturevalue("stack"))
    yield started
    started.stop()


@pytest.fixture(params=["fake", "kube", "cached"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with make_world(request.param, request) as made:
        yield made


def _selected(world: World, **selection: Any) -> list[str]:
    """The port's answer, within this test's namespaces and kube-system (the apiserver holds others')."""
    found = world.cluster.select_namespaces(Namespaces(**selection))
    return [n for n in found if n.startswith(world.prefix) or n == PROTECTED]


def _listed(found: list[ExistingSecret], world: World) -> list[ExistingSecret]:
    """Within this test's namespaces, without the resourceVersion (each implementation has its own)."""
    ours = [replace(s, resource_version="") for s in found if s.namespace.startswith(world.prefix)]
    return sorted(ours, key=lambda s: s.namespace)


def _accounts(found: list[ServiceAccountRef], world: World) -> list[ServiceAccountRef]:
    return sorted((a for a in found if a.namespace.startswith(world.prefix)), key=lambda a: (a.namespace, a.name))


def _version(world: World, namespace: str, name: str = SECRET) -> str:
    found = world.cluster.read_secret(namespace, name)
    assert found is not None, f"{namespace}/{name}"
    return found.resource_version


def _written(namespace: str, instance: str, login: str = "pw-1") -> ExistingSecret:
    """What reading back a Secret syncd wrote (at NOW) shows, less its resourceVersion."""
    want = desired(login, instance=instance)
    return ExistingSecret(
        namespace=namespace,
        name=SECRET,
        resource_version="",
        managed=True,
        spec=SECRET,
        annotated_hash=want.content_hash,
        data_hash=want.content_hash,
        secret_type="kubernetes.io/dockerconfigjson",
        synced_at=SYNCED_AT,
        credentials="robot",
        registries=("ghcr.io",),
        prune=True,
        instance=instance,
    )


# Namespaces: names, patterns, selector, exclude, terminating, kube-system


def test_names_patterns_and_selectors_select_by_the_same_rule(world: World) -> None:
    p = world.prefix
    a = world.namespace("a", {"team": "a", "tier": "web"})
    b = world.namespace("b", {"team": "b"})
    c = world.namespace("c")
    d = world.namespace("d", {"team": "a", "example.com/env": "prod"})

    assert _selected(world, names=[c, f"{p}-missing"]) == [c]  # a name that does not exist selects nothing
    assert _selected(world, patterns=[f"{p}-[ab]"]) == [a, b]
    assert _selected(world, selector="team=a") == [a, d]
    assert _selected(world, selector="team in (a,b),!tier") == [b, d]
    assert _selected(world, selector="example.com/env,team notin (b)") == [d]
    assert _selected(world, selector=f"{NAME_LABEL} in ({a},{c})") == [a, c]  # the apiserver's own label
    assert _selected(world, names=[c], selector="team=b") == [b, c]  # a union
    assert _selected(world, patterns=[f"{p}-*"], exclude=[f"{p}-[bc]", d]) == [a]


def test_terminating_namespaces_are_never_selected(world: World) -> None:
    kept = world.namespace("kept", {"team": "a"})
    going = world.namespace("going", {"team": "a"}, terminating=True)

    for selection in ({"names": [going, kept]}, {"patterns": [f"{world.prefix}-*"]}, {"selector": "team=a"}):
        assert _selected(world, **selection) == [kept], selection
    info = world.cluster.read_namespace(going)
    assert info is not None
    assert info.terminating


def test_kube_system_is_selected_by_its_name_only(world: World) -> None:
    mine = world.namespace("x", {"team": "a"})

    assert _selected(world, names=[PROTECTED]) == [PROTECTED]
    assert _selected(world, patterns=["kube-syste[m]", f"{world.prefix}-*"]) == [mine]
    assert _selected(world, selector=f"{NAME_LABEL} in ({PROTECTED},{mine})") == [mine]
    assert _selected(world, names=[PROTECTED], exclude=["kube-*"]) == []


def test_read_namespace_carries_labels_and_misses_as_none(world: World) -> None:
    name = world.namespace("r", {"team": "a"})

    info = world.cluster.read_namespace(name)
    assert info == NamespaceInfo(name, terminating=False)
    assert info is not None
    assert dict(info.labels) == {"team": "a", NAME_LABEL: name}
    assert world.cluster.read_namespace(f"{world.prefix}-absent") is None


# Reading Secrets: ownership labels, another installation's, foreign unlabelled


def test_managed_secrets_are_every_installations_syncd_labelled_secrets_of_that_name(world: World) -> None:
    ours, theirs, legacy, foreign, other_spec = (
        world.namespace(s) for s in ("ours", "theirs", "legacy", "foreign", "spec")
    )
    world.cluster.create(ours, desired(instance=OURS), adopt=False, now=NOW)
    world.cluster.create(theirs, desired(instance=THEIRS), adopt=False, now=NOW)
    world.foreign_secret(legacy, SECRET, MANAGED, {".dockerconfigjson": b"{}"})  # 0.1.0 wrote no instance label
    world.foreign_secret(foreign, SECRET, {}, {"token": b"x"})
    world.foreign_secret(other_spec, SECRET, {**MANAGED, SPEC_LABEL: OTHER_SPEC}, {})  # labelled for another spec
    world.cluster.create(other_spec, desired(instance=OURS, name=OTHER_SPEC), adopt=False, now=NOW)

    found = _listed(world.cluster.managed_secrets(SECRET), world)
    legacy_found = ExistingSecret(
        legacy, SECRET, "", managed=True, spec=SECRET, data_hash=content_hash(b"{}"), secret_type="Opaque"
    )
    assert found == [legacy_found, _written(ours, OURS), _written(theirs, THEIRS)]
    assert [s.name for s in _listed(world.cluster.managed_secrets(OTHER_SPEC), world)] == [OTHER_SPEC]


def test_read_secret_shows_any_secret_of_that_name_and_misses_as_none(world: World) -> None:
    foreign = world.namespace("f")
    world.foreign_secret(foreign, SECRET, {"owner": "someone"}, {"token": b"x"})

    found = world.cluster.read_secret(foreign, SECRET)
    assert found is not None
    assert replace(found, resource_version="") == ExistingSecret(
        foreign, SECRET, "", managed=False, secret_type="Opaque"
    )
    assert found.ownership(OURS).value == "unmanaged"
    assert world.cluster.read_secret(foreign, "absent") is None
    assert world.cluster.read_secret(f"{world.prefix}-absent", SECRET) is None


# Writing Secrets: create, update, delete, and what a 409 turns into


def test_create_writes_and_a_second_create_resolves_to_what_is_there(world: World) -> None:
    ns = world.namespace("c")
    assert world.cluster.create(ns, desired(instance=OURS), adopt=False, now=NOW) == WriteResult(Action.CREATE, True)
    assert _listed([cast(ExistingSecret, world.cluster.read_secret(ns, SECRET))], world) == [_written(ns, OURS)]

    # A create meeting a Secret (a store a moment behind): the adapter looks again and decides.
    again = world.cluster.create(ns, desired(instance=OURS), adopt=False, now=NOW)
    assert again == WriteResult(Action.UNCHANGED, changed=False)
    rotated = world.cluster.create(ns, desired("pw-2", instance=OURS), adopt=False, now=NOW)
    assert rotated == WriteResult(Action.UPDATE, changed=True)
    assert _listed([cast(ExistingSecret, world.cluster.read_secret(ns, SECRET))], world) == [_written(ns, OURS, "pw-2")]


def test_create_over_another_installations_or_a_foreign_secret_is_a_conflict_unless_adopting(world: World) -> None:
    theirs, foreign, legacy = world.namespace("t"), world.namespace("f"), world.namespace("l")
    opaque = world.namespace("o")
    world.cluster.create(theirs, desired(instance=THEIRS), adopt=False, now=NOW)
    world.foreign_secret(foreign, SECRET, {}, {".dockerconfigjson": b"{}"}, kind=SECRET_TYPE)
    world.foreign_secret(opaque, SECRET, {}, {"token": b"x"})
    world.foreign_secret(legacy, SECRET, MANAGED, {})

    for adopt in (False, True):  # another installation's Secret is never taken
        result = world.cluster.create(theirs, desired(instance=OURS), adopt=adopt, now=NOW)
        assert result == WriteResult(Action.CONFLICT, changed=False, owner=THEIRS)
    assert world.cluster.create(foreign, desired(instance=OURS), adopt=False, now=NOW) == WriteResult(
        Action.CONFLICT, changed=False
    )
    assert world.cluster.create(foreign, desired(instance=OURS), adopt=True, now=NOW) == WriteResult(Action.ADOPT, True)
    adopted = _listed([cast(ExistingSecret, world.cluster.read_secret(foreign, SECRET))], world)
    assert adopted == [_written(foreign, OURS)]
    # A Secret's type is immutable: an Opaque one adopted would stay Opaque (no pull Secret to the
    # kubelet) and be rewritten every sync, so adopting it is refused as a conflict that says why.
    refused = world.cluster.create(opaque, desired(instance=OURS), adopt=True, now=NOW)
    assert (refused.action, refused.changed, refused.reason) == (
        Action.CONFLICT,
        False,
        WRONG_TYPE_REASON.format("Opaque"),
    )
    assert cast(ExistingSecret, world.cluster.read_secret(opaque, SECRET)).managed is False
    # 0.1.0's Secret (managed, no instance) is taken over by an update, adopt or not.
    assert world.cluster.create(legacy, desired(instance=OURS), adopt=False, now=NOW) == WriteResult(
        Action.UPDATE, True
    )
    assert cast(ExistingSecret, world.cluster.read_secret(legacy, SECRET)).instance == OURS


def test_create_in_a_namespace_that_does_not_exist_fails_with_404(world: World) -> None:
    with pytest.raises(KubeError) as missing:
        world.cluster.create(f"{world.prefix}-absent", desired(instance=OURS), adopt=False, now=NOW)
    assert missing.value.status == 404


def test_update_from_a_stale_version_looks_again(world: World) -> None:
    ns, gone = world.namespace("u"), world.namespace("g")
    world.cluster.create(ns, desired(instance=OURS), adopt=False, now=NOW)
    first = _version(world, ns)

    current = world.cluster.update(ns, desired("pw-2", instance=OURS), first, adopt=False, now=NOW)
    assert current == WriteResult(Action.UPDATE, changed=True)
    stale_same = world.cluster.update(ns, desired("pw-2", instance=OURS), first, adopt=False, now=NOW)
    assert stale_same == WriteResult(Action.UNCHANGED, changed=False)  # 409, re-read: already as wanted
    stale_new = world.cluster.update(ns, desired("pw-3", instance=OURS), first, adopt=False, now=NOW)
    assert stale_new == WriteResult(Action.UPDATE, changed=True)  # 409, re-read: still ours, so written
    assert _listed([cast(ExistingSecret, world.cluster.read_secret(ns, SECRET))], world) == [_written(ns, OURS, "pw-3")]

    # Taken over by another installation since the plan: a conflict naming it, nothing written.
    planned = _version(world, ns)
    world.cluster.delete(ns, SECRET, planned)
    world.cluster.create(ns, desired(instance=THEIRS), adopt=False, now=NOW)
    taken = world.cluster.update(ns, desired("pw-4", instance=OURS), planned, adopt=True, now=NOW)
    assert taken == WriteResult(Action.CONFLICT, changed=False, owner=THEIRS)
    assert cast(ExistingSecret, world.cluster.read_secret(ns, SECRET)).instance == THEIRS

    # Deleted since the plan (404): created again.
    assert world.cluster.update(gone, desired(instance=OURS), "1", adopt=False, now=NOW) == WriteResult(
        Action.CREATE, changed=True
    )


def test_delete_removes_only_the_version_seen(world: World) -> None:
    ns = world.namespace("d")
    world.cluster.create(ns, desired(instance=OURS), adopt=False, now=NOW)
    seen = _version(world, ns)
    world.cluster.update(ns, desired("pw-2", instance=OURS), seen, adopt=False, now=NOW)  # someone wrote since

    with pytest.raises(KubeError) as stale:
        world.cluster.delete(ns, SECRET, seen)
    assert stale.value.status == 409
    assert world.cluster.read_secret(ns, SECRET) is not None
    world.cluster.delete(ns, SECRET, _version(world, ns))
    assert world.cluster.read_secret(ns, SECRET) is None
    with pytest.raises(KubeError) as gone:
        world.cluster.delete(ns, SECRET, seen)
    assert gone.value.status == 404


# ServiceAccounts: listing, and imagePullSecrets edits that never remove others' entries


def test_service_accounts_are_listed_by_name_cluster_wide_or_in_one_namespace(world: World) -> None:
    a, b = world.namespace("a"), world.namespace("b")
    world.account(a, "default", ("other",))
    world.account(a, "builder")
    world.account(b, "default")

    def listed(names: list[str] | None, namespace: str | None = None) -> list[ServiceAccountRef]:
        return _accounts(world.cluster.service_accounts(names, namespace), world)

    a_default, a_builder = ServiceAccountRef(a, "default", ("other",)), ServiceAccountRef(a, "builder", ())
    b_default = ServiceAccountRef(b, "default", ())
    assert listed(["default"], a) == [a_default]
    assert listed(["default", "builder"]) == [a_builder, a_default, b_default]
    assert listed(None, a) == [a_builder, a_default]
    assert listed(None) == [a_builder, a_default, b_default]
    assert listed(["nobody"]) == []
    assert listed(["default"], f"{world.prefix}-absent") == []


def test_pull_secret_edits_add_and_remove_only_syncds_own_entries(world: World) -> None:
    ns = world.namespace("sa")
    world.account(ns, "default", ("other",))
    world.account(ns, "builder", (SECRET,))  # set by hand: not syncd's to remove

    def refs() -> dict[str, ServiceAccountRef]:
        return {a.name: a for a in _accounts(world.cluster.service_accounts(["default", "builder"], ns), world)}

    assert world.cluster.add_pull_secret(ns, "default", SECRET, OURS)
    assert not world.cluster.add_pull_secret(ns, "default", SECRET, OURS)  # there already
    assert not world.cluster.add_pull_secret(ns, "default", SECRET, THEIRS)  # there, and not theirs
    assert not world.cluster.add_pull_secret(ns, "builder", SECRET, OURS)
    assert world.stored_pull_secrets(ns, "default") == ["other", SECRET]
    assert refs() == {
        "default": ServiceAccountRef(ns, "default", ("other", SECRET), (f"{OURS}/{SECRET}",)),
        "builder": ServiceAccountRef(ns, "builder", (SECRET,), ()),
    }

    assert not world.cluster.remove_pull_secret(ns, "builder", SECRET, OURS)
    assert not world.cluster.remove_pull_secret(ns, "default", SECRET, THEIRS)
    assert not world.cluster.remove_pull_secret(ns, "default", "other", OURS)
    assert world.cluster.remove_pull_secret(ns, "default", SECRET, OURS)
    assert not world.cluster.remove_pull_secret(ns, "default", SECRET, OURS)
    assert world.stored_pull_secrets(ns, "default") == ["other"]
    assert world.stored_pull_secrets(ns, "builder") == [SECRET]
    assert refs()["default"] == ServiceAccountRef(ns, "default", ("other",), ())


def test_pull_secret_edits_from_a_stale_listing_keep_what_was_added_since(world: World) -> None:
    ns = world.namespace("st")
    world.account(ns, "default")
    [listed] = _accounts(world.cluster.service_accounts(["default"], ns), world)
    world.cluster.add_pull_secret(ns, "default", "someone-elses", THEIRS)  # after the listing

    assert world.cluster.add_pull_secret(ns, "default", SECRET, OURS, known=listed)
    assert world.stored_pull_secrets(ns, "default") == ["someone-elses", SECRET]
    [relisted] = _accounts(world.cluster.service_accounts(["default"], ns), world)
    assert relisted.added == (f"{THEIRS}/someone-elses", f"{OURS}/{SECRET}")
    # What a listing shows as nothing to do is not done, stale or not: no request is made. (The
    # reconciler removes only entries its listing shows, and the next listing shows this one.)
    assert not world.cluster.remove_pull_secret(ns, "default", SECRET, OURS, known=listed)
    assert world.cluster.remove_pull_secret(ns, "default", SECRET, OURS, known=relisted)
    assert world.stored_pull_secrets(ns, "default") == ["someone-elses"]


def test_pull_secret_edits_of_a_service_account_that_does_not_exist_change_nothing(world: World) -> None:
    ns = world.namespace("n")
    assert not world.cluster.add_pull_secret(ns, "nobody", SECRET, OURS)
    assert not world.cluster.remove_pull_secret(ns, "nobody", SECRET, OURS)
    assert not world.cluster.add_pull_secret(f"{world.prefix}-absent", "default", SECRET, OURS)
    assert _accounts(world.cluster.service_accounts(["nobody"], ns), world) == []


# Dry run: the reconciler plans from the port's reads alone, and writes nothing


def test_a_dry_run_plans_the_same_and_writes_nothing(world: World) -> None:
    p = world.prefix
    ours = f"{OURS}-{p}"  # an instance of its own: a dry run lists the instance's Secrets cluster-wide
    empty, foreign, stale, theirs = (world.namespace(s, {"contract": p}) for s in ("e", "f", "s", "t"))
    world.foreign_secret(foreign, SECRET, {}, {"token": b"x"})
    world.cluster.create(stale, desired("old", instance=ours), adopt=False, now=NOW)
    world.cluster.create(theirs, desired(instance=THEIRS), adopt=False, now=NOW)
    for ns in (empty, foreign, stale, theirs):
        world.account(ns, "default")
    before = world.state()

    reconciler = _reconciler(world, instance=ours, selector=f"contract={p}")
    result = reconciler.sync(reconciler.config.secrets[0], freshness=Freshness.per_run(NOW), dry_run=True)
    assert result.errors == []
    planned = {o.change.namespace: o.change.action for o in result.outcomes}
    assert planned == {empty: Action.CREATE, foreign: Action.CONFLICT, stale: Action.UPDATE, theirs: Action.CONFLICT}
    linked = {(c.namespace, c.service_account, c.link) for c in result.account_changes}
    assert linked == {(empty, "default", True), (stale, "default", True)}
    world.settle()
    assert world.state() == before


def _reconciler(world: World, *, instance: str, selector: str) -> Reconciler:
    config = parse_config(
        {
            "instance": instance,
            "vault": {"address": "https://vault.invalid"},
            "credentials": [{"name": "robot", "registry": "ghcr.io", "vault": {"path": "robot"}}],
            "secrets": [
                {
                    "name": SECRET,
                    "credentials": ["robot"],
                    "namespaces": {"selector": selector},
                    "service_accounts": ["default"],
                }
            ],
        }
    )
    return Reconciler(
        config=config,
        sources={"vault": FakeSource({"robot": ("robot", "pw-1")})},
        cluster=world.cluster,
        metrics=Metrics(CollectorRegistry()),
    )
