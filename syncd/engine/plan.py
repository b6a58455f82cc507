"""Pure planning: which namespaces get a create, update, prune, or are left alone.

Every decision is taken over ownership (model.Ownership): this installation's Secrets are
updated and pruned; 0.1.0's (no instance label) are taken over when their spec is ours, never
pruned; another installation's are a conflict, whatever `on_conflict` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from syncd.core.values import (
    AccountChange,
    Action,
    DesiredSecret,
    ExistingSecret,
    Ownership,
    PlannedChange,
    ServiceAccountRef,
)

OTHER_INSTANCE_REASON = "managed by syncd instance {!r}; left alone"


def plan_secret(
    desired: DesiredSecret, selected: Iterable[str], managed: Mapping[str, ExistingSecret]
) -> list[PlannedChange]:
    """Changes for one spec. `managed` maps namespace -> the spec's syncd-labelled Secret there.

    A namespace without one is planned as a create; whether a foreign Secret of that name is in
    the way (a conflict) is only known to the cluster, which answers the create.
    """
    wanted = sorted(set(selected))
    changes = [plan_namespace(desired, namespace, managed.get(namespace)) for namespace in wanted]
    if desired.prune:
        gone = sorted(n for n in set(managed) - set(wanted) if _owned(managed[n], desired.instance))
        changes += [_prune(managed[namespace], "namespace no longer selected") for namespace in gone]
    return changes


def plan_namespace(desired: DesiredSecret, namespace: str, existing: ExistingSecret | None) -> PlannedChange:
    """The change for one selected namespace; a Secret syncd does not manage is left to the create's 409."""
    ownership = existing.ownership(desired.instance) if existing is not None else Ownership.UNMANAGED
    if existing is not None and ownership is Ownership.OTHER_INSTANCE:
        reason = OTHER_INSTANCE_REASON.format(existing.instance)
        return PlannedChange(namespace, desired.name, Action.CONFLICT, reason, existing.resource_version)
    if existing is None or ownership is Ownership.UNMANAGED:
        return PlannedChange(namespace, desired.name, Action.CREATE, "missing")
    if existing.matches(desired):
        return PlannedChange(namespace, desired.name, Action.UNCHANGED, resource_version=existing.resource_version)
    return PlannedChange(
        namespace, desired.name, Action.UPDATE, _update_reason(existing, desired), existing.resource_version
    )


def _update_reason(existing: ExistingSecret, desired: DesiredSecret) -> str:
    if existing.ownership(desired.instance) is Ownership.LEGACY:
        return "taken over from syncd 0.1.0 (no instance label)"
    return "content changed" if existing.annotated_hash != desired.content_hash else "edited outside syncd"


def _owned(existing: ExistingSecret, instance: str) -> bool:
    return existing.ownership(instance) is Ownership.OURS


def _prune(existing: ExistingSecret, reason: str) -> PlannedChange:
    return PlannedChange(existing.namespace, existing.name, Action.PRUNE, reason, existing.resource_version)


def plan_retired(managed: Iterable[ExistingSecret], instance: str) -> list[PlannedChange]:
    """Secrets of specs retired from the config: ours (or 0.1.0's, since the config names the spec),
    deleted only if their spec asked for pruning when it wrote them."""
    keep_out = (Ownership.OTHER_INSTANCE, Ownership.UNMANAGED)
    return [
        _prune(s, "secret spec retired from the config")
        for s in managed
        if s.prune and s.ownership(instance) not in keep_out
    ]


def plan_accounts(
    secret: str,
    *,
    instance: str,
    wanted: list[str],
    present: set[str],
    pruned: set[str],
    accounts: Iterable[ServiceAccountRef],
) -> list[AccountChange]:
    """imagePullSecrets edits for one Secret name. `wanted`: the spec's ServiceAccount names ("*": all)
    in the namespaces where the Secret is `present`; elsewhere in `present` and in `pruned`
    namespaces, syncd takes back only the references it recorded as its own."""
    changes = []
    for sa in accounts:
        if sa.namespace not in present and sa.namespace not in pruned:
            continue
        want = sa.namespace in present and ("*" in wanted or sa.name in wanted)
        if want and secret not in sa.pull_secrets:
            changes.append(AccountChange(sa.namespace, sa.name, secret, link=True))
        elif not want and sa.added_by(instance, secret):
            changes.append(AccountChange(sa.namespace, sa.name, secret, link=False))
    return changes
