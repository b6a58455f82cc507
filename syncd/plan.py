"""Pure planning: which namespaces get a create, update, prune, or are left alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from syncd.model import Action, DesiredSecret, ExistingSecret, PlannedChange


def plan_secret(
    desired: DesiredSecret, selected: Iterable[str], managed: Mapping[str, ExistingSecret]
) -> list[PlannedChange]:
    """Changes for one spec. `managed` maps namespace -> this spec's managed Secret there.

    A namespace without our Secret is planned as a create; whether a foreign Secret of that
    name is in the way (a conflict) is only known to the cluster, which answers the create.
    """
    wanted = sorted(set(selected))
    changes = [_change_in(namespace, desired, managed.get(namespace)) for namespace in wanted]
    if desired.prune:
        gone = sorted(set(managed) - set(wanted))
        changes += [_prune(managed[namespace], "namespace no longer selected") for namespace in gone]
    return changes


def plan_namespace(desired: DesiredSecret, namespace: str, existing: ExistingSecret | None) -> PlannedChange:
    """The change for one selected namespace; a Secret we do not manage is left to the create's 409."""
    return _change_in(namespace, desired, existing if existing is not None and existing.managed else None)


def _change_in(namespace: str, desired: DesiredSecret, existing: ExistingSecret | None) -> PlannedChange:
    if existing is None:
        return PlannedChange(namespace, desired.name, Action.CREATE, "missing")
    if existing.matches(desired):
        return PlannedChange(namespace, desired.name, Action.UNCHANGED, resource_version=existing.resource_version)
    reason = "content changed" if existing.annotated_hash != desired.content_hash else "edited outside syncd"
    return PlannedChange(namespace, desired.name, Action.UPDATE, reason, existing.resource_version)


def _prune(existing: ExistingSecret, reason: str) -> PlannedChange:
    return PlannedChange(existing.namespace, existing.name, Action.PRUNE, reason, existing.resource_version)


def plan_orphans(managed: Iterable[ExistingSecret], spec_names: Iterable[str]) -> list[PlannedChange]:
    """Managed Secrets of specs no longer in the config, deleted only if their spec pruned."""
    known = set(spec_names)
    return [_prune(s, "secret spec removed from the config") for s in managed if s.spec not in known and s.prune]
